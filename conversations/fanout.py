"""Delivering a conversation's frames to every socket watching it.

Sockets in this process get each frame directly, in the order it was published;
sockets in other web processes get it through the channel layer (Redis), which
each process's sockets join as the conversation's group.

Why not the channel layer for everything: on one process it cost a queue put, a
task and an `asyncio.wait` per socket per frame in channels' consumer loop, about
a fifth of the web process's CPU at 200 streams. A reply's frames are published by
the process running it, so the sockets there can be written to straight away.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from channels.layers import InMemoryChannelLayer, get_channel_layer

from infra.channel_layers import PROCESS_ID

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
    """Deliver `event` ({"type": "chat.frame" | "chat.broadcast", ...}) to every
    socket of the group: here first, then through the layer to other processes.

    A frame (the frequent kind) goes to the layer only while another process has
    a socket in the group, if the layer can tell; a broadcast always does.
    """
    for socket in tuple(_sockets.get(group, ())):
        try:
            await socket.relay(event)
        except Exception:  # one broken socket must not stop the others or the reply
            logger.exception("Relaying a frame to a socket failed")
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return  # one process: every socket is here
    others_subscribed = getattr(layer, "others_subscribed", None)
    if event["type"] == "chat.frame" and others_subscribed and not await others_subscribed(group):
        return
    await layer.group_send(group, {**event, "origin": PROCESS_ID})
