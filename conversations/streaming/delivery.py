"""One socket's delivery of its conversation's frames: in order, once, with nothing lost.

The rule, for every reply (see docs/websocket-protocol.md, "Ordering and catch-up"):

1. A socket sends a reply's frames in seq order, each at most once: it keeps a
   cursor per reply (the highest seq it sent; 0 for a reply it has not sent
   anything of) and drops any frame at or below it.
2. A live frame above cursor + 1 means the socket missed some (the layer is
   at-most-once, and may not carry a frame at all for up to a second after a
   socket joins on another process): the socket reads what it missed from the
   record (the replay buffer, else the database) before it sends the frame.
3. A reply the socket follows that has been silent for `CATCH_UP_SECONDS` is
   read from the record all the same, so a frame that never arrived live (the
   last one included) still arrives; a read that finds nothing new doubles the
   wait before the next (up to `STORED_CHECK_SECONDS`), until a frame is heard;
   after `STORED_CHECK_SECONDS` of silence the database row is consulted too (a
   reply whose process died is ended by the reaper there).
4. While the socket cannot know what its client has (from connect until the
   client's first frame has been answered, or `HOLD_AFTER_CONNECT_SECONDS`),
   and while a resume or a catch-up is answered, live frames wait, then go out
   in order through rules 1 and 2.

A socket follows a reply from the broadcast that announces it, a resume or a
resend of its message, or its first live frame, until it sends its
`message.completed`. A live frame of a reply the socket has not announced to
its client (its `message.created` was missed) is preceded by the stored pair's
`message.created` frames. A resume is answered from the seq the client gives,
even below what the socket sent (the client drops what it already has).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from conversations import selectors
from conversations.models import Message
from conversations.streaming.frames import (
    frame_json,
    message_completed,
    message_created,
    message_snapshot,
)
from conversations.streaming.replay import is_final_frame, replay_buffer
from infra.db_threads import db_async

logger = logging.getLogger(__name__)

HOLD_AFTER_CONNECT_SECONDS = 1.0
# Longer than the time the Redis layer trusts "nobody else listens"
# (`infra.channel_layers.RedisLayer.others_ttl_seconds`).
CATCH_UP_SECONDS = 1.25
STORED_CHECK_SECONDS = 5.0


@db_async
def _stored_reply(conversation_id, message_id: str) -> tuple[Message, Any] | None:
    """A message of the conversation and its latest ledger row, or None."""
    message = selectors.message_in_conversation(
        conversation_id=conversation_id, message_id=message_id
    )
    if message is None:
        return None
    return message, selectors.message_last_call(message=message)


@db_async
def _stored_pair(conversation_id, message_id: str) -> list[Message]:
    """A reply and the message before it (the user's), as stored; [] if none."""
    return selectors.message_with_prompt(conversation_id=conversation_id, message_id=message_id)


class SocketDelivery:
    """What one socket has sent of each reply, and the sending itself."""

    def __init__(
        self,
        *,
        conversation_id,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[int], Awaitable[None]],
        read_only: bool = False,
    ) -> None:
        self.conversation_id = conversation_id
        # A teammate watching a shared conversation: the owner's own frames
        # (`owner_only`, their budget) are not sent here.
        self.read_only = read_only
        self._send = send
        self._close = close
        self._loop = asyncio.get_running_loop()
        # reply id -> highest seq sent on this socket
        self.cursors: dict[str, int] = {}
        # replies the client has been told exist (message.created, or it asked)
        self._known: set[str] = set()
        # unfinished reply id -> when this socket last sent or read a frame of it
        self._heard: dict[str, float] = {}
        self._polled: dict[str, float] = {}
        # Reads of the record in a row that found nothing new, per reply (rule 3).
        self._quiet_reads: dict[str, int] = {}
        # Live events waiting (rule 4); None when none wait.
        self._held: list[dict[str, Any]] | None = []
        self._lock = asyncio.Lock()
        self._closed = False
        self._tick_handle: asyncio.TimerHandle | None = None
        self._catching_up = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._release_handle = self._loop.call_later(
            HOLD_AFTER_CONNECT_SECONDS, lambda: self._spawn(self.release())
        )

    # --- live events -------------------------------------------------------

    async def relay(self, event: dict[str, Any]) -> None:
        """A `chat.frame` or `chat.broadcast` of this conversation, from any process.
        Never waits on anything but the socket's own write."""
        if self._closed or (self.read_only and event.get("owner_only")):
            return
        if self._held is not None:
            self._held.append(event)
            return
        if self._needs_record(event):
            # Rule 2, without holding up the publisher: hold, and catch up in a task.
            self._held = [event]
            self._spawn(self._answer_then_release(self._catch_up, [event["message_id"]]))
            return
        await self._deliver(event)

    def _needs_record(self, event: dict[str, Any]) -> bool:
        """A frame that cannot go out as it is: it follows a gap, or its reply was
        never announced to this client."""
        if event["type"] != "chat.frame":
            return False
        message_id = event["message_id"]
        return message_id not in self._known or event["seq"] > self.cursors.get(message_id, 0) + 1

    async def _deliver(self, event: dict[str, Any]) -> None:
        if event["type"] == "chat.frame":
            message_id, seq = event["message_id"], event["seq"]
            if seq <= self.cursors.get(message_id, 0):
                return
            self.cursors[message_id] = seq
            if event.get("final"):
                self._unfollow(message_id)
            else:
                self._follow(message_id)
            await self._send(event["frame"])
            return
        reply_id = event.get("reply_id")
        if reply_id is not None:
            self._known.add(reply_id)
            self._follow(reply_id)
        await self._send(event["frame"])
        if event.get("close"):
            await self.close()
            await self._close(event["close"])

    # --- answers that read the record -------------------------------------

    async def release(self) -> None:
        """The client's first frame has been answered (or it sent none in time):
        what waited goes out (rule 4)."""
        if self._held is not None and not self._closed:
            await self._answer_then_release(None)

    async def resume(
        self,
        message_id: str,
        last_seq: int,
        *,
        before: Iterable[str] = (),
        skip_sent: bool = False,
    ) -> bool:
        """Answer a client that has applied frames 1..`last_seq` of a reply: what it
        missed, then live frames from there. `before`: frames to send first, in the
        same turn (a resend's `message.created`). `skip_sent`: not what this socket
        sent already (the client did not say it lacks those). False if there is no
        such message."""
        found: list[bool] = []

        async def answer(_: list[str]) -> None:
            # The record is keyed by message id alone: the row says whose it is.
            stored = await _stored_reply(self.conversation_id, message_id)
            if stored is None:
                found.append(False)
                return
            for frame in before:
                await self._send(frame)
            self._known.add(message_id)
            after = max(last_seq, self.cursors.get(message_id, 0)) if skip_sent else last_seq
            found.append(await self._read_record(message_id, after, True, stored=stored))

        await self._answer_then_release(answer, [message_id])
        return bool(found and found[0])

    async def resend(self, user_message: Message, reply: Message) -> None:
        """Answer a resent `message.send`: the stored pair, then the reply from the
        seq it was stored at, as for a resume (the rule in the protocol doc)."""
        created = [frame_json(message_created(m)) for m in (user_message, reply)]
        await self.resume(str(reply.id), reply.seq, before=created, skip_sent=True)

    async def _catch_up(self, message_ids: list[str]) -> None:
        now = self._loop.time()
        for message_id in message_ids:
            if message_id not in self._known:
                await self._introduce(message_id)
                continue
            stored_check = now - self._heard.get(message_id, now) >= STORED_CHECK_SECONDS
            self._polled[message_id] = now
            heard = self._heard.get(message_id)
            await self._read_record(message_id, self.cursors.get(message_id, 0), stored_check)
            if message_id in self._heard and self._heard[message_id] == heard:
                self._quiet_reads[message_id] = self._quiet_reads.get(message_id, 0) + 1

    async def _introduce(self, message_id: str) -> None:
        """A reply this client was never told of (its `message.created` missed, say
        while the socket reconnected): the stored pair first, then the rest."""
        self._known.add(message_id)
        pair = await _stored_pair(self.conversation_id, message_id)
        if not pair:
            return
        for message in pair:
            await self._send(frame_json(message_created(message)))
        reply = pair[-1]
        self.cursors[message_id] = max(self.cursors.get(message_id, 0), reply.seq)
        await self._read_record(message_id, reply.seq, False)

    async def _answer_then_release(
        self,
        answer: Callable[[list[str]], Awaitable[None]] | None,
        message_ids: list[str] | None = None,
    ) -> None:
        async with self._lock:
            if self._held is None:
                self._held = []
            try:
                if answer is not None:
                    await answer(message_ids or [])
            finally:
                # What was relayed meanwhile goes after the answer, in order (even
                # when the answer failed); rule 1 drops what the answer covered,
                # rule 2 reads what is still missing.
                await self._drain_held()

    async def _drain_held(self) -> None:
        try:
            while self._held and not self._closed:
                event = self._held.pop(0)
                if self._needs_record(event):
                    try:
                        await self._catch_up([event["message_id"]])
                    except Exception:  # the record is unreachable: send what is here
                        logger.exception("Reading a reply's record failed")
                        self._known.add(event["message_id"])
                await self._deliver(event)
        finally:
            self._held = None

    async def _read_record(
        self,
        message_id: str,
        after: int,
        stored_check: bool,
        *,
        stored: tuple[Message, Any] | None = None,
    ) -> bool:
        """Send what the client lacks of a reply after seq `after`: the replay
        buffer's frames, else a snapshot or the end rebuilt from the row. The
        cursor moves only to what the client has or was sent. False if there is no
        such message."""
        self._sent_up_to(message_id, after)  # the client has these already
        read = await replay_buffer().read_after(message_id, after)
        if read is None and not stored_check and message_id in self._heard:
            # A followed reply with no record yet has written no frame (its first
            # frame makes the record), and its row says no more until the stored
            # check: reading the row every time was most of the catch-up's cost on
            # a saturated host, where first tokens come late.
            self._follow(message_id, heard=False)
            return True
        if read is not None and (read.frames or read.snapshot_text is not None or not stored_check):
            if read.snapshot_text is not None:
                frame = message_snapshot(
                    message_id=message_id,
                    seq=read.seq,
                    status=Message.Status.STREAMING,
                    text=read.snapshot_text,
                    thinking=read.snapshot_thinking or "",
                )
                await self._send(frame_json(frame))
                self._sent_up_to(message_id, read.seq)
            first_seq = read.seq - len(read.frames) + 1  # the frames run up to read.seq
            for offset, frame_text in enumerate(read.frames):
                await self._send(frame_text)
                self._sent_up_to(message_id, first_seq + offset)
            if read.frames and is_final_frame(read.frames[-1]):
                self._unfollow(message_id)
            else:
                self._follow(message_id, heard=bool(read.frames or read.snapshot_text))
            return True
        # No live record, or a silent one: the database is the truth (the final
        # row, or the last checkpoint).
        if stored is None:
            stored = await _stored_reply(self.conversation_id, message_id)
        if stored is None:
            self._unfollow(message_id)
            return False
        message, call = stored
        if message.is_active:
            if after < message.seq:
                frame = message_snapshot(
                    message_id=message_id,
                    seq=message.seq,
                    status=message.status,
                    text=message.text,
                    thinking=message.thinking,
                )
                await self._send(frame_json(frame))
                self._sent_up_to(message_id, message.seq)
                self._follow(message_id)
            else:
                self._follow(message_id, heard=False)
            return True
        # The end, unless the client has it: a reaped reply's row keeps the seq of
        # its last checkpoint, below what the client may have applied.
        missing = (
            after < message.seq
            or message_id in self._heard
            or message.status == Message.Status.INTERRUPTED
        )
        if message.role == Message.Role.ASSISTANT and missing:
            await self._send(frame_json(message_completed(message, call)))
            self._sent_up_to(message_id, message.seq)
        self._unfollow(message_id)
        return True

    def _sent_up_to(self, message_id: str, seq: int) -> None:
        self.cursors[message_id] = max(self.cursors.get(message_id, 0), seq)

    # --- following unfinished replies (rule 3) ------------------------------

    def _follow(self, message_id: str, *, heard: bool = True) -> None:
        if heard:
            self._quiet_reads.pop(message_id, None)
        if heard or message_id not in self._heard:
            self._heard[message_id] = self._loop.time()
        if self._tick_handle is None and not self._closed:
            self._tick_handle = self._loop.call_later(CATCH_UP_SECONDS, self._tick)

    def _unfollow(self, message_id: str) -> None:
        self._heard.pop(message_id, None)
        self._polled.pop(message_id, None)
        self._quiet_reads.pop(message_id, None)

    def _tick(self) -> None:
        self._tick_handle = None
        if self._closed or not self._heard:
            return
        now = self._loop.time()
        silent = [
            message_id
            for message_id, heard in self._heard.items()
            if now - max(heard, self._polled.get(message_id, 0.0)) >= self._quiet_wait(message_id)
        ]
        if silent and not self._catching_up:
            self._catching_up = True
            self._spawn(self._catch_up_silent(silent))
        self._tick_handle = self._loop.call_later(CATCH_UP_SECONDS / 2, self._tick)

    def _quiet_wait(self, message_id: str) -> float:
        """How long a followed reply may be silent before its record is read: a
        slow reply (an overloaded host, a long first token) is read less and less
        often, instead of every socket reading every record every 1.25 s just when
        the host can least afford it (measured on a saturated 2-core host, 200
        streams on two processes: those reads were a quarter of a web process's
        CPU, and the added time to first token's p50 went from 5.5-8.2 s with
        them to 2.4-4.1 s with the backoff)."""
        quiet = self._quiet_reads.get(message_id, 0)
        return min(CATCH_UP_SECONDS * 2**quiet, STORED_CHECK_SECONDS)

    async def _catch_up_silent(self, message_ids: list[str]) -> None:
        try:
            await self._answer_then_release(self._catch_up, message_ids)
        finally:
            self._catching_up = False

    # --- lifetime ---------------------------------------------------------------

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = self._loop.create_task(self._logged(coroutine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _logged(coroutine: Awaitable[None]) -> None:
        try:
            await coroutine
        except Exception:
            logger.exception("A socket's catch-up failed")

    async def close(self) -> None:
        """Send nothing more (the socket is closing or its access was revoked)."""
        self._closed = True
        self._held = None
        self._release_handle.cancel()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
