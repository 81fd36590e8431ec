"""Branches: edit and resend, regenerate, switch versions, Continue, paused turns,
refusals, and the model and system prompt changed under way.

Through the real socket and the in-process fake Claude, wrapped in a recorder of
the request bodies it receives: what Claude is sent is exactly the branch on
show, nothing of the others.
"""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from claude.fake.replies import reply_tokens
from conversations.models import Conversation, Message
from tests.conftest import assistant_id, completed, receive_frames
from usage.models import ApiCall

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


def plain(messages: list[dict]) -> list[tuple[str, str]]:
    """A request's turns as (role, text), cache markers and block shapes aside."""
    turns = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            text = content
        else:
            text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
        turns.append((message["role"], text))
    return turns


def send(text: str) -> dict:
    return {"type": "message.send", "text": text, "client_id": uuid.uuid4().hex}


def switched(frame: dict) -> bool:
    return frame["type"] == "branch.switched"


def refused(frame: dict) -> bool:
    return frame["type"] == "error"


async def exchange(socket, frame: dict) -> list[dict]:
    await socket.send_json_to(frame)
    return await receive_frames(socket, until=completed)


def user_id(frames: list[dict]) -> str:
    return next(
        f["message"]["id"]
        for f in frames
        if f["type"] == "message.created" and f["message"]["role"] == "user"
    )


@sync_to_async
def answer_text(message_id: str) -> str:
    return Message.objects.get(id=message_id).text


async def test_an_edit_keeps_the_old_branch_and_each_branch_sends_only_itself(
    alice, make_conversation, socket_for, recorder
):
    """Alice edits her second question: a new version with its own answer; the old
    one keeps its answer. Switching between the two shows (and sends) exactly one
    branch: a follow-up on either carries that branch's turns and nothing else."""
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    await exchange(socket, send("First question [[fake tokens=6]]"))
    second = await exchange(socket, send("Second question [[fake tokens=6]]"))
    second_user, second_answer = user_id(second), assistant_id(second)

    await socket.send_json_to(
        {
            "type": "message.edit",
            "message_id": second_user,
            "text": "Second question, edited [[fake tokens=6]]",
            "client_id": "edit-1",
        }
    )
    frames = await receive_frames(socket, until=completed)
    branch = next(f for f in frames if switched(f))
    edited_user, edited_answer = (m["id"] for m in branch["messages"])
    assert branch["from_position"] == 2
    assert branch["messages"][0]["versions"] == {
        "index": 2,
        "count": 2,
        "ids": [second_user, edited_user],
    }
    assert plain(recorder.chats()[-1]["messages"]) == [
        ("user", "First question [[fake tokens=6]]"),
        ("assistant", await first_answer(conversation)),
        ("user", "Second question, edited [[fake tokens=6]]"),
    ]

    # Back to the first version: its answer comes back with it.
    await socket.send_json_to({"type": "branch.switch", "message_id": second_user})
    [back] = [f for f in await receive_frames(socket, until=switched) if switched(f)]
    assert [m["id"] for m in back["messages"]] == [second_user, second_answer]
    assert back["messages"][0]["versions"]["index"] == 1

    await exchange(socket, send("Third, on the first version [[fake tokens=4]]"))
    sent = plain(recorder.chats()[-1]["messages"])
    assert [text for _, text in sent] == [
        "First question [[fake tokens=6]]",
        await first_answer(conversation),
        "Second question [[fake tokens=6]]",
        await answer_text(second_answer),
        "Third, on the first version [[fake tokens=4]]",
    ]
    assert not any("edited" in text for _, text in sent)

    # And to the edited one: the third question is not there.
    await socket.send_json_to({"type": "branch.switch", "message_id": edited_user})
    [forth] = [f for f in await receive_frames(socket, until=switched) if switched(f)]
    assert [m["id"] for m in forth["messages"]] == [edited_user, edited_answer]
    await exchange(socket, send("Fourth, on the edit [[fake tokens=4]]"))
    sent = plain(recorder.chats()[-1]["messages"])
    assert [text for _, text in sent] == [
        "First question [[fake tokens=6]]",
        await first_answer(conversation),
        "Second question, edited [[fake tokens=6]]",
        await answer_text(edited_answer),
        "Fourth, on the edit [[fake tokens=4]]",
    ]

    # Stored: ten messages, two branches below the first answer, the edit on show.
    stored = await sync_to_async(list)(
        Message.objects.filter(conversation=conversation).select_related("parent")
    )
    assert len(stored) == 10
    conversation = await sync_to_async(Conversation.objects.get)(id=conversation.id)
    leaf = next(m for m in stored if m.id == conversation.active_leaf_id)
    assert leaf.role == "assistant" and leaf.parent.text.startswith("Fourth")


@sync_to_async
def first_answer(conversation) -> str:
    return Message.objects.get(conversation=conversation, position=1).text


async def test_the_page_shows_the_branch_on_show_with_its_arrows(
    alice, make_conversation, socket_for
):
    """After an edit the page renders the edited version, `2/2`, not the old one."""
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    first = await exchange(socket, send("Original wording [[fake tokens=4]]"))
    await socket.send_json_to(
        {
            "type": "message.edit",
            "message_id": user_id(first),
            "text": "Better wording [[fake tokens=4]]",
            "client_id": "e-2",
        }
    )
    await receive_frames(socket, until=completed)

    client = Client()
    await sync_to_async(client.force_login)(alice)
    page = (await sync_to_async(client.get)(f"/c/{conversation.id}/")).content.decode()
    assert '<div class="bubble">Better wording' in page
    assert '<div class="bubble">Original wording' not in page
    assert '<span class="versions-label">2/2</span>' in page


async def test_regenerate_any_finished_answer_makes_a_sibling_from_its_own_history(
    alice, make_conversation, socket_for, recorder
):
    """Regenerating the first answer of a two-turn chat asks Claude with the first
    question only; the new version is on show, the old one and the turns after it
    stay one arrow away."""
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    first = await exchange(socket, send("Tell me about caches [[fake tokens=5]]"))
    await exchange(socket, send("And about queues [[fake tokens=5]]"))
    old_answer = assistant_id(first)

    frames = await exchange(socket, {"type": "message.regenerate", "message_id": old_answer})
    branch = next(f for f in frames if switched(f))
    [new_answer] = branch["messages"]
    assert new_answer["versions"]["ids"] == [old_answer, new_answer["id"]]
    assert plain(recorder.chats()[-1]["messages"]) == [
        ("user", "Tell me about caches [[fake tokens=5]]")
    ]
    assert await sync_to_async(Message.objects.filter(conversation=conversation).count)() == 5

    # A running answer cannot be regenerated, nor one of another branch.
    await socket.send_json_to({"type": "message.regenerate", "message_id": str(uuid.uuid4())})
    [error] = [f for f in await receive_frames(socket, until=refused) if refused(f)]
    assert error["code"] == "not_found"


async def test_an_answer_cut_at_the_length_limit_says_so_and_continue_finishes_it(
    alice, make_conversation, socket_for, recorder, settings
):
    """With max_tokens 30 a 50-token answer stops at 30 with "cut off at the length
    limit"; Continue sends its text as the start of Claude's turn and the answer
    reads on to the end: the whole 50-token answer, one message, both calls on it."""
    settings.CLAUDE_MAX_TOKENS = 30
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    question = "Write a long answer [[fake tokens=50]]"
    frames = await exchange(socket, send(question))
    cut_id = assistant_id(frames)
    end = frames[-1]
    assert end["stop_reason"] == "max_tokens"
    assert "cut off at the length limit" in end["stop_note"]

    frames = await exchange(socket, {"type": "message.continue", "message_id": cut_id})
    assert {"type": "message.deleted", "message_id": cut_id} in frames
    continued_id = assistant_id(frames)
    end = frames[-1]
    assert end["stop_reason"] == "end_turn" and end["stop_note"] == ""
    whole = "".join(reply_tokens("claude-sonnet-5-5", "Write a long answer", 50))
    assert end["text"] == whole
    stored = await sync_to_async(Message.objects.get)(id=continued_id)
    assert stored.text == whole and stored.content[-1] == {"type": "text", "text": whole}
    assert not await sync_to_async(Message.objects.filter(id=cut_id).exists)()

    body = recorder.chats()[-1]
    cut_text = "".join(reply_tokens("claude-sonnet-5-5", "Write a long answer", 50)[:30])
    assert plain(body["messages"]) == [("user", question), ("assistant", cut_text.rstrip())]
    calls = await sync_to_async(list)(ApiCall.objects.filter(message_id=continued_id))
    assert len(calls) == 2
    assert sorted(c.output_tokens for c in calls)[-1] == 30  # the first, cut at 30

    # Only an answer that was cut off continues.
    await socket.send_json_to({"type": "message.continue", "message_id": continued_id})
    [error] = [f for f in await receive_frames(socket, until=refused) if refused(f)]
    assert error["code"] == "not_continuable"


async def test_a_paused_turn_goes_on_by_itself_as_one_answer(
    alice, make_conversation, socket_for, recorder
):
    """`pause_turn`: the runner sends the paused content back unchanged and the
    answer streams on; one message, one ledger row with both calls' tokens."""
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    frames = await exchange(socket, send("A long turn [[fake stop_reason=pause_turn tokens=40]]"))
    end = frames[-1]
    assert end["stop_reason"] == "end_turn"
    assert end["text"] == "".join(reply_tokens("claude-sonnet-5-5", "A long turn", 40))
    first, second = recorder.chats()
    question = "A long turn [[fake stop_reason=pause_turn tokens=40]]"
    half = "".join(reply_tokens("claude-sonnet-5-5", "A long turn", 40)[:20]).rstrip()
    assert plain(first["messages"]) == [("user", question)]
    assert plain(second["messages"]) == [("user", question), ("assistant", half)]
    [call] = await sync_to_async(list)(ApiCall.objects.filter(message_id=assistant_id(frames)))
    assert 40 <= call.output_tokens <= 41  # both rounds (a word may split once more)


async def test_a_refusal_shows_its_reason(alice, make_conversation, socket_for):
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    frames = await exchange(
        socket, send("Something bad [[fake stop_reason=refusal refusal_category=cyber]]")
    )
    end = frames[-1]
    assert end["stop_reason"] == "refusal"
    assert end["stop_note"] == "Claude declined to answer. Reason: cyber security."
    stored = await sync_to_async(Message.objects.get)(id=assistant_id(frames))
    assert stored.stop_details["category"] == "cyber"


async def test_the_model_and_system_prompt_change_for_the_next_answer(
    alice, bob, make_conversation, socket_for, recorder
):
    """Switched to Haiku with a new system prompt after the first answer: the next
    request uses both; each answer keeps (and shows) the model that wrote it."""
    conversation = await sync_to_async(make_conversation)(system_prompt="Be brief.")
    socket, _ = await socket_for(alice, conversation.id)
    first = await exchange(socket, send("Hello [[fake tokens=3]]"))

    client = Client()
    await sync_to_async(client.force_login)(alice)
    response = await sync_to_async(client.post)(
        reverse("conversation_settings", args=[conversation.id]),
        {"model": "claude-haiku-5-5", "system_prompt": "Answer in French.", "thinking_effort": ""},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200
    assert response.json()["model_label"] == "Claude Haiku 5.5"
    second = await exchange(socket, send("Again [[fake tokens=3]]"))

    first_body, second_body = recorder.chats()
    assert first_body["model"] == "claude-sonnet-5-5"
    assert second_body["model"] == "claude-haiku-5-5"
    assert second_body["system"][0]["text"] == "Answer in French."
    assert second[-1]["model_label"] == "Claude Haiku 5.5"
    models = await sync_to_async(
        lambda: [Message.objects.get(id=assistant_id(f)).model for f in (first, second)]
    )()
    assert models == ["claude-sonnet-5-5", "claude-haiku-5-5"]
    page = (await sync_to_async(client.get)(f"/c/{conversation.id}/")).content.decode()
    assert "Claude Sonnet 5.5</span>" in page and "Claude Haiku 5.5</span>" in page
    assert "Answer in French." in page

    # Someone else's conversation: 404, nothing changed.
    other = Client()
    await sync_to_async(other.force_login)(bob)
    response = await sync_to_async(other.post)(
        reverse("conversation_settings", args=[conversation.id]),
        {"model": "claude-opus-5-5", "system_prompt": "", "thinking_effort": ""},
    )
    assert response.status_code == 404
    assert (await sync_to_async(Conversation.objects.get)(id=conversation.id)).model == (
        "claude-haiku-5-5"
    )
