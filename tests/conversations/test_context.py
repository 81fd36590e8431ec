"""Long conversations, offline: the API's compaction on a model that has it (the
fake compacts as the API does), a kept summary on one that does not; either way
the turns stay stored and the page marks where they were condensed.

The threshold is set low (CHAT_CONDENSE_AT_TOKENS = 300 tokens) and each
question is about 100 tokens, so the third question passes it.
"""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from conversations.context import SUMMARY_HEADING, SUMMARY_INSTRUCTION
from conversations.models import Message
from tests.conftest import assistant_id, completed, receive_frames
from tests.conversations.test_branches import plain
from usage.models import ApiCall

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


def question(n: int) -> str:
    return (f"Question {n}: " + "tell me more about this " * 16).strip()  # about 100 tokens


async def ask(socket, text: str) -> list[dict]:
    await socket.send_json_to({"type": "message.send", "text": text, "client_id": uuid.uuid4().hex})
    return await receive_frames(socket, until=completed)


def prompt_tokens(call: ApiCall) -> int:
    return (
        call.input_tokens
        + call.cache_read_tokens
        + call.cache_write_5m_tokens
        + call.cache_write_1h_tokens
    )


async def test_compaction_condenses_older_turns_and_the_block_goes_back(
    alice, make_conversation, socket_for, recorder, settings
):
    """On Sonnet 5.5 the requests of a long branch ask for compaction (the beta
    header, `compact_20260112` with the threshold); past it the answer starts with
    the compaction block, which is stored, marked on the page and sent back, and
    the next prompt is the summary and what follows it, not every turn."""
    settings.CHAT_CONDENSE_AT_TOKENS = 300
    conversation = await sync_to_async(make_conversation)(system_prompt="[[fake tokens=10]]")
    socket, _ = await socket_for(alice, conversation.id)
    await ask(socket, question(1))
    await ask(socket, question(2))
    third = await ask(socket, question(3))
    end = third[-1]
    assert end["condensed"].startswith("Summary of the earlier conversation (3 user turns)")

    _, body, headers = recorder.requests[-1]
    assert "compact-2026-01-12" in headers.get("anthropic-beta", "")
    assert body["context_management"] == {
        "edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 300}}]
    }
    answer = await sync_to_async(Message.objects.get)(id=assistant_id(third))
    assert answer.content[0]["type"] == "compaction"
    assert answer.content[-1]["type"] == "text" and answer.text
    call = await sync_to_async(ApiCall.objects.get)(message_id=answer.id)
    assert call.output_tokens > 10  # the summary's tokens are billed with the answer

    fourth = await ask(socket, question(4))
    body = recorder.chats()[-1]
    assert body["messages"][5]["role"] == "assistant"
    assert body["messages"][5]["content"][0]["type"] == "compaction"
    assert body["messages"][5]["content"][0]["content"] == end["condensed"]
    call = await sync_to_async(ApiCall.objects.get)(message_id=assistant_id(fourth))
    assert prompt_tokens(call) < 300  # the summary stands for the first three turns

    # Nothing was dropped: every turn is stored and on the page, with the marker.
    assert await sync_to_async(Message.objects.filter(conversation=conversation).count)() == 8
    client = Client()
    await sync_to_async(client.force_login)(alice)
    page = (await sync_to_async(client.get)(f"/c/{conversation.id}/")).content.decode()
    assert page.count('<div class="bubble">Question 1:') == 1
    assert "Earlier turns were condensed here" in page
    assert 'data-window="1000000"' in page and "% of context" in page


async def test_a_model_without_compaction_summarises_once_and_keeps_the_summary(
    alice, make_conversation, socket_for, recorder, settings
):
    """On Haiku 5.5 the third question first gets a summary of the two turns before
    it (one call, billed as such), kept on the last of them; that answer and the
    next are asked with the summary and the turns after it only."""
    settings.CHAT_CONDENSE_AT_TOKENS = 300
    conversation = await sync_to_async(make_conversation)(
        model="claude-haiku-5-5", system_prompt="[[fake tokens=10]]"
    )
    socket, _ = await socket_for(alice, conversation.id)
    first = await ask(socket, question(1))
    second = await ask(socket, question(2))
    frames = await ask(socket, question(3))
    summary_call, answer_call = recorder.chats()[-2:]
    assert plain(summary_call["messages"]) == [
        ("user", question(1)),
        ("assistant", await text_of(assistant_id(first))),
        ("user", question(2)),
        ("assistant", await text_of(assistant_id(second))),
        ("user", SUMMARY_INSTRUCTION),
    ]
    assert not summary_call.get("stream")
    kept = await sync_to_async(Message.objects.get)(id=assistant_id(second))
    assert kept.summary
    assert SUMMARY_HEADING in answer_call["system"][0]["text"]
    assert kept.summary in answer_call["system"][0]["text"]
    assert plain(answer_call["messages"]) == [("user", question(3))]
    condensed = next(f for f in frames if f["type"] == "message.condensed")
    assert condensed == {
        "type": "message.condensed",
        "message_id": str(kept.id),
        "condensed": kept.summary,
    }
    purposes = await sync_to_async(
        lambda: sorted(
            ApiCall.objects.filter(conversation_id=conversation.id).values_list(
                "purpose", flat=True
            )
        )
    )()
    assert purposes == ["chat", "chat", "chat", "condense"]

    await ask(socket, question(4))
    [latest] = recorder.chats()[-1:]
    assert [text for _, text in plain(latest["messages"])][::2] == [question(3), question(4)]
    assert len(recorder.chats()) == 5  # no second summary


@sync_to_async
def text_of(message_id: str) -> str:
    return Message.objects.get(id=message_id).text
