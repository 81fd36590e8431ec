"""The site, served for real, and a headless Chromium to drive it.

One session-scoped server pair, on free ports:
  * the standalone fake Claude (`manage.py fakeclaude`), and
  * daphne serving `chatsite.asgi:application`, pointed at the fake with
    `ANTHROPIC_BASE_URL`, on its own SQLite database in a temporary
    `CHAT_VAR_DIR`, seeded with the demo world (alice, bob, carol, admin).

These tests talk HTTP and websockets to that separate server, so they never use
pytest-django's test database. Screenshots of every step go to `build/e2e/`.
When a test fails, both servers' logs are attached to its report.

Chromium is Debian's (`/usr/bin/chromium`); `make test` installs it. Without it
the suite is skipped with a reason, except under `CI`, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "e2e"
PASSWORD = "e2e-demo-password"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Log files of the running servers, attached to the report of a failing test.
_server_logs: dict[str, Path] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.failed and item.get_closest_marker("e2e") and _server_logs:
        for name, path in _server_logs.items():
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            report.sections.append((f"{name} log (last 8000 chars)", text[-8000:]))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class Site:
    url: str
    fake_url: str
    password: str
    var_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)


def _server_env(var_dir: Path, fake_port: int) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        # The pytest process has set test settings in its own environment
        # (tests/settings.py); the real server must not inherit them.
        if not key.startswith(
            ("DJANGO_", "CHAT_", "CLAUDE_", "ANTHROPIC_", "FAKE_CLAUDE_", "CHANNEL_LAYER")
        )
        and key not in {"DATABASE_URL", "REDIS_URL", "PYTEST_CURRENT_TEST"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        DJANGO_DEBUG="true",  # static files straight from the finders
        DJANGO_SECRET_KEY="e2e",
        CHAT_VAR_DIR=str(var_dir),
        DATABASE_URL=f"sqlite:///{var_dir / 'db.sqlite3'}",
        REDIS_URL="",
        ANTHROPIC_BASE_URL=f"http://127.0.0.1:{fake_port}",
        DEMO_PASSWORD=PASSWORD,
        PYTHONUNBUFFERED="1",
        # The suite is a few people typing far faster than anyone does, for
        # minutes, on one site: alice alone starts more than the default 20
        # calls a minute. The limit has its own tests (tests/usage, the consumer's).
        USAGE_RATE_LIMIT_PER_MINUTE="1000",
    )
    return env


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Chromium is missing: install Debian's `chromium` (make chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so the browser tests must run.")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def site(chromium_path: str) -> Iterator[Site]:
    """migrate + seed_demo, then the fake Claude and daphne on free ports."""
    python = sys.executable
    var_dir = Path(tempfile.mkdtemp(prefix="chat-e2e-"))
    fake_port, web_port = _free_port(), _free_port()
    env = _server_env(var_dir, fake_port)
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        done = subprocess.run(
            [python, "manage.py", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            pytest.fail(f"manage.py {' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    site = Site(
        url=f"http://127.0.0.1:{web_port}",
        fake_url=f"http://127.0.0.1:{fake_port}",
        password=PASSWORD,
        var_dir=var_dir,
    )
    commands = {
        "fake Claude": [
            python,
            "manage.py",
            "fakeclaude",
            "--port",
            str(fake_port),
            "--tps",
            "40",
            "--ttft-ms",
            "100",
        ],
        "daphne": [
            python,
            "-m",
            "chatsite.web",
            "-b",
            "127.0.0.1",
            "-p",
            str(web_port),
            "chatsite.asgi:application",
        ],
    }
    ports = {"fake Claude": fake_port, "daphne": web_port}
    try:
        for name, command in commands.items():
            log_path = var_dir / f"{name.replace(' ', '-')}.log"
            _server_logs[name] = log_path
            log = log_path.open("wb")
            site.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            log.close()
        for name, port in ports.items():
            _wait_for_port(port, site.processes[name], name)
    except Exception as exc:
        for process in site.processes.values():
            _stop(process)
        logs = "\n".join(
            f"--- {name} ---\n{path.read_text(errors='replace')[-4000:]}"
            for name, path in _server_logs.items()
            if path.exists()
        )
        pytest.fail(f"The e2e servers did not start: {exc}\n{logs}")
    yield site
    for process in site.processes.values():
        _stop(process)
    _server_logs.clear()
    shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def browser(chromium_path: str, site: Site):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageProblems:
    """Console errors (CSP violations included) and uncaught exceptions of a page."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def watch(self, page) -> None:
        page.on(
            "console",
            lambda msg: (
                self.items.append(f"console.{msg.type}: {msg.text} @ {msg.location}")
                if msg.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.items.append(f"pageerror: {exc}"))

    def allow(self, predicate) -> None:
        """Forget the problems a step expects (a 404's 'Failed to load resource')."""
        self.items = [item for item in self.items if not predicate(item)]


@pytest.fixture
def new_page(browser, site: Site):
    """Open pages in fresh browser contexts (one per person); at the end of the
    test, no page may have logged a console error or thrown."""
    contexts = []
    problems = PageProblems()

    def open_page(viewport: dict | None = None, **options):
        """`options` go to the context: `has_touch=True` (a coarse pointer), `color_scheme`."""
        context = browser.new_context(
            base_url=site.url, viewport=viewport or {"width": 1280, "height": 900}, **options
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        problems.watch(page)
        return page

    open_page.problems = problems
    yield open_page
    for context in contexts:
        context.close()
    assert problems.items == [], "The browser reported errors:\n" + "\n".join(problems.items)


def screenshot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
