"""The channel layers: one web process (no REDIS_URL), or many on Redis."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer

from infra.db_threads import after_commit_on_loop

logger = logging.getLogger(__name__)

# Tags what this process publishes through the layer, so its own subscription
# can drop the copy Redis echoes back (its sockets had the frame directly).
PROCESS_ID = uuid.uuid4().hex


def published_here(event: dict) -> bool:
    """True for a layer message this process published."""
    return event.get("origin") == PROCESS_ID

def group_send_after_commit(group: str, message: dict) -> None:
    """`group_send` once the current transaction commits (never if it rolls back),
    from synchronous code: a view, a signal receiver, a task (see
    `infra.db_threads.after_commit_on_loop`; a failure is logged)."""

    async def send() -> None:
        await get_channel_layer().group_send(group, message)

    after_commit_on_loop(send)


# Values a message may share between receivers: nothing in them can be changed.
_IMMUTABLE = (str, bytes, int, float, bool, type(None))


class LocalChannelLayer(InMemoryChannelLayer):
    """Channels' in-memory layer, made cheap per frame.

    - Expired messages are swept at most once a second. The stock layer scans
      every channel and group on every send and receive, so each frame cost
      O(open sockets): with 200 streams that scan was a quarter of the web
      process's CPU. Expiry is a safety net for channels nobody reads.
    - `group_send` puts the message on each member's queue directly. The stock
      one starts a task per member and awaits them with `as_completed`: 12% of
      the web process's CPU at 200 streams, for puts that never wait.
    - A message of plain values (every frame) is copied shallowly, not deep-copied.
    """

    sweep_interval_seconds = 1.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < self.sweep_interval_seconds:
            return
        self._last_sweep = now
        super()._clean_expired()

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        self._put(channel, message)

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            try:
                self._put(channel, message)
            except ChannelFull:
                pass  # as the stock layer: a full channel misses this message

    def _put(self, channel: str, message: dict) -> None:
        assert "__asgi_channel__" not in message
        queue = self.channels.setdefault(
            channel, asyncio.Queue(maxsize=self.get_capacity(channel))
        )
        if all(isinstance(value, _IMMUTABLE) for value in message.values()):
            copied = dict(message)
        else:
            copied = deepcopy(message)
        try:
            queue.put_nowait((time.time() + self.expiry, copied))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None


@dataclass
class _Outbox:
    """One event loop's publishes waiting for Redis, and the task sending them."""

    items: list[tuple[Any, str, bytes]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class RedisLayer(RedisPubSubChannelLayer):
    """channels_redis's pub/sub layer, plus what the chat's fan-out needs from it.

    - A frame reaches the sockets of the process that published it directly
      (`conversations.streaming.publisher`), and Redis echoes it back to the same process's
      subscription too: that copy is dropped here, before a socket's consumer
      loop wakes for it.
    - `others_subscribed(group)` says whether another process has a socket in
      the group, so frames nobody elsewhere hears are not published at all.
      channels_redis publishes one message at a time per connection (a lock
      around each round trip): at 200 streams that queue, not the CPU, was
      what held two processes back. The answer is Redis's own count of
      subscribers (PUBSUB NUMSUB), trusted for `others_ttl_seconds`; a socket
      that joins elsewhere within that window resumes from the replay buffer,
      as every newly opened socket does.

    It reaches into channels_redis's loop layer and shard (pinned <5) for the
    group's Redis channel and connection; tests/infra covers both.
    """

    others_ttl_seconds = 1.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._others: dict[str, tuple[bool, float]] = {}
        self._outboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outbox] = (
            weakref.WeakKeyDictionary()
        )

    async def receive(self, channel: str) -> dict:
        while True:
            message = await self._get_layer().receive(channel)
            if not published_here(message):
                return message

    async def group_send(self, group: str, message: dict) -> None:
        """PUBLISH on the shard's connection pool, outside the shard's lock.

        channels_redis takes one lock per shard around every publish, subscribe
        and unsubscribe, so a send's broadcasts queued behind the subscriptions of
        sockets connecting meanwhile: at 200 streams on two processes a
        broadcast's publish waited 204 ms at p50 and 754 ms at p90, and the reply
        could not start until its `message.created` had gone out. PUBLISH needs no
        subscription state. Publishes awaited one after another still reach Redis
        in that order (each is answered before the next is sent)."""
        name, shard = self._group_shard(group)
        await shard._redis.publish(name, self.serialize(message))

    def group_send_soon(self, group: str, message: dict) -> None:
        """Queue a publish without waiting for Redis: what one event loop queues
        goes out in that order, everything queued meanwhile in one pipelined
        round trip. A reply's frames and a send's broadcasts each queue behind
        what came before them, so they reach other processes in the order they
        happened; the caller goes on at once (a send's three broadcasts cost three
        round trips before its reply could start: +60 ms at p50 at 200 streams).
        A failed flush is logged and drops what it carried, as a failed
        `group_send` would (sockets elsewhere catch up from the replay buffer)."""
        name, shard = self._group_shard(group)
        loop = asyncio.get_running_loop()
        outbox = self._outboxes.get(loop)
        if outbox is None:
            outbox = self._outboxes[loop] = _Outbox()
        outbox.items.append((shard, name, self.serialize(message)))
        if outbox.task is None:
            outbox.task = loop.create_task(self._outbox_flush(outbox))

    async def outbox_drained(self) -> None:
        """Wait until what this loop queued has been sent (for tests and shutdown)."""
        outbox = self._outboxes.get(asyncio.get_running_loop())
        while outbox is not None and outbox.task is not None:
            await asyncio.shield(outbox.task)

    @staticmethod
    async def _outbox_flush(outbox: _Outbox) -> None:
        try:
            while outbox.items:
                batch, outbox.items = outbox.items, []
                pipelines: dict[int, Any] = {}
                for shard, name, data in batch:  # one shard in practice: one pipeline
                    pipeline = pipelines.get(id(shard))
                    if pipeline is None:
                        pipeline = pipelines[id(shard)] = shard._redis.pipeline(transaction=False)
                    pipeline.publish(name, data)
                for pipeline in pipelines.values():
                    try:
                        await pipeline.execute()
                    except Exception:
                        logger.exception("Publishing to Redis failed")
        finally:
            outbox.task = None

    def _group_shard(self, group: str) -> tuple[str, Any]:
        loop_layer = self._get_layer()
        name = loop_layer._get_group_channel_name(group)
        shard = loop_layer._get_shard(name)
        shard._ensure_redis()
        return name, shard

    async def others_subscribed(self, group: str) -> bool:
        loop_layer = self._get_layer()
        name = loop_layer._get_group_channel_name(group)
        now = time.monotonic()
        known = self._others.get(name)
        if known is not None and now - known[1] < self.others_ttl_seconds:
            return known[0]
        shard = loop_layer._get_shard(name)
        shard._ensure_redis()
        [(_, subscribers)] = await shard._redis.pubsub_numsub(name)
        mine = 1 if name in shard._subscribed_to else 0
        answer = subscribers - mine > 0
        if len(self._others) > 10_000:
            self._others.clear()
        self._others[name] = (answer, now)
        return answer
