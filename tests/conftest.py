"""Shared fixtures: the demo world and a fast, in-process fake Claude.

The world, built fresh for each test that asks for it:
  alice (owner of Acme) and bob (member of Acme); carol (owner of Globex);
  admin, a superuser. Conversations are private to their owner, so bob and
  carol must see nothing of alice's.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
import pytest_asyncio
from django.conf import settings as django_settings

ORIGIN = "http://localhost"


@pytest.fixture(autouse=True)
def _fresh_claude_client(settings):
    """Each test gets a new SDK client and a new fake (its prompt cache starts empty)."""
    from claude.client import claude_client_reset

    settings.CLAUDE_PROVIDER = "fake"
    settings.CLAUDE_MAX_RETRIES = 0
    settings.CHAT_COALESCE_SECONDS = 0.02
    claude_client_reset()
    yield
    claude_client_reset()


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _network_refused(monkeypatch) -> None:
    """Anything but loopback is refused: a cloud SDK that tried to reach AWS (the
    instance metadata service, STS) or Google (a token endpoint) fails loudly."""
    import socket

    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            raise OSError(f"test: no network beyond loopback ({address!r})")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in _LOOPBACK:
            raise OSError(f"test: no name lookups ({host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def no_network(monkeypatch) -> None:
    """Sockets reach loopback only, and no name is looked up."""
    _network_refused(monkeypatch)


@pytest.fixture
def claude_on(settings, monkeypatch):
    """`claude_on("bedrock", endpoint="eu", region="eu-west-1")` or `claude_on("vertex",
    region="us-east5")`: the site's calls go through that provider's real SDK client
    (`AsyncAnthropicBedrock` / `AsyncAnthropicVertex`) to the in-process fake, with
    fake AWS credentials or a fake Google token, and no network at all.
    `base_url=` (a standalone fake) keeps the SDK's own aiohttp transport."""

    def use(provider: str, *, region: str = "", endpoint: str = "global", base_url: str = ""):
        from claude import client as gateway
        from claude.fake.transport import StreamingASGITransport

        settings.CLAUDE_PROVIDER = provider
        if provider == "bedrock":
            settings.CLAUDE_AWS_REGION = region or "us-west-2"
            settings.CLAUDE_BEDROCK_ENDPOINT = endpoint
            settings.CLAUDE_BEDROCK_BASE_URL = base_url or "http://bedrock-runtime.fake.invalid"
            # Static keys: boto3 signs locally and looks nowhere else.
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE0000")
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-key")
            monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
            monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
            for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK"):
                monkeypatch.delenv(name, raising=False)
        elif provider == "vertex":
            settings.CLAUDE_VERTEX_REGION = region or "global"
            settings.CLAUDE_VERTEX_PROJECT_ID = "fake-project"
            # A static token: google-auth is never asked for one.
            settings.CLAUDE_VERTEX_ACCESS_TOKEN = "ya29.fake-google-token"
            settings.CLAUDE_VERTEX_BASE_URL = (
                f"{base_url}/v1" if base_url else "http://aiplatform.fake.invalid/v1"
            )
        else:
            raise ValueError(provider)
        if not base_url:

            def in_process(timeout):
                transport = StreamingASGITransport(app=gateway.fake_app())
                return httpx2.AsyncClient(transport=transport, timeout=timeout)

            monkeypatch.setattr(gateway, "_http_client", in_process)
        _network_refused(monkeypatch)
        gateway.claude_client_reset()

    return use


@pytest.fixture(params=["fake", "bedrock", "vertex"])
def any_provider(request, claude_on) -> str:
    """Runs a test three times: on the Anthropic API's wire (the in-process fake), and
    through the Bedrock and Vertex SDK clients (the fake speaking their protocols)."""
    if request.param != "fake":
        claude_on(request.param)
    return request.param


@pytest.fixture
def world(db):
    from accounts.services import demo_world_seed

    return demo_world_seed(password="pw-for-tests-123")


@pytest.fixture
def alice(world):
    return world["alice"]


@pytest.fixture
def bob(world):
    return world["bob"]


@pytest.fixture
def carol(world):
    return world["carol"]


@pytest.fixture
def make_conversation(alice):
    from conversations.services import conversation_create

    def make(
        owner=None,
        *,
        model: str = "claude-sonnet-5-5",
        system_prompt: str = "",
        thinking_effort: str = "",
    ):
        return conversation_create(
            owner=owner or alice,
            model=model,
            system_prompt=system_prompt,
            thinking_effort=thinking_effort,
        )

    return make


def session_cookie_for(user) -> str:
    """A signed-in session for `user`, as the Cookie header a browser would send."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"


@pytest_asyncio.fixture
async def socket_for():
    """Open a websocket on a conversation through the full ASGI stack (origin check,
    session auth, routing). Returns (communicator, connected)."""
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def open_socket(user, conversation_id, *, origin: str | None = ORIGIN):
        headers = []
        if user is not None:
            from asgiref.sync import sync_to_async

            cookie = await sync_to_async(session_cookie_for)(user)
            headers.append((b"cookie", cookie.encode()))
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        communicator = WebsocketCommunicator(
            application, f"/ws/c/{conversation_id}/", headers=headers
        )
        connected, _ = await communicator.connect(timeout=5)
        opened.append(communicator)
        return communicator, connected

    yield open_socket
    # Close every socket, and let replies started by the test finish, so no task
    # outlives its event loop.
    for communicator in opened:
        try:
            await communicator.disconnect(timeout=2)
        except Exception:
            pass
    await generations_settled()


async def receive_frames(
    communicator, *, until: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Collect frames until one matches `until` (inclusive); fail on timeout."""
    frames: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"timed out; frames so far: {[f.get('type') for f in frames]}")
        raw = await communicator.receive_from(timeout=remaining)
        frame = json.loads(raw)
        frames.append(frame)
        if until(frame):
            return frames


def completed(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "message.completed"


async def generations_settled() -> None:
    """Wait until every reply task of this process has finished."""
    from conversations.streaming.runner import _running

    for _ in range(500):
        if not _running:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("replies still running")


def streamed_text(frames: list[dict[str, Any]], message_id: str) -> str:
    """The answer as a client assembles it from deltas (a snapshot replaces the text)."""
    text = ""
    for frame in frames:
        if frame.get("message_id") != message_id:
            continue
        if frame["type"] == "message.snapshot":
            text = frame["text"]
        elif frame["type"] == "message.delta":
            text += frame.get("text", "")
    return text


def assistant_id(frames: list[dict[str, Any]]) -> str:
    """The id of the reply announced among these frames."""
    return next(
        f["message"]["id"]
        for f in frames
        if f["type"] == "message.created" and f["message"]["role"] == "assistant"
    )


def pytest_collection_modifyitems(config, items):
    """Browser tests run last: Playwright's sync API keeps an event loop running in
    the main thread until the session ends, and every async test after it would
    find that loop and fail to start its own."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


def pytest_sessionfinish(session, exitstatus):
    """The run's attachments folder (tests/settings.py) goes with the run."""
    import shutil

    from django.conf import settings

    location = settings.STORAGES.get("attachments", {}).get("OPTIONS", {}).get("location")
    if location and "test-attachments-" in location:
        shutil.rmtree(location, ignore_errors=True)
    fake_files = os.environ.get("FAKE_CLAUDE_FILES_DIR", "")
    if "test-fake-files-" in fake_files:
        shutil.rmtree(fake_files, ignore_errors=True)
    fake_batches = os.environ.get("FAKE_CLAUDE_BATCHES_DIR", "")
    if "test-fake-batches-" in fake_batches:
        shutil.rmtree(fake_batches, ignore_errors=True)
