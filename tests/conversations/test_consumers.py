"""The conversation websocket, end to end through the ASGI stack and the fake Claude.

These run twice in `make test`: on the in-memory channel layer and SQLite, and
on channels_redis with PostgreSQL (the `real_backends` pass).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from claude.pricing import Usage, cost
from conversations.models import Message
from tests.conftest import (
    assistant_id,
    completed,
    generations_settled,
    receive_frames,
    streamed_text,
)
from usage.models import ApiCall

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


def send_frame(text: str, client_id: str | None = None) -> dict:
    return {"type": "message.send", "text": text, "client_id": client_id or uuid.uuid4().hex}


@sync_to_async
def stored(message_id: str) -> Message:
    return Message.objects.get(id=message_id)


@sync_to_async
def calls_for(message_id: str) -> list[ApiCall]:
    return list(ApiCall.objects.filter(message_id=message_id))


# The tests marked `any_provider` run three times: on the Anthropic API's wire, and
# through the SDK's Bedrock and Vertex clients (tests/conftest.py).
REQUEST_ID_PREFIX = {"fake": "req_", "bedrock": "", "vertex": "msg_vrtx_"}


async def test_full_exchange_streams_saves_and_bills(
    alice, make_conversation, socket_for, any_provider
):
    """Alice's message is echoed to her socket, the answer streams in numbered
    coalesced deltas, and the stored reply and its one ApiCall match what she saw."""
    conversation = await sync_to_async(make_conversation)()
    socket, connected = await socket_for(alice, conversation.id)
    assert connected

    await socket.send_json_to(send_frame("Explain websockets [[fake tokens=60]]", "c-1"))
    frames = await receive_frames(socket, until=completed)

    created = [f["message"] for f in frames if f["type"] == "message.created"]
    assert [m["role"] for m in created] == ["user", "assistant"]
    assert created[0]["client_id"] == "c-1"
    reply_id = assistant_id(frames)
    deltas = [f for f in frames if f["type"] == "message.delta"]
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    # Coalesced: far fewer frames than the 60 tokens the fake sent.
    assert 1 <= len(deltas) < 60
    final = frames[-1]
    assert final["status"] == "complete" and final["stop_reason"] == "end_turn"
    assert final["seq"] == len(deltas) + 1
    text = streamed_text(frames, reply_id)
    assert text == final["text"] and len(text) > 50
    assert "<pre><code" in final["html"]

    reply = await stored(reply_id)
    assert reply.status == Message.Status.COMPLETE
    assert reply.text == text
    assert reply.content[-1] == {"type": "text", "text": text}
    [call] = await calls_for(reply_id)
    assert call.output_tokens == 60 and call.input_tokens > 0
    # The API's request id; Bedrock's x-amzn-RequestId (a UUID); on Vertex, which
    # sends none, the message's id.
    assert call.request_id.startswith(REQUEST_ID_PREFIX[any_provider])
    assert len(call.request_id) > 20
    assert (call.provider, call.endpoint, call.regional) == (any_provider, "global", False)
    assert call.model == "claude-sonnet-5-5"
    expected = cost(
        call.model,
        Usage(
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cache_write_5m_tokens=call.cache_write_5m_tokens,
            cache_write_1h_tokens=call.cache_write_1h_tokens,
            cache_read_tokens=call.cache_read_tokens,
        ),
    ).usd
    assert call.cost_usd == expected > Decimal(0)
    assert Decimal(final["cost_usd"]) == call.cost_usd
    await socket.disconnect()


async def test_other_tab_watches_the_stream_live(alice, make_conversation, socket_for):
    """A second socket of the same user gets the same frames as the sender."""
    conversation = await sync_to_async(make_conversation)()
    sender, _ = await socket_for(alice, conversation.id)
    watcher, _ = await socket_for(alice, conversation.id)
    await sender.send_json_to(send_frame("hello [[fake tokens=40]]"))
    sent = await receive_frames(sender, until=completed)
    watched = await receive_frames(watcher, until=completed)
    reply_id = assistant_id(sent)
    assert streamed_text(watched, reply_id) == streamed_text(sent, reply_id) == sent[-1]["text"]
    await sender.disconnect()
    await watcher.disconnect()


@pytest.mark.usefixtures("any_provider")
async def test_stop_keeps_the_partial_answer(alice, make_conversation, socket_for):
    """Stop mid-answer: the text so far stays, marked stopped, and the call is billed."""
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame("long one [[fake tokens=2000 tps=200]]"))
    frames = await receive_frames(socket, until=lambda f: f["type"] == "message.delta")
    reply_id = assistant_id(frames)
    await socket.send_json_to({"type": "generation.stop", "message_id": reply_id})
    frames += await receive_frames(socket, until=completed, timeout=5)
    final = frames[-1]
    assert final["status"] == "stopped"
    reply = await stored(reply_id)
    assert reply.status == Message.Status.STOPPED
    assert reply.text == streamed_text(frames, reply_id) == final["text"]
    assert 0 < len(reply.text.split()) < 2000
    [call] = await calls_for(reply_id)
    assert call.usage_estimated and call.output_tokens > 0 and call.cost_usd > 0
    await socket.disconnect()


@pytest.mark.usefixtures("any_provider")
async def test_reconnect_and_resume_gets_the_whole_answer_exactly_once(
    alice, make_conversation, socket_for
):
    """A tab closed mid-answer, reopened while it still streams: what was missed,
    then the rest live, with no gap and no duplicate."""
    conversation = await sync_to_async(make_conversation)()
    first, _ = await socket_for(alice, conversation.id)
    await first.send_json_to(send_frame("tell me a lot [[fake tokens=300 tps=300]]"))
    frames = await receive_frames(first, until=lambda f: f.get("seq") == 3)
    reply_id = assistant_id(frames)
    seen_text = streamed_text(frames, reply_id)
    last_seq = max(f["seq"] for f in frames if f["type"] == "message.delta")
    await first.disconnect()

    await asyncio.sleep(0.3)  # the answer goes on without any socket
    second, _ = await socket_for(alice, conversation.id)
    await second.send_json_to({"type": "resume", "message_id": reply_id, "last_seq": last_seq})
    later = await receive_frames(second, until=completed)
    seqs = [
        f["seq"] for f in later if f.get("message_id") == reply_id and f["type"] == "message.delta"
    ]
    assert seqs == list(range(last_seq + 1, last_seq + 1 + len(seqs)))
    assert not [f for f in later if f["type"] == "message.snapshot"]
    whole = seen_text + streamed_text(later, reply_id)
    reply = await stored(reply_id)
    assert reply.status == Message.Status.COMPLETE
    assert whole == reply.text == later[-1]["text"]
    await second.disconnect()


async def test_a_tab_opened_mid_answer_gets_it_exactly_once_however_late_it_resumes(
    alice, make_conversation, socket_for
):
    """Frames published between a new socket's connect and its client's resume are
    not sent ahead of the resume's answer: the client gets seq L+1.. in order, once."""
    conversation = await sync_to_async(make_conversation)()
    first, _ = await socket_for(alice, conversation.id)
    await first.send_json_to(send_frame("tell me a lot [[fake tokens=300 tps=300]]"))
    frames = await receive_frames(first, until=lambda f: f.get("seq") == 2)
    reply_id = assistant_id(frames)

    second, _ = await socket_for(alice, conversation.id)
    await asyncio.sleep(0.2)  # frames flow to the new socket before it resumes
    await second.send_json_to({"type": "resume", "message_id": reply_id, "last_seq": 2})
    later = await receive_frames(second, until=completed)
    seqs = [
        f["seq"] for f in later if f.get("message_id") == reply_id and f["type"] == "message.delta"
    ]
    assert seqs == list(range(3, 3 + len(seqs)))
    reply = await stored(reply_id)
    assert streamed_text(frames, reply_id) + streamed_text(later, reply_id) == reply.text


async def test_frames_published_while_a_resume_is_answered_follow_it_in_order(
    alice, make_conversation, socket_for, monkeypatch
):
    """A second tab resumes while the answer streams and its lookup is slow: the live
    frames that arrive meanwhile wait, and go out after the replayed ones, in seq
    order, each once."""
    import time

    from conversations import selectors

    conversation = await sync_to_async(make_conversation)()
    first, _ = await socket_for(alice, conversation.id)
    await first.send_json_to(send_frame("tell me a lot [[fake tokens=300 tps=300]]"))
    frames = await receive_frames(first, until=lambda f: f.get("seq") == 2)
    reply_id = assistant_id(frames)

    lookup = selectors.message_in_conversation

    def slow_lookup(**kwargs):
        time.sleep(0.15)  # several frames are published meanwhile
        return lookup(**kwargs)

    monkeypatch.setattr(selectors, "message_in_conversation", slow_lookup)
    second, _ = await socket_for(alice, conversation.id)
    await second.send_json_to({"type": "resume", "message_id": reply_id, "last_seq": 0})
    later = await receive_frames(second, until=completed)
    seqs = [
        f["seq"] for f in later if f.get("message_id") == reply_id and f["type"] == "message.delta"
    ]
    assert seqs == list(range(1, len(seqs) + 1))
    assert later[-1]["seq"] == len(seqs) + 1
    reply = await stored(reply_id)
    assert streamed_text(later, reply_id) == reply.text == later[-1]["text"]


async def test_resume_after_the_answer_finished_gets_it_from_the_database(
    alice, make_conversation, socket_for
):
    conversation = await sync_to_async(make_conversation)()
    first, _ = await socket_for(alice, conversation.id)
    await first.send_json_to(send_frame("short [[fake tokens=30]]"))
    frames = await receive_frames(first, until=lambda f: f["type"] == "message.delta")
    reply_id = assistant_id(frames)
    await first.disconnect()
    await generations_settled()

    second, _ = await socket_for(alice, conversation.id)
    await second.send_json_to({"type": "resume", "message_id": reply_id, "last_seq": 1})
    later = await receive_frames(second, until=completed)
    reply = await stored(reply_id)
    assert later[-1]["text"] == reply.text and reply.status == "complete"
    [call] = await calls_for(reply_id)
    assert later[-1]["usage"]["output_tokens"] == call.output_tokens == 30
    assert Decimal(later[-1]["cost_usd"]) == call.cost_usd
    await second.disconnect()


async def test_resend_with_the_same_client_id_is_not_a_second_message(
    alice, make_conversation, socket_for
):
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    frame = send_frame("once [[fake tokens=10]]", "same-id")
    await socket.send_json_to(frame)
    await receive_frames(socket, until=completed)
    await socket.send_json_to(frame)
    again = await receive_frames(
        socket,
        until=lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant",
    )
    assert again[0]["message"]["client_id"] == "same-id"
    count = await sync_to_async(Message.objects.filter(conversation=conversation).count)()
    assert count == 2
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


async def test_sending_while_an_answer_streams_is_refused(alice, make_conversation, socket_for):
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame("first [[fake tokens=500 tps=200]]"))
    first = await receive_frames(socket, until=lambda f: f["type"] == "message.delta")
    await socket.send_json_to(send_frame("second", "c-2"))
    frames = await receive_frames(socket, until=lambda f: f["type"] == "error")
    assert frames[-1]["code"] == "generation_in_progress" and frames[-1]["client_id"] == "c-2"
    assert await sync_to_async(Message.objects.filter(conversation=conversation).count)() == 2
    await socket.send_json_to({"type": "generation.stop", "message_id": assistant_id(first)})
    await receive_frames(socket, until=completed)
    await socket.disconnect()


@pytest.mark.parametrize(
    ("directive", "code"),
    [
        ("error=overloaded_error", "overloaded"),
        ("error=rate_limit_error", "rate_limited"),
        ("error=authentication_error", "auth"),
        ("error=api_error", "upstream"),
    ],
)
@pytest.mark.usefixtures("any_provider")
async def test_upstream_error_is_shown_and_nothing_is_lost(
    alice, make_conversation, socket_for, directive, code
):
    """Claude fails before answering: a human message and a Retry, the question kept."""
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame(f"please [[fake {directive}]]"))
    frames = await receive_frames(socket, until=completed)
    final = frames[-1]
    assert final["status"] == "error"
    assert final["error"]["code"] == code and len(final["error"]["message"]) > 20
    messages = await sync_to_async(lambda: list(conversation.messages.order_by("position")))()
    assert messages[0].text.startswith("please") and messages[1].status == "error"
    [call] = await calls_for(str(messages[1].id))
    assert call.error_type and call.cost_usd == 0
    await socket.disconnect()


@pytest.mark.usefixtures("any_provider")
async def test_mid_stream_error_keeps_partial_text_and_retry_replaces_it(
    alice, make_conversation, socket_for
):
    conversation = await sync_to_async(make_conversation)(
        system_prompt="[[fake error=overloaded_error error_at=20 error_times=1]]"
    )
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame("hello there"))
    frames = await receive_frames(socket, until=completed)
    failed_id = assistant_id(frames)
    assert frames[-1]["status"] == "error" and frames[-1]["error"]["code"] == "overloaded"
    failed = await stored(failed_id)
    assert failed.text and failed.text == streamed_text(frames, failed_id)

    await socket.send_json_to({"type": "message.retry", "message_id": failed_id})
    frames = await receive_frames(socket, until=completed)
    assert frames[0] == {"type": "message.deleted", "message_id": failed_id}
    new_id = assistant_id(frames)
    assert frames[-1]["status"] == "complete"
    messages = await sync_to_async(lambda: list(conversation.messages.order_by("position")))()
    assert [m.id for m in messages][1] == uuid.UUID(new_id) and len(messages) == 2
    await socket.disconnect()


async def test_anonymous_socket_is_refused(make_conversation, socket_for):
    conversation = await sync_to_async(make_conversation)()
    _, connected = await socket_for(None, conversation.id)
    assert not connected


async def test_another_member_of_the_team_cannot_open_the_socket(
    bob, make_conversation, socket_for
):
    conversation = await sync_to_async(make_conversation)()
    _, connected = await socket_for(bob, conversation.id)
    assert not connected


async def test_another_team_gets_nothing(alice, carol, make_conversation, socket_for):
    """Carol can neither open alice's socket nor hear anything from it on her own."""
    conversation = await sync_to_async(make_conversation)()
    carols_conversation = await sync_to_async(make_conversation)(carol)
    _, connected = await socket_for(carol, conversation.id)
    assert not connected
    carols_socket, connected = await socket_for(carol, carols_conversation.id)
    assert connected
    alices_socket, _ = await socket_for(alice, conversation.id)
    await alices_socket.send_json_to(send_frame("secret plans [[fake tokens=20]]"))
    await receive_frames(alices_socket, until=completed)
    assert await carols_socket.receive_nothing(timeout=0.3)
    # Nor can she resume or stop one of alice's replies through her own socket.
    reply = await sync_to_async(lambda: conversation.messages.get(role="assistant"))()
    await carols_socket.send_json_to({"type": "resume", "message_id": str(reply.id), "last_seq": 0})
    [frame] = await receive_frames(carols_socket, until=lambda f: True)
    assert frame["type"] == "error" and frame["code"] == "not_found"
    await carols_socket.disconnect()
    await alices_socket.disconnect()


async def test_unknown_conversation_is_refused(alice, socket_for):
    _, connected = await socket_for(alice, uuid.uuid4())
    assert not connected


@pytest.mark.parametrize("origin", ["http://evil.example", None])
async def test_foreign_or_missing_origin_is_refused(alice, make_conversation, socket_for, origin):
    conversation = await sync_to_async(make_conversation)()
    _, connected = await socket_for(alice, conversation.id, origin=origin)
    assert not connected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("this is not json", "bad_json"),
        (json.dumps(["a", "list"]), "bad_frame"),
        (json.dumps({"type": "launch.rockets"}), "unknown_type"),
        (json.dumps({"type": "message.send", "text": "no id"}), "bad_frame"),
        (json.dumps({"type": "message.send", "client_id": "x"}), "bad_frame"),
        (json.dumps({"type": "resume", "last_seq": 1}), "bad_frame"),
        (json.dumps({"type": "generation.stop", "message_id": "not-a-uuid"}), "bad_frame"),
        (
            json.dumps({"type": "message.send", "text": "x" * 1_000_000, "client_id": "big"}),
            "frame_too_large",
        ),
        (
            json.dumps({"type": "message.send", "text": "x" * 150_000, "client_id": "long"}),
            "message_too_long",
        ),
        (
            json.dumps({"type": "message.send", "text": "   ", "client_id": "blank"}),
            "empty_message",
        ),
    ],
)
async def test_malformed_frames_get_an_error_and_the_socket_stays_usable(
    alice, make_conversation, socket_for, raw, code
):
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_to(text_data=raw)
    [frame] = await receive_frames(socket, until=lambda f: True)
    assert frame["type"] == "error" and frame["code"] == code and frame["message"]
    assert await sync_to_async(Message.objects.filter(conversation=conversation).count)() == 0
    await socket.send_json_to(send_frame("still here? [[fake tokens=5]]"))
    frames = await receive_frames(socket, until=completed)
    assert frames[-1]["status"] == "complete"
    await socket.disconnect()


async def test_partial_text_is_checkpointed_with_its_sequence_number(
    alice, make_conversation, socket_for, settings
):
    """Mid-answer, the stored row holds exactly the text of frames 1..seq, so a page
    loaded from it and resumed from that seq has no gap and no duplicate."""
    settings.CHAT_CHECKPOINT_SECONDS = 0.1
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame("go on [[fake tokens=600 tps=300]]"))
    frames = await receive_frames(socket, until=lambda f: f.get("seq") == 12)
    reply_id = assistant_id(frames)
    row = await stored(reply_id)
    assert row.status == Message.Status.STREAMING and row.heartbeat_at is not None
    assert 1 <= row.seq <= 12
    by_seq = {f["seq"]: f.get("text", "") for f in frames if f["type"] == "message.delta"}
    assert row.text == "".join(by_seq[seq] for seq in range(1, row.seq + 1))
    await socket.send_json_to({"type": "generation.stop", "message_id": reply_id})
    await receive_frames(socket, until=completed)
    await socket.disconnect()


@pytest.mark.usefixtures("any_provider")
async def test_a_long_chat_reads_its_history_from_the_prompt_cache(
    alice, make_conversation, socket_for
):
    """The second turn re-sends the first from the cache: a cache read, billed at the read price."""
    conversation = await sync_to_async(make_conversation)(
        system_prompt="You are a careful reviewer. " * 400
    )
    socket, _ = await socket_for(alice, conversation.id)
    for turn in ("first question [[fake tokens=20]]", "second question [[fake tokens=20]]"):
        await socket.send_json_to(send_frame(turn))
        await receive_frames(socket, until=completed)
    calls = await sync_to_async(
        lambda: list(ApiCall.objects.filter(conversation=conversation).order_by("created_at"))
    )()
    assert len(calls) == 2
    assert calls[0].cache_write_5m_tokens > 0 and calls[0].cache_read_tokens == 0
    assert calls[1].cache_read_tokens >= calls[0].cache_write_5m_tokens
    await socket.disconnect()


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="about the Redis channel layer: runs in the Redis pass"
)
async def test_a_socket_idle_longer_than_the_redis_read_timeout_stays_usable(
    alice, make_conversation, socket_for
):
    """redis-py's 5 s default read timeout must not close a quiet socket."""
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    await asyncio.sleep(6)
    await socket.send_json_to(send_frame("still there? [[fake tokens=5]]"))
    frames = await receive_frames(socket, until=completed)
    assert frames[-1]["status"] == "complete"
    await socket.disconnect()
