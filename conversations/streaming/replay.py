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


@dataclass
class _Appends:
    """One event loop's appends waiting for Redis, and the task that writes them."""

    waiting: list[tuple[str, int, str, asyncio.Future[None]]] = field(default_factory=list)
    writer: asyncio.Task[None] | None = None


class RedisReplayBuffer:
    """Several processes: a Redis stream per reply, entry id `<seq>-1`.

    Appends go to Redis in batches, one at a time: the frames that many replies
    flush together (and whatever arrives while a batch is on its way) travel in
    one pipeline, one round trip on one connection. One pipeline a frame cost 93
    us of CPU a frame, and with more than a pool's 100 connections' worth of
    frames in flight, appends failed with "Too many connections".
    """

    # Connections a process opens to Redis for replay; more callers wait for one.
    max_connections = 20

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, object] = (
            weakref.WeakKeyDictionary()
        )
        self._appends: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Appends] = (
            weakref.WeakKeyDictionary()
        )

    def _redis(self):  # -> redis.asyncio.Redis, bound to the running loop
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # A blocking pool: a resume storm (every socket of a restarted process
            # reading at once) waits for a connection instead of failing.
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=self.max_connections, timeout=30
            )
            client = aioredis.Redis(connection_pool=pool)
            self._clients[loop] = client
        return client

    @staticmethod
    def _key(message_id: str) -> str:
        return f"replay:{message_id}"

    async def append(
        self, message_id: str, *, seq: int, frame: str, text: str = "", thinking: str = ""
    ) -> None:
        loop = asyncio.get_running_loop()
        appends = self._appends.setdefault(loop, _Appends())
        written: asyncio.Future[None] = loop.create_future()
        appends.waiting.append((self._key(message_id), seq, frame, written))
        if appends.writer is None:
            # Starts after the callbacks already due: the frames flushed in this
            # turn of the loop join the batch.
            appends.writer = loop.create_task(self._write_waiting(appends))
        await written

    async def _write_waiting(self, appends: _Appends) -> None:
        try:
            while appends.waiting:
                batch, appends.waiting = appends.waiting, []
                await self._write(batch)
        finally:
            appends.writer = None

    async def _write(self, batch: list[tuple[str, int, str, asyncio.Future[None]]]) -> None:
        try:
            async with self._redis().pipeline(transaction=False) as pipe:
                for key, seq, frame, _ in batch:
                    pipe.xadd(key, {"f": frame}, id=f"{seq}-1")
                    if seq % 100 == 1:  # kept while the reply runs, refreshed now and then
                        pipe.expire(key, RUNNING_TTL_SECONDS)
                results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the connection failed: every append in it did
            for *_, written in batch:
                if not written.done():
                    written.set_exception(exc)
            return
        xadd_results = iter(results)
        for _key, seq, _frame, written in batch:
            result = next(xadd_results)
            if seq % 100 == 1:
                next(xadd_results)  # the EXPIRE's
            if written.done():
                continue
            if isinstance(result, Exception):
                written.set_exception(result)
            else:
                written.set_result(None)

    async def end(self, message_id: str) -> None:
        await self._redis().expire(self._key(message_id), settings.CHAT_REPLAY_KEEP_SECONDS)

    async def read_after(self, message_id: str, last_seq: int) -> ReplayRead | None:
        entries = await self._redis().xrange(
            self._key(message_id), min=f"{last_seq + 1}-0", max="+"
        )
        if not entries:
            if not await self._redis().exists(self._key(message_id)):
                return None
            # Nothing after last_seq (yet): say so at last_seq itself. A later
            # entry read by a second call could be a frame appended meanwhile that
            # the caller has not sent.
            return ReplayRead(seq=last_seq, frames=[])
        frames = [fields[b"f"].decode() for _, fields in entries]
        first_seq = _seq_of(entries[0][0])
        seq = _seq_of(entries[-1][0])
        if first_seq == last_seq + 1:
            return ReplayRead(seq=seq, frames=frames)
        # Frames are not trimmed while a reply runs: a hole means the record
        # expired, and the caller falls back to the database checkpoint.
        return None


def is_final_frame(frame: str) -> bool:
    """Whether a recorded frame is a reply's last (`message.completed`): every
    frame is serialised by `frames.frame_json` with its `type` first."""
    return frame.startswith('{"type":"message.completed"')


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
