"""Faults a review of the delivery path found, each shown failing before its fix.

Run twice in `make test`: SQLite with the in-memory layer, then PostgreSQL and
Redis (the `real_backends` pass).
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from asgiref.sync import sync_to_async

from conversations.models import Message
from conversations.streaming import delivery, publisher
from conversations.streaming.frames import conversation_group
from conversations.streaming.replay import MemoryReplayBuffer, RedisReplayBuffer
from tests.conftest import completed, generations_settled, receive_frames
from tests.conversations.sockets import pong, send_frame
from usage.models import ApiCall

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


def applied_text(frames: list[dict], reply_id: str) -> str:
    """The reply's text as a client applies it: created state, snapshots, deltas in
    seq order (duplicates dropped); a gap fails the test."""
    text, last = "", 0
    for frame in frames:
        if frame["type"] == "message.created" and frame["message"]["id"] == reply_id:
            if frame["message"]["seq"] >= last:
                text, last = frame["message"]["text"], frame["message"]["seq"]
        elif frame.get("message_id") != reply_id:
            continue
        elif frame["type"] == "message.snapshot" and frame["seq"] >= last:
            text, last = frame["text"], frame["seq"]
        elif frame["type"] == "message.delta" and frame["seq"] > last:
            assert frame["seq"] == last + 1, f"gap after {last}: {frame['seq']}"
            text, last = text + frame.get("text", ""), frame["seq"]
        elif frame["type"] == "message.completed":
            return frame["text"]
    return text


async def test_a_missed_message_created_is_made_good(alice, make_conversation, signed_in, monkeypatch):
    """The layer lost the reply's `message.created` for one socket: that socket is
    told of the pair before the reply's first frame, and a resume from 0 below what
    it was sent is answered from 0."""
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    watcher, _ = await session.socket(conversation.id)
    assert await pong(watcher)
    [unreached] = publisher._sockets[conversation_group(conversation.id)]
    real_publish = publisher.group_publish

    async def lose_created_for_the_watcher(group, event):
        if event["type"] == "chat.broadcast" and '"message.created"' in event["frame"]:
            for socket in tuple(publisher._sockets.get(group, ())):
                if socket is not unreached:
                    await socket.relay(event)
            return None
        return await real_publish(group, event)

    monkeypatch.setattr(publisher, "group_publish", lose_created_for_the_watcher)
    sender, _ = await session.socket(conversation.id)
    await sender.send_json_to(send_frame("long [[fake tokens=60 tps=40]]"))
    frames = await receive_frames(watcher, until=lambda f: f["type"] == "message.delta")
    created = [f["message"] for f in frames if f["type"] == "message.created"]
    assert [m["role"] for m in created] == ["user", "assistant"]
    reply_id = created[1]["id"]
    # Below the socket's cursor: still answered, from the start.
    await watcher.send_json_to({"type": "resume", "message_id": reply_id, "last_seq": 0})
    rest = await receive_frames(watcher, until=completed, timeout=20)
    answer = [f for f in rest if f["type"] in ("message.delta", "message.snapshot")]
    # Live frames sent before the server read the resume may come first; the
    # answer to the resume itself starts from 0 (a snapshot, or seq 1 again).
    assert any(f["type"] == "message.snapshot" or f["seq"] == 1 for f in answer), answer[:3]
    # As the client applies everything it got (it had seq 1 before it resumed).
    assert applied_text(frames + rest, reply_id) == rest[-1]["text"]


async def test_a_tab_reconnecting_after_another_sent_sees_both_messages(
    alice, make_conversation, signed_in
):
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    tab_b, _ = await session.socket(conversation.id)
    await tab_b.send_json_to(send_frame("from tab B [[fake tokens=80 tps=40]]"))
    await asyncio.sleep(0.5)
    tab_a, _ = await session.socket(conversation.id)  # reconnected: knows no reply
    await tab_a.send_json_to({"type": "ping"})
    frames = await receive_frames(tab_a, until=completed, timeout=20)
    created = [f["message"] for f in frames if f["type"] == "message.created"]
    assert [m["role"] for m in created] == ["user", "assistant"]
    assert created[0]["text"] == "from tab B [[fake tokens=80 tps=40]]"
    reply = await sync_to_async(Message.objects.get)(id=created[1]["id"])
    assert applied_text(frames, str(reply.id)) == reply.text


async def test_a_failing_layer_does_not_strand_the_reply(
    alice, make_conversation, signed_in, monkeypatch
):
    """Redis away while a reply publishes: the reply is still saved and billed."""
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)
    real_publish = publisher.group_publish

    async def failing(group, event):
        if event["type"] == "chat.frame":
            raise ConnectionError("redis went away")
        return await real_publish(group, event)

    monkeypatch.setattr(publisher, "group_publish", failing)
    await socket.send_json_to(send_frame("hi [[fake tokens=10]]"))
    await asyncio.sleep(0.5)
    await generations_settled()
    statuses = await sync_to_async(list)(
        Message.objects.filter(conversation=conversation).values_list("role", "status")
    )
    assert statuses == [("user", "complete"), ("assistant", "complete")]
    calls = await sync_to_async(ApiCall.objects.filter(conversation_uuid=conversation.id).count)()
    assert calls == 1


async def test_a_failing_broadcast_after_commit_still_starts_the_reply(
    alice, make_conversation, signed_in, monkeypatch
):
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)
    assert await pong(socket)

    async def failing(*args, **kwargs):
        raise ConnectionError("redis went away")

    monkeypatch.setattr(publisher, "broadcast", failing)
    await socket.send_json_to(send_frame("hi [[fake tokens=10]]"))
    await asyncio.sleep(0.5)
    await generations_settled()
    statuses = await sync_to_async(list)(
        Message.objects.filter(conversation=conversation).values_list("status", flat=True)
    )
    assert statuses == ["complete", "complete"]
    await socket.send_json_to({"type": "ping"})  # and the socket lives
    await receive_frames(socket, until=lambda f: f["type"] == "pong")


def test_sign_out_works_while_the_layer_is_down(alice, monkeypatch, client):
    from channels.layers import get_channel_layer
    from django.contrib.sessions.models import Session

    async def down(group, message):
        raise ConnectionError("redis went away")

    monkeypatch.setattr(get_channel_layer(), "group_send", down)
    client.force_login(alice)
    response = client.post("/accounts/logout/", HTTP_ORIGIN="http://localhost")
    assert response.status_code == 302
    assert Session.objects.count() == 0


async def _delivery_with(sent: list[str]) -> delivery.SocketDelivery:
    async def send(text):
        sent.append(text)

    async def close(code):
        pass

    socket = delivery.SocketDelivery(conversation_id=uuid.uuid4(), send=send, close=close)
    await socket.release()
    return socket


async def test_a_failed_record_read_does_not_leave_frames_waiting(monkeypatch):
    buffer = MemoryReplayBuffer()
    monkeypatch.setattr(delivery, "replay_buffer", lambda: buffer)
    sent: list[str] = []
    socket = await _delivery_with(sent)
    reply = str(uuid.uuid4())
    socket._known.add(reply)
    for seq in (1, 2, 3):
        await buffer.append(reply, seq=seq, frame=f"f{seq}")
    calls = {"n": 0}
    real_read = buffer.read_after

    async def flaky(message_id, last_seq):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("Timeout connecting to server")
        return await real_read(message_id, last_seq)

    monkeypatch.setattr(buffer, "read_after", flaky)
    await socket.relay({"type": "chat.frame", "message_id": reply, "seq": 2, "frame": "f2"})
    await asyncio.sleep(0.05)
    await socket.relay({"type": "chat.frame", "message_id": reply, "seq": 3, "frame": "f3"})
    await asyncio.sleep(0.05)
    await socket.close()
    # The first read failed; the frames that waited went out after the second, the
    # gap before them filled.
    assert sent == ["f1", "f2", "f3"]


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="about the Redis replay buffer")
async def test_an_empty_redis_read_does_not_skip_a_frame_landing_meanwhile(monkeypatch):
    """Nothing after the cursor, and a frame lands between the buffer's two Redis
    calls: the socket must still send it."""
    buffer = RedisReplayBuffer(os.environ["REDIS_URL"])
    monkeypatch.setattr(delivery, "replay_buffer", lambda: buffer)
    sent: list[str] = []
    socket = await _delivery_with(sent)
    reply = str(uuid.uuid4())
    socket._known.add(reply)
    for seq in (1, 2, 3):
        await buffer.append(reply, seq=seq, frame=f"f{seq}")
        await socket.relay({"type": "chat.frame", "message_id": reply, "seq": seq, "frame": f"f{seq}"})
    redis = buffer._redis()
    real_exists = redis.exists

    async def exists_while_a_frame_lands(key):
        monkeypatch.setattr(redis, "exists", real_exists)
        await buffer.append(reply, seq=4, frame="f4")
        await socket.relay({"type": "chat.frame", "message_id": reply, "seq": 4, "frame": "f4"})
        return await real_exists(key)

    monkeypatch.setattr(redis, "exists", exists_while_a_frame_lands)
    await socket._answer_then_release(socket._catch_up, [reply])
    await socket.close()
    await redis.delete(f"replay:{reply}")
    assert sent == ["f1", "f2", "f3", "f4"]


async def test_a_silent_reply_is_read_less_often_until_it_speaks(monkeypatch):
    """A slow reply's record is read after 1.25 s of silence, then after 2.5 s and
    5 s; a frame heard starts over. Read at a fixed 1.25 s, every socket of an
    overloaded host read every record again and again (a quarter of the web
    process's CPU at 200 streams)."""
    buffer = MemoryReplayBuffer()
    monkeypatch.setattr(delivery, "replay_buffer", lambda: buffer)
    sent: list[str] = []
    socket = await _delivery_with(sent)
    reply = str(uuid.uuid4())
    socket._known.add(reply)
    await buffer.append(reply, seq=1, frame="f1")
    await socket.relay({"type": "chat.frame", "message_id": reply, "seq": 1, "frame": "f1"})
    waits = [socket._quiet_wait(reply)]
    for _ in range(3):  # three reads that find nothing new
        await socket._answer_then_release(socket._catch_up, [reply])
        waits.append(socket._quiet_wait(reply))
    assert waits == [1.25, 2.5, 5.0, 5.0]
    # A frame found by the next read (missed live) starts the waits over.
    await buffer.append(reply, seq=2, frame="f2")
    await socket._answer_then_release(socket._catch_up, [reply])
    assert socket._quiet_wait(reply) == 1.25
    await socket.close()
    assert sent == ["f1", "f2"]


async def test_a_reply_with_no_frame_yet_is_not_read_from_the_database_until_the_stored_check(
    monkeypatch,
):
    """Before its first token a reply has no record; the row says nothing new until
    `STORED_CHECK_SECONDS` of silence, so earlier catch-ups must not read it (on a
    saturated host those reads were most of the catch-up's cost). After it, the
    row is read, and a reply that ended without a frame is ended on the socket."""
    buffer = MemoryReplayBuffer()
    monkeypatch.setattr(delivery, "replay_buffer", lambda: buffer)
    row_reads: list[str] = []

    async def stored_reply(conversation_id, message_id):
        row_reads.append(message_id)
        return None

    monkeypatch.setattr(delivery, "_stored_reply", stored_reply)
    sent: list[str] = []
    socket = await _delivery_with(sent)
    reply = str(uuid.uuid4())
    socket._known.add(reply)
    socket._follow(reply)  # announced by its message.created
    for _ in range(3):
        await socket._answer_then_release(socket._catch_up, [reply])
    assert row_reads == []
    assert socket._quiet_wait(reply) == 5.0
    socket._heard[reply] -= delivery.STORED_CHECK_SECONDS
    await socket._answer_then_release(socket._catch_up, [reply])
    assert row_reads == [reply]
    await socket.close()
