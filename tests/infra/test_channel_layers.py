"""The channel layers. In one process: every member gets each group message once, as
its own copy; a full channel misses it without failing the others; expiry holds.
On Redis: a process's own frames are not echoed back to it, and it can tell
whether another process has a socket in a group."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from channels.exceptions import ChannelFull

from infra.channel_layers import PROCESS_ID, LocalChannelLayer


@pytest.fixture
def layer() -> LocalChannelLayer:
    return LocalChannelLayer(capacity=3)


async def test_group_send_reaches_every_member_in_order(layer):
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("chat", channel)
    await layer.group_add("other", await layer.new_channel())
    for seq in (1, 2):
        await layer.group_send("chat", {"type": "chat.frame", "seq": seq, "frame": "x"})
    for channel in channels:
        assert [(await layer.receive(channel))["seq"] for _ in range(2)] == [1, 2]
    # Nobody outside the group got anything.
    assert set(layer.channels) == set()


async def test_each_receiver_gets_its_own_copy(layer):
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("chat", first)
    await layer.group_add("chat", second)
    message = {"type": "chat.frame", "frame": "a", "meta": {"tags": ["t"]}}
    await layer.group_send("chat", message)
    got_first = await layer.receive(first)
    got_first["frame"] = "changed"
    got_first["meta"]["tags"].append("changed")
    got_second = await layer.receive(second)
    assert got_second == {"type": "chat.frame", "frame": "a", "meta": {"tags": ["t"]}}
    assert message["meta"]["tags"] == ["t"]


async def test_a_full_channel_misses_the_message_and_the_others_still_get_it(layer):
    slow, fast = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("chat", slow)
    await layer.group_add("chat", fast)
    for seq in range(4):  # capacity 3: the slow socket's fourth is dropped
        await layer.group_send("chat", {"type": "chat.frame", "seq": seq})
        assert (await layer.receive(fast))["seq"] == seq
    assert [(await layer.receive(slow))["seq"] for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ChannelFull):
        for _ in range(4):
            await layer.send(slow, {"type": "x"})


async def test_expired_messages_are_swept(layer):
    layer.expiry = 0
    layer.sweep_interval_seconds = 0
    channel = await layer.new_channel()
    await layer.group_add("chat", channel)
    await layer.group_send("chat", {"type": "chat.frame"})
    await asyncio.sleep(0.01)
    await layer.group_send("chat", {"type": "chat.frame"})  # sweeps first
    # The unread channel was expired and left the group: the layer holds nothing for it.
    assert channel not in layer.channels
    assert "chat" not in layer.groups or channel not in layer.groups["chat"]


# --- The Redis layer (the PostgreSQL + Redis pass) ----------------------------------

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="about the Redis channel layer: runs in the Redis pass"
)


def redis_layer(prefix: str):
    """One web process's layer: its own connections to Redis."""
    from infra.channel_layers import RedisLayer

    layer = RedisLayer(hosts=[{"address": os.environ["REDIS_URL"]}], prefix=prefix)
    layer.others_ttl_seconds = 0  # ask Redis every time
    return layer


@needs_redis
@pytest.mark.real_backends
async def test_others_subscribed_counts_only_other_processes():
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    here, elsewhere = redis_layer(prefix), redis_layer(prefix)
    try:
        mine = await here.new_channel()
        await here.group_add("chat", mine)
        assert await here.others_subscribed("chat") is False  # only this process
        theirs = await elsewhere.new_channel()
        await elsewhere.group_add("chat", theirs)
        assert await here.others_subscribed("chat") is True
        assert await elsewhere.others_subscribed("chat") is True
        await elsewhere.group_discard("chat", theirs)
        assert await here.others_subscribed("chat") is False
        await here.group_discard("chat", mine)
        assert await elsewhere.others_subscribed("chat") is False  # nobody at all
    finally:
        await here.flush()
        await elsewhere.flush()


@needs_redis
@pytest.mark.real_backends
async def test_a_process_does_not_receive_its_own_frames_back():
    """What this process published reached its sockets directly: Redis's echo is
    dropped; a message from another process is received."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    here = redis_layer(prefix)
    try:
        channel = await here.new_channel()
        await here.group_add("chat", channel)
        await here.group_send("chat", {"type": "chat.frame", "seq": 1, "origin": PROCESS_ID})
        await here.group_send("chat", {"type": "chat.frame", "seq": 2, "origin": "another"})
        received = await asyncio.wait_for(here.receive(channel), timeout=5)
        assert received["seq"] == 2
    finally:
        await here.flush()


@needs_redis
@pytest.mark.real_backends
async def test_a_publish_does_not_wait_behind_subscriptions_and_keeps_its_order():
    """channels_redis holds one lock per shard around every publish and subscribe:
    a send's broadcasts queued behind sockets connecting (p90 754 ms at 200
    streams). Publishing must not take that lock, and what one task publishes
    reaches the other process in order."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    here, elsewhere = redis_layer(prefix), redis_layer(prefix)
    try:
        theirs = await elsewhere.new_channel()
        await elsewhere.group_add("chat", theirs)
        loop_layer = here._get_layer()
        shard = loop_layer._get_shard(loop_layer._get_group_channel_name("chat"))
        async with shard._lock:  # a subscription under way, for as long as it takes
            for seq in range(1, 51):
                await asyncio.wait_for(
                    here.group_send("chat", {"type": "chat.frame", "seq": seq}), timeout=2
                )
        received = [
            (await asyncio.wait_for(elsewhere.receive(theirs), timeout=5))["seq"]
            for _ in range(50)
        ]
        assert received == list(range(1, 51))
    finally:
        await here.flush()
        await elsewhere.flush()


@needs_redis
@pytest.mark.real_backends
async def test_queued_publishes_reach_the_other_process_in_order_and_survive_a_failed_flush(
    monkeypatch,
):
    """`group_send_soon` returns at once; what one loop queues arrives in that
    order, and a flush that fails (Redis away) is logged without stopping later
    ones."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    here, elsewhere = redis_layer(prefix), redis_layer(prefix)
    try:
        theirs = await elsewhere.new_channel()
        await elsewhere.group_add("chat", theirs)
        for seq in range(1, 101):
            here.group_send_soon("chat", {"type": "chat.frame", "seq": seq})
            if seq % 7 == 0:
                await asyncio.sleep(0)  # let a flush start with part of the queue
        await here.outbox_drained()
        received = [
            (await asyncio.wait_for(elsewhere.receive(theirs), timeout=5))["seq"]
            for _ in range(100)
        ]
        assert received == list(range(1, 101))

        from redis.asyncio.client import Pipeline

        real_execute = Pipeline.execute

        async def down(self, *args, **kwargs):
            raise ConnectionError("redis went away")

        monkeypatch.setattr(Pipeline, "execute", down)
        here.group_send_soon("chat", {"type": "chat.frame", "seq": 101})
        await here.outbox_drained()
        monkeypatch.setattr(Pipeline, "execute", real_execute)
        here.group_send_soon("chat", {"type": "chat.frame", "seq": 102})
        await here.outbox_drained()
        received = await asyncio.wait_for(elsewhere.receive(theirs), timeout=5)
        assert received["seq"] == 102
    finally:
        await here.flush()
        await elsewhere.flush()
