"""The replay buffer: what a reconnecting socket missed of a reply in progress.

The channel layer is a doorbell (at-most-once: channels_redis drops frames when
a reader lags); this buffer and the database checkpoint are the record. Each
reply keeps its numbered frames for a few minutes after it ends. The generator
appends a frame before it rings the group, so a socket that hears the bell can
always read the frame.

One web process keeps the record in memory; several processes (`REDIS_URL`
set) keep it in a Redis stream per reply, `replay:<message id>`, whose entry
ids are the frame numbers.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings

# A reply in progress keeps its record this long after its last frame.
RUNNING_TTL_SECONDS = 1800


@dataclass(frozen=True)
class ReplayRead:
    """The frames after a client's last seq (JSON strings), up to `seq`."""

    seq: int
    frames: list[str]
    # When the early frames are gone: the whole text up to `seq`, sent as a snapshot.
    snapshot_text: str | None = None
    snapshot_thinking: str | None = None


class ReplayBuffer(Protocol):
    async def append(
        self, message_id: str, *, seq: int, frame: str, text: str = "", thinking: str = ""
    ) -> None: ...

    async def end(self, message_id: str) -> None: ...

    async def read_after(self, message_id: str, last_seq: int) -> ReplayRead | None: ...


@dataclass
class _Log:
    seq: int = 0
    text: str = ""
    thinking: str = ""
    first_seq: int = 1
    frames: list[str] = field(default_factory=list)
    ended_at: float | None = None


class MemoryReplayBuffer:
    """One process: a dict of logs. No awaits inside, so reads see a consistent log."""

    max_frames = 5000

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}

    async def append(
        self, message_id: str, *, seq: int, frame: str, text: str = "", thinking: str = ""
    ) -> None:
        log = self._logs.setdefault(message_id, _Log())
        log.seq = seq
        log.text += text
        log.thinking += thinking
        log.frames.append(frame)
        if len(log.frames) > self.max_frames:
            drop = len(log.frames) - self.max_frames
            del log.frames[:drop]
            log.first_seq += drop

    async def end(self, message_id: str) -> None:
        log = self._logs.get(message_id)
        if log is not None:
            log.ended_at = time.monotonic()
        horizon = time.monotonic() - settings.CHAT_REPLAY_KEEP_SECONDS
        for stale in [
            m for m, log in self._logs.items() if log.ended_at and log.ended_at < horizon
        ]:
            del self._logs[stale]

    async def read_after(self, message_id: str, last_seq: int) -> ReplayRead | None:
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


class RedisReplayBuffer:
    """Several processes: a Redis stream per reply, entry id `<seq>-1`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object] = (
            weakref.WeakKeyDictionary()
        )

    def _redis(self):  # -> redis.asyncio.Redis, bound to the running loop
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = aioredis.Redis.from_url(self.url)
            self._clients[loop] = client
        return client

    @staticmethod
    def _key(message_id: str) -> str:
        return f"replay:{message_id}"

    async def append(
        self, message_id: str, *, seq: int, frame: str, text: str = "", thinking: str = ""
    ) -> None:
        key = self._key(message_id)
        async with self._redis().pipeline(transaction=False) as pipe:
            pipe.xadd(key, {"f": frame}, id=f"{seq}-1")
            pipe.expire(key, RUNNING_TTL_SECONDS)
            await pipe.execute()

    async def end(self, message_id: str) -> None:
        await self._redis().expire(self._key(message_id), settings.CHAT_REPLAY_KEEP_SECONDS)

    async def read_after(self, message_id: str, last_seq: int) -> ReplayRead | None:
        entries = await self._redis().xrange(
            self._key(message_id), min=f"{last_seq + 1}-0", max="+"
        )
        if not entries:
            exists = await self._redis().exists(self._key(message_id))
            if not exists:
                return None
            last = await self._redis().xrevrange(self._key(message_id), count=1)
            return ReplayRead(seq=_seq_of(last[0][0]) if last else last_seq, frames=[])
        frames = [fields[b"f"].decode() for _, fields in entries]
        first_seq = _seq_of(entries[0][0])
        seq = _seq_of(entries[-1][0])
        if first_seq == last_seq + 1:
            return ReplayRead(seq=seq, frames=frames)
        # Frames are not trimmed while a reply runs: a hole means the record
        # expired, and the caller falls back to the database checkpoint.
        return None


def _seq_of(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


_buffer: ReplayBuffer | None = None
_buffer_url: str | None = None


def replay_buffer() -> ReplayBuffer:
    """The process's replay buffer: Redis when `REDIS_URL` is set, else memory."""
    global _buffer, _buffer_url
    url = settings.REDIS_URL
    if _buffer is None or _buffer_url != url:
        _buffer = RedisReplayBuffer(url) if url else MemoryReplayBuffer()
        _buffer_url = url
    return _buffer
