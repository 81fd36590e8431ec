"""The replay buffer keeps every frame of a reply, in order, however many replies
append at once; in memory for one process, in Redis for several."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from conversations.streaming.replay import MemoryReplayBuffer, RedisReplayBuffer

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="about the Redis replay buffer: runs in the Redis pass"
)


def _frame(message_id: str, seq: int) -> str:
    return f'{{"type":"message.delta","message_id":"{message_id}","seq":{seq},"text":"t{seq} "}}'


async def _append_many(buffer, replies: list[str], frames: int) -> None:
    async def one_reply(message_id: str) -> None:
        for seq in range(1, frames + 1):
            await buffer.append(message_id, seq=seq, frame=_frame(message_id, seq), text=f"t{seq} ")

    await asyncio.gather(*(one_reply(m) for m in replies))


async def _assert_complete(buffer, replies: list[str], frames: int) -> None:
    for message_id in replies:
        read = await buffer.read_after(message_id, 0)
        assert read is not None and read.seq == frames
        assert read.frames == [_frame(message_id, seq) for seq in range(1, frames + 1)]
        middle = await buffer.read_after(message_id, frames // 2)
        assert middle.frames == [_frame(message_id, s) for s in range(frames // 2 + 1, frames + 1)]


async def test_memory_buffer_keeps_every_frame_of_many_replies():
    buffer = MemoryReplayBuffer()
    replies = [str(uuid.uuid4()) for _ in range(300)]
    await _append_many(buffer, replies, frames=5)
    await _assert_complete(buffer, replies, frames=5)


@needs_redis
@pytest.mark.real_backends
async def test_redis_buffer_takes_300_replies_appending_at_once():
    """More appends in flight than a connection pool holds (100 by default): each
    one is written, none fails for want of a connection."""
    buffer = RedisReplayBuffer(os.environ["REDIS_URL"])
    replies = [f"test-{uuid.uuid4()}" for _ in range(300)]
    try:
        await _append_many(buffer, replies, frames=5)
        await _assert_complete(buffer, replies, frames=5)
        assert await buffer.read_after(f"test-{uuid.uuid4()}", 0) is None
        # A resume storm: every socket of a restarted process reads at once.
        reads = await asyncio.gather(*(buffer.read_after(m, 2) for m in replies))
        assert all(read.seq == 5 and len(read.frames) == 3 for read in reads)
    finally:
        redis = buffer._redis()
        await redis.delete(*(f"replay:{m}" for m in replies))


@needs_redis
@pytest.mark.real_backends
async def test_redis_buffer_records_expire_after_the_reply_ends(settings):
    settings.CHAT_REPLAY_KEEP_SECONDS = 30
    buffer = RedisReplayBuffer(os.environ["REDIS_URL"])
    message_id = f"test-{uuid.uuid4()}"
    await buffer.append(message_id, seq=1, frame=_frame(message_id, 1))
    redis = buffer._redis()
    assert 30 < await redis.ttl(f"replay:{message_id}") <= 1800  # while it runs
    await buffer.end(message_id)
    assert 0 < await redis.ttl(f"replay:{message_id}") <= 30
    await redis.delete(f"replay:{message_id}")


@needs_redis
@pytest.mark.real_backends
async def test_redis_buffer_a_refused_frame_fails_alone():
    """Frames of several replies travel together; one that Redis refuses (a seq
    already written) fails its own append, not the others'."""
    buffer = RedisReplayBuffer(os.environ["REDIS_URL"])
    good, bad = f"test-{uuid.uuid4()}", f"test-{uuid.uuid4()}"
    try:
        await buffer.append(bad, seq=2, frame=_frame(bad, 2))
        results = await asyncio.gather(
            buffer.append(good, seq=1, frame=_frame(good, 1)),
            buffer.append(bad, seq=1, frame=_frame(bad, 1)),  # behind seq 2: refused
            buffer.append(good, seq=2, frame=_frame(good, 2)),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], Exception)
        assert (await buffer.read_after(good, 0)).frames == [_frame(good, 1), _frame(good, 2)]
    finally:
        await buffer._redis().delete(f"replay:{good}", f"replay:{bad}")
