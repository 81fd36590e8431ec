"""The real SDK's Bedrock and Vertex clients pointed at the in-process fake, and a
recorder of what reached it (path, headers, body), with no network at all."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
import pytest

from claude.fake import StreamingASGITransport, create_fake_app

AWS_KEY = "AKIAFAKEFAKEFAKE0000"
AWS_SECRET = "fake-secret-key"
GOOGLE_TOKEN = "ya29.fake-google-token"
PROJECT = "fake-project"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    """An ASGI wrapper that keeps each request the fake received."""

    app: Any
    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []

        async def replay():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        record = Seen(scope["method"], scope["path"], headers, b"")
        self.seen.append(record)

        async def receive_recorded():
            message = await replay()
            record.body = b"".join(chunks)
            return message

        return await self.app(scope, receive_recorded, send)

    @property
    def last(self) -> Seen:
        return self.seen[-1]


@pytest.fixture
def recorder(no_network) -> Recorder:
    return Recorder(create_fake_app())


def _http(recorder: Recorder) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=StreamingASGITransport(app=recorder))


@pytest.fixture
def bedrock(recorder, monkeypatch):
    """`bedrock(**kwargs)`: an AsyncAnthropicBedrock with static keys, as the site builds it."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)

    def make(**kwargs: Any) -> anthropic.AsyncAnthropicBedrock:
        options: dict[str, Any] = {
            "aws_region": "us-west-2",
            "base_url": "http://bedrock-runtime.fake.invalid",
            "max_retries": 0,
            "http_client": _http(recorder),
        }
        if "api_key" not in kwargs:
            options.update(aws_access_key=AWS_KEY, aws_secret_key=AWS_SECRET)
        options.update(kwargs)
        return anthropic.AsyncAnthropicBedrock(**options)

    return make


@pytest.fixture
def vertex(recorder):
    """`vertex(**kwargs)`: an AsyncAnthropicVertex with a static token (no google-auth)."""

    def make(**kwargs: Any) -> anthropic.AsyncAnthropicVertex:
        options: dict[str, Any] = {
            "region": "global",
            "project_id": PROJECT,
            "access_token": GOOGLE_TOKEN,
            "base_url": "http://aiplatform.fake.invalid/v1",
            "max_retries": 0,
            "http_client": _http(recorder),
        }
        options.update(kwargs)
        return anthropic.AsyncAnthropicVertex(**options)

    return make


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
