"""Export (JSON in the API's shapes, Markdown) and import, with their limits.

The export is replayed through the real SDK against the fake Claude, as anyone
would send it to the API; an import is refused whole, with a reason, when it
does not parse or fit, and one over the size limit before its body is read.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import anthropic
import httpx2
import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent
from claude.fake import StreamingASGITransport, create_fake_app
from conversations.models import Conversation, Message
from tests.attachments.test_views import RecordingBody, asgi_call, signed_in_headers
from tests.conftest import assistant_id, completed, receive_frames
from usage.models import ApiCall

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


def send(text: str) -> dict:
    return {"type": "message.send", "text": text, "client_id": uuid.uuid4().hex}


async def branched_conversation(alice, make_conversation, socket_for) -> tuple:
    """Two questions, the second edited once: two branches, the edit on show."""
    conversation = await sync_to_async(make_conversation)(system_prompt="Be kind.")
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send("What is a cache? [[fake tokens=8]]"))
    await receive_frames(socket, until=completed)
    await socket.send_json_to(send("And a queue? [[fake tokens=8]]"))
    frames = await receive_frames(socket, until=completed)
    second_user = next(
        f["message"]["id"]
        for f in frames
        if f["type"] == "message.created" and f["message"]["role"] == "user"
    )
    await socket.send_json_to(
        {
            "type": "message.edit",
            "message_id": second_user,
            "text": "And a stack? [[fake tokens=8]]",
            "client_id": "e-1",
        }
    )
    frames = await receive_frames(socket, until=completed)
    return conversation, assistant_id(frames)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def texts(messages: list[dict]) -> list[str]:
    return [
        "".join(b.get("text", "") for b in m["content"] if b.get("type") == "text")
        for m in messages
    ]


async def test_the_json_export_is_the_api_request_and_replays_through_the_sdk(
    alice, make_conversation, socket_for
):
    """`export.json` holds model, system and the branch on show as `messages` in
    the API's shapes (sent as they are, through the real SDK, the fake answers
    them), the other branch too, and each answer's usage and cost as billed."""
    conversation, leaf = await branched_conversation(alice, make_conversation, socket_for)
    client = await sync_to_async(signed_in)(alice)
    response = await sync_to_async(client.get)(
        reverse("conversation_export_json", args=[conversation.id])
    )
    assert response.status_code == 200
    assert "attachment;" in response["Content-Disposition"]
    document = json.loads(response.content)

    assert document["model"] == "claude-sonnet-5-5"
    assert document["system"] == "Be kind."
    assert [m["role"] for m in document["messages"]] == ["user", "assistant", "user", "assistant"]
    assert texts(document["messages"])[0] == "What is a cache? [[fake tokens=8]]"
    assert texts(document["messages"])[2] == "And a stack? [[fake tokens=8]]"
    assert document["active_leaf_id"] == leaf
    [other] = document["branches"]
    assert texts(other["messages"])[2] == "And a queue? [[fake tokens=8]]"

    answers = [t for t in document["turns"] if t["role"] == "assistant"]
    assert len(answers) == 3
    for turn in answers:
        call = await sync_to_async(ApiCall.objects.get)(message_id=turn["id"])
        assert turn["usage"]["input_tokens"] == call.input_tokens
        assert turn["usage"]["output_tokens"] == call.output_tokens
        assert Decimal(turn["cost_usd"]) == call.cost_usd
        assert turn["model_label"] == "Claude Sonnet 5.5"

    # Replayed as it is, plus one more question, through the SDK against the fake.
    sdk = anthropic.AsyncAnthropic(
        api_key="test",
        base_url="http://fake",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=StreamingASGITransport(app=create_fake_app())),
    )
    async with sdk:
        reply = await sdk.messages.create(
            model=document["model"],
            system=document["system"],
            max_tokens=document["max_tokens"],
            messages=[
                *document["messages"],
                {"role": "user", "content": "One more? [[fake tokens=5]]"},
            ],
        )
        assert reply.stop_reason == "end_turn"
        assert reply.usage.output_tokens == 5
        # The other branch replays too.
        other_reply = await sdk.messages.create(
            model=document["model"],
            max_tokens=16,
            messages=[*other["messages"], {"role": "user", "content": "Go on"}],
        )
        assert other_reply.content[0].text

    events = await sync_to_async(list)(AuditEvent.objects.filter(action="exported"))
    assert [e.target for e in events] == [f"conversation:{conversation.id}"]
    assert events[0].actor_id == alice.id and events[0].details["format"] == "json"


async def test_the_markdown_export_reads_as_the_branch_on_show(
    alice, make_conversation, socket_for
):
    conversation, _ = await branched_conversation(alice, make_conversation, socket_for)
    client = await sync_to_async(signed_in)(alice)
    response = await sync_to_async(client.get)(
        reverse("conversation_export_markdown", args=[conversation.id])
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    text = response.content.decode()
    assert text.startswith("# What is a cache?")
    assert "## You · version 2 of 2" in text and "And a stack?" in text
    assert "And a queue?" not in text
    assert "## Claude (Claude Sonnet 5.5)" in text
    assert "> Be kind." in text


@pytest.mark.parametrize("name", ["conversation_export_json", "conversation_export_markdown"])
async def test_an_export_is_404_for_anyone_who_may_not_see_it(
    alice, bob, carol, make_conversation, name
):
    conversation = await sync_to_async(make_conversation)()
    for user in (bob, carol):
        client = await sync_to_async(signed_in)(user)
        response = await sync_to_async(client.get)(reverse(name, args=[conversation.id]))
        assert response.status_code == 404
    anonymous = await sync_to_async(Client().get)(reverse(name, args=[conversation.id]))
    assert anonymous.status_code == 302
    assert not await sync_to_async(AuditEvent.objects.filter(action="exported").exists)()


def upload(client: Client, content: bytes, *, json_answer: bool = True, name="chat.json"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    headers = {"HTTP_ACCEPT": "application/json"} if json_answer else {}
    return client.post(
        reverse("conversation_import"),
        {"file": SimpleUploadedFile(name, content, content_type="application/json")},
        **headers,
    )


async def test_an_export_imports_back_as_a_new_conversation_with_its_branches(
    alice, bob, make_conversation, socket_for
):
    """Bob imports Alice's export: a new conversation of his, every message of
    both branches, the same branch on show; the page redirect works too."""
    conversation, _ = await branched_conversation(alice, make_conversation, socket_for)
    exported = (
        await sync_to_async((await sync_to_async(signed_in)(alice)).get)(
            reverse("conversation_export_json", args=[conversation.id])
        )
    ).content

    client = await sync_to_async(signed_in)(bob)
    response = await sync_to_async(upload)(client, exported)
    assert response.status_code == 201
    imported = await sync_to_async(Conversation.objects.get)(id=response.json()["conversation_id"])
    assert imported.owner_id == bob.id and imported.system_prompt == "Be kind."
    rows = await sync_to_async(list)(Message.objects.filter(conversation=imported))
    assert len(rows) == 6
    leaf = next(m for m in rows if m.id == imported.active_leaf_id)
    path = []
    node = leaf
    by_id = {m.id: m for m in rows}
    while node is not None:
        path.append(node.text)
        node = by_id.get(node.parent_id)
    assert path[::-1][2] == "And a stack? [[fake tokens=8]]"

    page = await sync_to_async(client.get)(f"/c/{imported.id}/")
    assert page.status_code == 200 and "And a stack?" in page.content.decode()

    redirected = await sync_to_async(upload)(client, exported, json_answer=False)
    assert redirected.status_code == 302
    assert redirected["Location"].startswith("/c/")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not json at all", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"model": "claude-sonnet-5-5"}', "messages"),
        (
            b'{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}',
            "unknown model",
        ),
        (
            b'{"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": "a"},'
            b' {"role": "user", "content": "b"}]}',
            "roles must alternate",
        ),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
)
async def test_a_file_that_is_no_export_is_refused_whole_with_a_reason(alice, content, reason):
    client = await sync_to_async(signed_in)(alice)
    response = await sync_to_async(upload)(client, content)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert not await sync_to_async(Conversation.objects.exists)()


async def test_an_import_needs_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    await sync_to_async(client.force_login)(alice)
    body = b'{"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": "hi"}]}'
    response = await sync_to_async(upload)(client, body)
    assert response.status_code == 403
    assert not await sync_to_async(Conversation.objects.exists)()


async def test_an_import_over_the_limit_is_413_before_its_body_is_read(alice, settings):
    """A Content-Length over IMPORT_MAX_BYTES: 413 from the gate, no chunk pulled;
    one that lies about its length is cut once the body passes the limit."""
    settings.IMPORT_MAX_BYTES = 1000
    headers = await signed_in_headers(alice)
    headers += [
        (b"content-type", b"multipart/form-data; boundary=x"),
        (b"content-length", str(10 * 1024**3).encode()),
    ]
    body = RecordingBody([b"x" * 65536] * 4)
    status, _, answer = await asgi_call(reverse("conversation_import"), body, headers)
    assert status == 413
    assert json.loads(answer)["code"] == "import_too_large"
    assert body.pulled == 0

    # Small enough for the gate, too big for the limit once read: 413 from the view.
    big = json.dumps(
        {"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": "x" * 5000}]}
    ).encode()
    client = await sync_to_async(signed_in)(alice)
    settings.IMPORT_MAX_BYTES = 2000
    response = await sync_to_async(upload)(client, big[:70_000])
    assert response.status_code == 413
    assert not await sync_to_async(Conversation.objects.exists)()


async def test_an_import_goes_to_the_team_the_person_works_in(alice, world):
    """Someone in two teams who switched to the second imports into it, as a new
    conversation would be."""
    from accounts.models import Membership, Team

    globex = await sync_to_async(Team.objects.get)(slug="globex")
    await sync_to_async(Membership.objects.create)(user=alice, team=globex, role="member")
    client = await sync_to_async(signed_in)(alice)
    exported = json.dumps(
        {"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    first = await sync_to_async(upload)(client, exported)
    assert (
        await sync_to_async(Conversation.objects.get)(id=first.json()["conversation_id"])
    ).team_id != globex.pk
    switched = await sync_to_async(client.post)("/teams/globex/switch/")
    assert switched.status_code == 302
    second = await sync_to_async(upload)(client, exported)
    imported = await sync_to_async(Conversation.objects.get)(id=second.json()["conversation_id"])
    assert imported.team_id == globex.pk
