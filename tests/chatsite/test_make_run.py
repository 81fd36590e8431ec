"""`make run` as a new user meets it, in a terminal: a few lines, the URL and
logins last and only once the site answers, the site's own 404, and Ctrl+C
stopping web and worker in one line with nothing left running.

Runs the real target under a pseudo-terminal, in a session of its own, with a
fresh var/ (no database, no development key yet) and a fresh shell's
environment. Ctrl+C is the byte a terminal sends, so the line discipline signals
the foreground process group exactly as it would for a person.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import socket
import subprocess
import termios
import time
import urllib.error
import urllib.request

import psutil
import pytest

from .shell import ROOT, free_port, fresh_env

pytestmark = pytest.mark.timeout(180)


def _take_terminal() -> None:
    # Without a controlling terminal, ^C on the pty signals no one.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.master, replica = pty.openpty()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=replica,
            stdout=replica,
            stderr=replica,
            start_new_session=True,  # a session of its own,
            preexec_fn=_take_terminal,  # with the pty as its controlling terminal
        )
        os.close(replica)
        self.output = bytearray()

    def read(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                return
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the other side closed
                return
            if not chunk:
                return
            self.output.extend(chunk)

    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r\n", "\n")

    def wait_for(self, pattern: str, seconds: float) -> re.Match:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if match := re.search(pattern, self.text()):
                return match
            assert self.process.poll() is None, self.text()
            self.read(0.2)
        raise AssertionError(f"{pattern!r} not printed within {seconds} s:\n{self.text()}")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def processes_with_env(name: str, value: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(name) == value:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


def test_make_run_starts_quietly_and_stops_in_one_line(tmp_path):
    port = free_port()
    env = fresh_env(tmp_path, TERM="xterm")
    # -o: the venv is the shared one, already installed; do not let a newer
    # pyproject.toml make this test run pip.
    terminal = Terminal(["make", "-o", ".venv/.installed", "run", f"PORT={port}"], env)
    try:
        started = time.monotonic()
        terminal.wait_for(r"Press Ctrl\+C to stop\.\n\n", 120)
        # Printed only once the site accepts connections: the first request succeeds.
        status, login_page = get(f"http://127.0.0.1:{port}/accounts/login/")
        first_page_seconds = time.monotonic() - started
        assert status == 200 and "Sign in" in login_page
        terminal.read(1.0)
        at_start = terminal.text()
        lines = at_start.rstrip("\n").split("\n")

        # The product's 404, not Django's debug page listing every URL pattern.
        status, missing = get(f"http://127.0.0.1:{port}/no-such-page/")
        assert status == 404
        assert "We can’t find that page" in missing and "URLconf" not in missing

        terminal.read(0.5)
        before_stop = len(terminal.text())
        os.write(terminal.master, b"\x03")  # Ctrl+C
        stop_started = time.monotonic()
        while terminal.process.poll() is None and time.monotonic() - stop_started < 60:
            terminal.read(0.2)
        terminal.read(0.3)
        stop_seconds = time.monotonic() - stop_started
        at_stop = terminal.text()[before_stop:]
    finally:
        if terminal.process.poll() is None:
            os.killpg(terminal.process.pid, 9)
            terminal.process.wait()
        leftovers = processes_with_env("CHAT_VAR_DIR", str(tmp_path))
        for leftover in leftovers:
            leftover.kill()

    print(
        f"make run: {len(lines)} lines at start, first page after {first_page_seconds:.1f} s; "
        f"{len(at_stop.strip().splitlines())} lines at stop, {stop_seconds:.1f} s, "
        f"exit status {terminal.process.returncode}"
    )
    # Start: one line, then the URL and logins, then only the first request's access log.
    assert lines[0] == "Starting Team chat..."
    assert f"  Team chat is running at http://127.0.0.1:{port}/" in lines
    assert "  Sign in as alice (or bob, carol) with password: teamchat-demo" in lines
    assert len(lines) <= 8, at_start
    for noise in ("celery@", "superuser", "No hostname", "WARNING", "Traceback", "Applying"):
        assert noise not in at_start

    # Stop: the terminal's ^C echo and one goodbye; make dies of the SIGINT it
    # got from the terminal (130 in a shell), without a line of its own.
    assert terminal.process.returncode in (0, -2), at_stop
    assert at_stop.strip().splitlines() == [
        "^C",
        "Stopping Team chat (Ctrl+C again to force)... stopped.",
    ], at_stop
    assert stop_seconds < 30
    # Web and worker (and beat) are gone, and the port is free again.
    assert leftovers == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
