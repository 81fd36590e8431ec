"""Publishing a conversation's frames to every socket watching it, on any process.

Two kinds of event travel to a conversation's group:

- `chat.frame`: one numbered frame of a reply (`message_id`, `seq`, `final` on
  the last). Recorded in the replay buffer before it is published, so a socket
  that missed it can always read it (see `delivery.py`).
- `chat.broadcast`: a frame about stored rows (a message created or deleted,
  the conversation renamed or deleted, a budget status). `reply_id` names a
  streaming reply it announces; `close` asks every socket to close with that
  code after sending it.

Sockets in this process get each event directly, in the order it was
published; sockets in other web processes get it through the channel layer
(Redis), which each process's sockets join as the conversation's group.
Why not the layer for everything: on one process it cost a queue put, a task
and an `asyncio.wait` per socket per frame in Channels' consumer loop, about a
fifth of the web process's CPU at 200 streams.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Protocol

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from conversations.streaming.frames import conversation_group, frame_json
from conversations.streaming.replay import replay_buffer
from infra.channel_layers import PROCESS_ID
from infra.db_threads import after_commit_on_loop

logger = logging.getLogger(__name__)


class FrameSocket(Protocol):
    async def relay(self, event: dict[str, Any]) -> None: ...


# group -> the sockets of this process in it
_sockets: dict[str, set[FrameSocket]] = {}


def socket_join(group: str, socket: FrameSocket) -> None:
    _sockets.setdefault(group, set()).add(socket)


def socket_leave(group: str, socket: FrameSocket) -> None:
    members = _sockets.get(group)
    if members is not None:
        members.discard(socket)
        if not members:
            del _sockets[group]


async def group_publish(group: str, event: dict[str, Any]) -> None:
    """Deliver `event` to every socket of the group: here first, then through the
    layer to other processes.

    A frame (the frequent kind) goes to the layer only while another process has
    a socket in the group, as far as the layer can tell (it may answer late for
    up to a second: `delivery.py`'s catch-up reads what that missed); a
    broadcast always does. On Redis the publish is queued (`group_send_soon`):
    everything this process publishes reaches the others in the order it was
    published, and nobody here waits for Redis.
    """
    for socket in tuple(_sockets.get(group, ())):
        try:
            await socket.relay(event)
        except Exception:  # one broken socket must not stop the others or the reply
            logger.exception("Relaying a frame to a socket failed")
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return  # one process: every socket is here
    try:
        others_subscribed = getattr(layer, "others_subscribed", None)
        if (
            event["type"] == "chat.frame"
            and others_subscribed
            and not await others_subscribed(group)
        ):
            return
        message = {**event, "origin": PROCESS_ID}
        send_soon = getattr(layer, "group_send_soon", None)
        if send_soon is not None:
            send_soon(group, message)  # in order, without waiting on Redis
        else:
            await layer.group_send(group, message)
    except Exception:
        # Redis is away: sockets elsewhere read a frame from the record when they
        # catch up; a reply must not die of it.
        logger.exception("Publishing to the channel layer failed")


async def broadcast(
    conversation_id: uuid.UUID | str,
    frame: dict[str, Any],
    *,
    reply_id: uuid.UUID | str | None = None,
    close: int | None = None,
    owner_only: bool = False,
) -> None:
    """Send `frame` to every socket of the conversation; with `owner_only`, to the
    owner's alone (their budget is not for a teammate watching a shared chat)."""
    event: dict[str, Any] = {"type": "chat.broadcast", "frame": frame_json(frame)}
    if reply_id is not None:
        event["reply_id"] = str(reply_id)
    if close is not None:
        event["close"] = close
    if owner_only:
        event["owner_only"] = True
    await group_publish(conversation_group(conversation_id), event)


def broadcast_after_commit(
    conversation_id: uuid.UUID | str,
    frame: dict[str, Any],
    *,
    reply_id: uuid.UUID | str | None = None,
    close: int | None = None,
) -> None:
    """Broadcast `frame` once the current transaction commits (never if it rolls
    back), on the web process's event loop (`infra.db_threads.after_commit_on_loop`).

    From a socket's database call it goes out before that call returns to the
    socket, so a reply started after the service returns cannot overtake its
    `message.created`. A failed broadcast is logged and undoes nothing.
    """

    async def publish() -> None:
        await broadcast(conversation_id, frame, reply_id=reply_id, close=close)

    after_commit_on_loop(publish)


class FramePublisher:
    """One reply's frames: coalesces deltas into numbered frames, records them,
    publishes them.

    A frame goes out as soon as data arrives if the last one is at least a window
    (`CHAT_COALESCE_SECONDS`) old, so the first token is not held back; else when
    the window ends: at most one frame per window, whatever the token rate. Frames
    are published by one task at a time, so they go out in seq order, and that
    task is never cancelled (a Redis call cancelled half-way can leave its
    connection unusable and the await hanging).
    """

    def __init__(
        self,
        *,
        message_id: uuid.UUID,
        conversation_id: uuid.UUID,
        text: str = "",
        thinking: str = "",
    ) -> None:
        """`text`, `thinking`: what the reply holds before its first frame (a
        continued answer's text so far, which its stored row starts with)."""
        self.message_id = str(message_id)
        self.group = conversation_group(conversation_id)
        self.seq = 0
        self.text = text
        self.thinking = thinking
        # Recorded with the first frame, so the record's text is the row's.
        self._unrecorded = (text, thinking)
        self._pending_text: list[str] = []
        self._pending_thinking: list[str] = []
        self._loop = asyncio.get_running_loop()
        self._window = settings.CHAT_COALESCE_SECONDS
        self._last_flush = -self._window
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None

    def add(self, *, text: str = "", thinking: str = "") -> None:
        if text:
            self._pending_text.append(text)
        if thinking:
            self._pending_thinking.append(thinking)
        self._schedule()

    def _schedule(self) -> None:
        if self._flushing is not None or self._timer is not None:
            return  # a flush is under way (it looks again when done) or due
        due = self._last_flush + self._window
        if self._loop.time() >= due:
            self._flushing = self._loop.create_task(self._flush_then_reschedule())
        else:
            self._timer = self._loop.call_at(due, self._on_window_end)

    def _on_window_end(self) -> None:
        self._timer = None
        self._schedule()

    async def _flush_then_reschedule(self) -> None:
        try:
            await self._flush()
        except Exception:  # the frame is lost to live sockets; the text is not
            logger.exception("Publishing a reply's frame failed")
        finally:
            self._flushing = None
        if self._pending_text or self._pending_thinking:
            self._schedule()

    async def drain(self) -> None:
        """Publish everything added so far; nothing is scheduled after this."""
        while True:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._flushing is None:
                break
            # `wait`, not `await task`: a cancelled caller must not cancel the flush.
            await asyncio.wait({self._flushing})
        await self._flush()

    async def _flush(self) -> None:
        if not self._pending_text and not self._pending_thinking:
            return
        self._last_flush = self._loop.time()
        text = "".join(self._pending_text)
        thinking = "".join(self._pending_thinking)
        self._pending_text.clear()
        self._pending_thinking.clear()
        self.seq += 1
        self.text += text
        self.thinking += thinking
        frame: dict[str, Any] = {
            "type": "message.delta",
            "message_id": self.message_id,
            "seq": self.seq,
        }
        if thinking:
            frame["thinking"] = thinking
        if text:
            frame["text"] = text
        before_text, before_thinking = self._unrecorded
        self._unrecorded = ("", "")
        await self._publish(
            frame_json(frame), text=before_text + text, thinking=before_thinking + thinking
        )

    async def finish(self, completed: dict[str, Any]) -> None:
        """Publish the reply's last frame (`message.completed`, seq = last delta + 1)."""
        self.seq = completed["seq"]
        await self._publish(frame_json(completed), final=True)
        try:
            await replay_buffer().end(self.message_id)
        except Exception:
            logger.exception("Ending a reply's record failed")

    async def _publish(
        self, frame: str, *, text: str = "", thinking: str = "", final: bool = False
    ) -> None:
        # Recorded before it is published: a socket that sees a gap can always read it.
        try:
            await replay_buffer().append(
                self.message_id, seq=self.seq, frame=frame, text=text, thinking=thinking
            )
        except Exception:  # no record (Redis away): live sockets still get the frame
            logger.exception("Recording a reply's frame failed")
        event: dict[str, Any] = {
            "type": "chat.frame",
            "frame": frame,
            "message_id": self.message_id,
            "seq": self.seq,
        }
        if final:
            event["final"] = True
        await group_publish(self.group, event)
