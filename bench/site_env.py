"""What every benchmark does with the site's processes: the environment they run
with (this shell's, without any of the site's own settings, so a developer's
`.env` cannot skew a run, plus what every bench sets; each bench adds its own on
top), and waiting for one to listen."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

_SITE_PREFIXES = ("DJANGO_", "CHAT_", "CLAUDE_", "ANTHROPIC_", "FAKE_CLAUDE_", "ATTACHMENT", "USAGE_")


def bench_site_env(var_dir: Path, *, secret_key: str, **settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_SITE_PREFIXES) and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secret_key,
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SECURE_COOKIES="false",
        CHAT_VAR_DIR=str(var_dir),
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


async def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args} exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
