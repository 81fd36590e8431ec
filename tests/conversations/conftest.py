"""Fixtures of the conversation tests that need a server of their own."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def standalone_server() -> AsyncIterator[str]:
    """`manage.py fakeclaude` on a free port, as demos and the benchmark run it: its URL."""
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings", "DJANGO_DEBUG": "true"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "fakeclaude", "--port", str(port), "--ttft-ms", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode() if process.stderr else "")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=10)  # waits, and closes the pipes


@pytest.fixture
async def signed_in():
    """`await signed_in(user)`: a browser session of `user` that opens sockets."""
    from asgiref.sync import sync_to_async

    from tests.conftest import generations_settled
    from tests.conversations.sockets import SignedIn

    sessions = []

    async def make(user):
        session = await sync_to_async(SignedIn)(user)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        await session.close()
    await generations_settled()


@pytest.fixture
def recorder(monkeypatch):
    """The fake Claude of this test, keeping the body and headers of each request."""
    from tests.conversations.recording import recorder_install

    return recorder_install(monkeypatch)
