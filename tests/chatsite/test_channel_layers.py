"""The single-process channel layer: every member gets each group message once, as
its own copy; a full channel misses it without failing the others; expiry holds."""

from __future__ import annotations

import asyncio

import pytest
from channels.exceptions import ChannelFull

from chatsite.channel_layers import LocalChannelLayer


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
