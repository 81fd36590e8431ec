"""Faults an independent client found in the websocket, each fixed and kept fixed.

Run twice in `make test`: on SQLite with the in-memory layer, and on PostgreSQL
with Redis (the `real_backends` pass).
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async

from claude.catalog import model_info
from conversations import services
from conversations.models import Conversation, Message
from conversations.streaming import publisher
from conversations.streaming.frames import conversation_group, model_label
from tests.conftest import (
    ORIGIN,
    assistant_id,
    completed,
    receive_frames,
    streamed_text,
)
from tests.conversations.sockets import expect_close, pong, send_frame

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


# --- 3. Frames that killed the socket now get an error frame ------------------------


@pytest.mark.parametrize(
    "raw, code",
    [
        ("[" * 50_000 + "]" * 50_000, "bad_json"),
        (json.dumps({"type": "message.send", "text": "\ud800", "client_id": "c-1"}), "bad_frame"),
        ('{"type": "message.send", "text": "\\ud800 lone", "client_id": "c-2"}', "bad_frame"),
        (
            json.dumps({"type": "resume", "message_id": str(uuid.uuid4()), "last_seq": 10**30}),
            "bad_frame",
        ),
        ("{" * 30_000, "bad_json"),
    ],
    ids=["nested-json", "lone-surrogate-raw", "lone-surrogate-escaped", "huge-seq", "unclosed"],
)
async def test_bad_frames_get_an_error_and_the_socket_lives(
    alice, make_conversation, signed_in, raw, code
):
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, connected = await session.socket(conversation.id)
    assert connected
    await socket.send_to(text_data=raw)
    frame = json.loads(await socket.receive_from(timeout=5))
    assert frame["type"] == "error" and frame["code"] == code, frame
    assert await pong(socket)
    # Nothing was stored.
    assert await sync_to_async(Message.objects.filter(conversation=conversation).count)() == 0


@pytest.mark.parametrize("path", ["/ws/c/not-a-uuid/", "/ws/nothing-here/", "/ws/"])
async def test_unknown_socket_paths_are_refused_not_errors(alice, signed_in, path):
    session = await signed_in(alice)
    socket, connected = await session.socket(None, path=path)
    assert not connected


async def test_send_on_a_deleted_conversation_says_so_and_closes(
    alice, make_conversation, signed_in
):
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, connected = await session.socket(conversation.id)
    assert connected
    # Deleted behind the socket's back, with no broadcast reaching it (as if the
    # delete's event had been lost): the send itself must cope.
    await sync_to_async(Conversation.objects.filter(pk=conversation.pk)._raw_delete)("default")
    await socket.send_json_to(send_frame("hello", "c-deleted"))
    code = None
    frames = []
    while True:
        output = await socket.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            code = output["code"]
            break
        frames.append(json.loads(output["text"]))
    assert code == 4404
    assert frames and frames[-1]["type"] == "error"
    assert frames[-1]["code"] == "conversation_deleted"


# --- 4. One builder for message.completed ------------------------------------------


@pytest.mark.parametrize(
    "error, retryable",
    [("authentication_error", False), ("overloaded_error", True), ("invalid_request_error", False)],
)
async def test_completed_after_resume_says_what_the_live_one_said(
    alice, make_conversation, signed_in, error, retryable
):
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)
    await socket.send_json_to(send_frame(f"fail [[fake error={error}]]"))
    frames = await receive_frames(socket, until=completed)
    live = frames[-1]
    assert live["status"] == "error" and live["error"]["retryable"] is retryable
    # The card's Retry sentence comes apart, the last of the message, only when it can help.
    hint = live["error"]["retry_hint"]
    assert bool(hint) is retryable and live["error"]["message"].endswith(hint)
    # A late socket, resuming from nothing, gets the same end rebuilt from the row.
    later, _ = await session.socket(conversation.id)
    await later.send_json_to({"type": "resume", "message_id": live["message_id"], "last_seq": 0})
    [rebuilt] = await receive_frames(later, until=completed)
    assert rebuilt == live


# --- 5. A resend with the same client_id is always safe -----------------------------


async def test_resend_after_a_lost_reply_id_continues_the_reply(
    alice, make_conversation, signed_in
):
    """The client saw its own message.created, not the reply's: it resends the same
    frame on a new socket and gets the reply's state and the rest of its stream."""
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    first, _ = await session.socket(conversation.id)
    frame = send_frame("long answer please [[fake tokens=80 tps=100]]", "c-resend")
    await first.send_json_to(frame)
    await receive_frames(first, until=lambda f: f["type"] == "message.created")
    await first.disconnect()
    await asyncio.sleep(0.3)  # the reply streams on with no socket

    second, _ = await session.socket(conversation.id)
    await second.send_json_to(frame)
    frames = await receive_frames(second, until=completed)
    created = [f["message"] for f in frames if f["type"] == "message.created"]
    assert [m["role"] for m in created] == ["user", "assistant"]
    reply = created[1]
    # Apply as a client would: the created state, then deltas after its seq.
    text, applied = reply["text"], reply["seq"]
    seqs = []
    for f in frames:
        if f["type"] == "message.snapshot":
            text, applied = f["text"], f["seq"]
        elif f["type"] == "message.delta":
            assert f["seq"] == applied + 1, "a gap or a duplicate"
            text += f.get("text", "")
            applied = f["seq"]
            seqs.append(f["seq"])
    final = frames[-1]
    assert final["seq"] == applied + 1
    stored = await sync_to_async(Message.objects.get)(id=reply["id"])
    assert text == final["text"] == stored.text and stored.status == "complete"
    # Resent, not sent twice: one user message, one reply.
    assert await sync_to_async(conversation.messages.count)() == 2


# --- 1. Frames a socket's process never hears still arrive ---------------------------


async def test_a_socket_the_publisher_cannot_reach_still_gets_every_frame(
    alice, make_conversation, signed_in, monkeypatch
):
    """As a socket on another process does while the publisher's layer still
    believes nobody there listens: no live frame reaches it. It reads them from
    the record instead, in order, and the end arrives."""
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    watcher, _ = await session.socket(conversation.id)
    [unreached] = publisher._sockets[conversation_group(conversation.id)]
    real_publish = publisher.group_publish

    async def publish_frames_past_the_watcher(group, event):
        if event["type"] != "chat.frame":
            return await real_publish(group, event)  # broadcasts still arrive
        for socket in tuple(publisher._sockets.get(group, ())):
            if socket is not unreached:
                await socket.relay(event)

    monkeypatch.setattr(publisher, "group_publish", publish_frames_past_the_watcher)
    sender, _ = await session.socket(conversation.id)
    await sender.send_json_to(send_frame("unheard [[fake tokens=30 tps=60]]"))
    frames = await receive_frames(watcher, until=completed, timeout=15)
    reply_id = assistant_id(frames)
    deltas = [f["seq"] for f in frames if f["type"] == "message.delta"]
    assert deltas == list(range(1, len(deltas) + 1))
    stored = await sync_to_async(Message.objects.get)(id=reply_id)
    assert streamed_text(frames, reply_id) == frames[-1]["text"] == stored.text


# --- 2. A socket does not outlive its access ----------------------------------------


async def test_logout_closes_that_sessions_sockets(alice, make_conversation, signed_in):
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    other = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)
    other_socket, _ = await other.socket(conversation.id)
    await sync_to_async(session.client.logout)()
    assert await expect_close(socket) == 4403
    # The other session is still signed in, and its socket still works.
    assert await pong(other_socket)
    await other_socket.send_json_to(send_frame("still here [[fake tokens=5]]"))
    frames = await receive_frames(other_socket, until=completed)
    assert frames[-1]["status"] == "complete"


async def test_deactivation_closes_every_socket_and_starts_nothing(
    alice, make_conversation, signed_in
):
    conversation = await sync_to_async(make_conversation)()
    first = await signed_in(alice)
    second = await signed_in(alice)
    sockets = [(await first.socket(conversation.id))[0], (await second.socket(conversation.id))[0]]

    def deactivate():
        alice.is_active = False
        alice.save()

    await sync_to_async(deactivate)()
    for socket in sockets:
        assert await expect_close(socket) == 4403
    assert await sync_to_async(Message.objects.filter(conversation=conversation).count)() == 0


async def test_a_frame_sent_in_the_window_is_refused(alice, make_conversation, signed_in):
    """Even if the socket had not heard of the revocation yet, the next frame
    finds it: no billed reply starts."""
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)

    def deactivate_quietly():
        # An UPDATE sends no signal: only the per-frame check can see it.
        type(alice).objects.filter(pk=alice.pk).update(is_active=False)

    await sync_to_async(deactivate_quietly)()
    await socket.send_json_to(send_frame("bill me [[fake tokens=5]]"))
    assert await expect_close(socket) == 4403
    assert await sync_to_async(Message.objects.filter(conversation=conversation).count)() == 0


async def test_password_change_closes_sockets(alice, make_conversation, signed_in):
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)

    def change_password():
        alice.set_password("a-new-long-password")
        alice.save()

    await sync_to_async(change_password)()
    assert await expect_close(socket) == 4403


async def test_delete_over_http_reaches_open_sockets(alice, make_conversation, signed_in):
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)
    conversation_id = str(conversation.id)
    await sync_to_async(services.conversation_delete)(conversation=conversation)
    frame = json.loads(await socket.receive_from(timeout=2))
    assert frame == {"type": "conversation.deleted", "conversation_id": conversation_id}
    output = await socket.receive_output(timeout=2)
    assert output["type"] == "websocket.close" and output["code"] == 4404


async def test_rename_over_http_reaches_open_sockets(alice, make_conversation, signed_in):
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)
    response = await sync_to_async(session.client.post)(
        f"/c/{conversation.id}/rename/", {"title": "Quarterly plan"}, HTTP_ORIGIN=ORIGIN
    )
    assert response.status_code in (200, 302)
    frame = json.loads(await socket.receive_from(timeout=2))
    assert frame == {
        "type": "conversation.updated",
        "conversation_id": str(conversation.id),
        "title": "Quarterly plan",
        "model": conversation.model,
        "model_label": model_label(conversation.model),
        "context_window": model_info(conversation.model).context_window,
    }


async def test_a_settings_change_reaches_the_conversations_other_tabs(
    alice, make_conversation, signed_in
):
    """Another tab's badge and dialog show the next answer's model (its save would
    otherwise put the old one back)."""
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)
    response = await sync_to_async(session.client.post)(
        f"/c/{conversation.id}/settings/",
        {"model": "claude-haiku-5-5", "system_prompt": "", "thinking_effort": ""},
        HTTP_ACCEPT="application/json",
        HTTP_ORIGIN=ORIGIN,
    )
    assert response.status_code == 200
    frame = json.loads(await socket.receive_from(timeout=2))
    assert frame["type"] == "conversation.updated"
    assert (frame["model"], frame["model_label"]) == ("claude-haiku-5-5", "Claude Haiku 5.5")
    assert frame["context_window"] == model_info("claude-haiku-5-5").context_window


async def test_a_conversation_given_to_someone_else_closes_the_old_owners_socket(
    alice, bob, make_conversation, signed_in
):
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)

    def give_to_bob():  # as the admin's change form saves it
        conversation.owner = bob
        conversation.save()

    await sync_to_async(give_to_bob)()
    assert await expect_close(socket) == 4403


async def test_an_expired_session_sends_nothing(alice, make_conversation, signed_in):
    """Past its expiry date a session signs nobody in over HTTP; its socket must not
    start a billed reply either."""
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)
    key = session.client.session.session_key

    await sync_to_async(Session.objects.filter(session_key=key).update)(
        expire_date=timezone.now() - timezone.timedelta(days=1)
    )
    await socket.send_json_to(send_frame("bill me [[fake tokens=5]]"))
    assert await expect_close(socket) == 4403
    assert await sync_to_async(Message.objects.filter(conversation=conversation).count)() == 0


async def test_a_nul_in_the_text_is_refused_not_fatal(alice, make_conversation, signed_in):
    conversation = await sync_to_async(make_conversation)()
    session = await signed_in(alice)
    socket, _ = await session.socket(conversation.id)
    await socket.send_json_to(send_frame("a\u0000b"))
    frame = json.loads(await socket.receive_from(timeout=5))
    assert frame["type"] == "error" and frame["code"] == "bad_frame"
    assert await pong(socket)
