"""The replay buffer: what a reconnecting socket missed of a reply in progress.

The channel layer is a doorbell (at-most-once, it drops frames under load);
this buffer and the database checkpoint are the record. Each reply keeps its
numbered frames and the text so far, for a few minutes after it ends.

This in-process buffer serves a single web process. A deployment of several
processes keeps the same record in Redis (see `RedisReplayBuffer`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings

# Cap per reply; a client further behind than this gets a snapshot instead.
MAX_FRAMES_PER_REPLY = 5000


@dataclass
class ReplayLog:
    seq: int = 0
    text: str = ""
    thinking: str = ""
    first_seq: int = 1
    frames: list[str] = field(default_factory=list)
    ended_at: float | None = None


@dataclass(frozen=True)
class ReplayRead:
    """Frames after the client's last seq, or a snapshot when they are gone."""

    seq: int
    frames: list[str]
    snapshot_text: str | None = None
    snapshot_thinking: str | None = None


class MemoryReplayBuffer:
    def __init__(self) -> None:
        self._logs: dict[str, ReplayLog] = {}

    def append(self, message_id: str, *, seq: int, frame: str, text: str = "", thinking: str = "") -> None:
        """Record frame `seq` (called by the one generator of the reply, in order)."""
        log = self._logs.get(message_id)
        if log is None:
            log = self._logs[message_id] = ReplayLog()
        log.seq = seq
        log.text += text
        log.thinking += thinking
        log.frames.append(frame)
        if len(log.frames) > MAX_FRAMES_PER_REPLY:
            drop = len(log.frames) - MAX_FRAMES_PER_REPLY
            del log.frames[:drop]
            log.first_seq += drop

    def end(self, message_id: str) -> None:
        """The reply is final; keep its log a little longer for late resumers."""
        log = self._logs.get(message_id)
        if log is not None:
            log.ended_at = time.monotonic()
        self._expire()

    def read_after(self, message_id: str, last_seq: int) -> ReplayRead | None:
        """What follows `last_seq`, or None if this process has no record of the reply.

        Synchronous on purpose: no other coroutine can append in between.
        """
        log = self._logs.get(message_id)
        if log is None:
            return None
        if last_seq >= log.seq:
            return ReplayRead(seq=log.seq, frames=[])
        if last_seq + 1 >= log.first_seq:
            return ReplayRead(seq=log.seq, frames=log.frames[last_seq + 1 - log.first_seq :])
        return ReplayRead(
            seq=log.seq, frames=[], snapshot_text=log.text, snapshot_thinking=log.thinking
        )

    def _expire(self) -> None:
        horizon = time.monotonic() - settings.CHAT_REPLAY_KEEP_SECONDS
        for message_id in [m for m, log in self._logs.items() if log.ended_at and log.ended_at < horizon]:
            del self._logs[message_id]


replay_buffer = MemoryReplayBuffer()
