"""A recorder of what the in-process fake Claude is sent (the `recorder` fixture)."""

from __future__ import annotations

import json

import claude.client
from claude.fake.app import fake_app_from_env


class RequestRecorder:
    """The fake's ASGI app, keeping the JSON body and the headers of each request."""

    def __init__(self, app) -> None:
        self.app = app
        self.requests: list[tuple[str, dict, dict]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/messages"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}

        async def receive_recorded():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = json.loads(b"".join(chunks))
                    self.requests.append((scope["path"], body, headers))
            return message

        await self.app(scope, receive_recorded, send)

    def chats(self) -> list[dict]:
        return [body for path, body, _ in self.requests if path == "/v1/messages"]


def recorder_install(monkeypatch) -> RequestRecorder:
    """Wrap this test's fake (the client is built on first use, after this)."""
    wrapped = RequestRecorder(fake_app_from_env())
    monkeypatch.setattr(claude.client, "_fake_app", wrapped)
    return wrapped
