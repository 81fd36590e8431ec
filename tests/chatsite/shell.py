"""Runs commands as a person would in a fresh shell: no venv activated, none of
the test suite's environment (tests/settings.py sets DJANGO_* in os.environ)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def fresh_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """PATH, HOME, the locale; and a var/ of its own, standing in for the checkout's."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TERM") if key in os.environ}
    env["CHAT_VAR_DIR"] = str(var_dir)
    env.update(extra)
    return env


def run(command: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def readme_commands(pattern: str) -> list[str]:
    """Commands the README shows (inline code, or a line of a sh block) that match `pattern`."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README, flags=re.S | re.M)
    block_lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", README, flags=re.S | re.M))
    return [c for c in dict.fromkeys(block_lines + spans) if re.search(pattern, c)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
