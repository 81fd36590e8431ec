"""Real processes for integration tests: the standalone fake Claude and daphne.

Each server runs `chatsite.settings` with the environment a deployment would
set, on a free localhost port, and is stopped (and its log shown on failure)
by the fixture that started it.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, *, timeout: float = 30.0, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def site_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="integration-test-secret-key-0123456789-abcdefghijklmnop",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SECURE_COOKIES="false",
        DEMO_PASSWORD="integration-pw-123",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


# The migrated and seeded database each admin URL's first site made, kept as a
# template for the next (in this process), with its static files: copying both
# takes well under a second, where migrate, collectstatic and seed_demo take
# about 18 s on PostgreSQL here.
_site_templates: dict[str, tuple[str, Path]] = {}


def prepare_site_database(admin_url: str, db_name: str, env: dict[str, str]) -> None:
    """Make `db_name` afresh (any earlier one dropped), migrated and with the demo
    seeded, and the static files in the site's CHAT_VAR_DIR, as a new deployment
    has them."""
    drop_database(admin_url, db_name)
    static_root = Path(env["CHAT_VAR_DIR"]) / "staticfiles"
    template = _site_templates.get(admin_url)
    if template:
        template_name, template_static = template
        _execute(admin_url, sql.SQL("CREATE DATABASE {} TEMPLATE {}"), db_name, template_name)
        shutil.copytree(template_static, static_root, dirs_exist_ok=True)
        return
    _execute(admin_url, sql.SQL("CREATE DATABASE {}"), db_name)
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    manage("seed_demo", env=env)
    # No process is connected to it now (manage.py has exited): it can be copied.
    template_name = f"{db_name}_template"
    drop_database(admin_url, template_name)
    _execute(admin_url, sql.SQL("CREATE DATABASE {} TEMPLATE {}"), template_name, db_name)
    _site_templates[admin_url] = (template_name, static_root)
    atexit.register(drop_database, admin_url, template_name)


def drop_database(admin_url: str, db_name: str) -> None:
    """Drop `db_name` if it is there, closing whatever is still connected to it."""
    _execute(admin_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)"), db_name)


def _execute(admin_url: str, statement: sql.SQL, *names: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(statement.format(*map(sql.Identifier, names)))


def start_fake_claude(log_dir: Path, *, tps: float = 50, ttft_ms: int = 50) -> Server:
    port = free_port()
    log_path = log_dir / f"fakeclaude-{port}.log"
    process = subprocess.Popen(
        [
            PYTHON,
            "manage.py",
            "fakeclaude",
            "--port",
            str(port),
            "--tps",
            str(tps),
            "--ttft-ms",
            str(ttft_ms),
        ],
        cwd=ROOT,
        env=site_env(),
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, process=process)
    return Server("fakeclaude", port, process, log_path)


def start_daphne(log_dir: Path, *, env: dict[str, str], name: str = "web") -> Server:
    port = free_port()
    log_path = log_dir / f"{name}-{port}.log"
    process = subprocess.Popen(
        [PYTHON, "-m", "chatsite.web", "-b", "127.0.0.1", "-p", str(port), "chatsite.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, process=process)
    return Server(name, port, process, log_path, env)


def login_cookie(server: Server, username: str, password: str) -> str:
    """Sign in through the login form, as a browser does; return the Cookie header."""
    with httpx2.Client(base_url=server.url, follow_redirects=False) as client:
        page = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = client.post(
            "/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{server.url}/accounts/login/"},
        )
        assert response.status_code == 302, response.text[:500]
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def create_conversation(server: Server, cookie: str, *, system_prompt: str = "") -> str:
    with httpx2.Client(
        base_url=server.url, follow_redirects=False, headers={"Cookie": cookie}
    ) as client:
        page = client.get("/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = client.post(
            "/c/new/",
            data={
                "model": "claude-sonnet-5-5",
                "system_prompt": system_prompt,
                "csrfmiddlewaretoken": token,
            },
            headers={"Referer": f"{server.url}/"},
        )
        assert response.status_code == 302, response.text[:500]
        return response.headers["location"].strip("/").split("/")[-1]
