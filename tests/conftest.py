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
