"""Sockets as a browser session opens them, for the websocket tests."""

from __future__ import annotations

import asyncio
import json
import uuid

from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

from chatsite.asgi import application
from tests.conftest import ORIGIN


def send_frame(text: str, client_id: str | None = None) -> dict:
    return {"type": "message.send", "text": text, "client_id": client_id or uuid.uuid4().hex}


class SignedIn:
    """A browser session (a Django test client) and the sockets it opened."""

    def __init__(self, user) -> None:
        self.client = Client()
        self.client.force_login(user)
        self.sockets: list[WebsocketCommunicator] = []

    @property
    def cookie(self) -> str:
        name = django_settings.SESSION_COOKIE_NAME
        return f"{name}={self.client.cookies[name].value}"

    async def socket(self, conversation_id, path: str | None = None):
        communicator = WebsocketCommunicator(
            application,
            path or f"/ws/c/{conversation_id}/",
            headers=[(b"cookie", self.cookie.encode()), (b"origin", ORIGIN.encode())],
        )
        connected, code = await communicator.connect(timeout=5)
        self.sockets.append(communicator)
        return communicator, connected

    async def close(self) -> None:
        for communicator in self.sockets:
            try:
                await communicator.disconnect(timeout=2)
            except Exception:
                pass


async def expect_close(socket: WebsocketCommunicator, *, within: float = 2.0) -> int:
    """Read until the server closes the socket; its close code. Frames before it are
    allowed only if they are not a reply's content."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        output = await socket.receive_output(timeout=max(deadline - loop.time(), 0.01))
        if output["type"] == "websocket.close":
            return output.get("code", 1000)
        frame = json.loads(output["text"])
        assert frame["type"] == "error" and frame["code"] == "access_revoked", frame


async def pong(socket: WebsocketCommunicator) -> bool:
    await socket.send_json_to({"type": "ping"})
    return json.loads(await socket.receive_from(timeout=5)) == {"type": "pong"}
