"""`make run`: the site and a Celery worker in one terminal, quiet, stopped by Ctrl+C.

    python -m chatsite.dev --host 127.0.0.1 --port 8000

Migrates, seeds the demo users, starts the web process (`chatsite.web`) and a
worker with beat, prints the URL and the demo logins once the site accepts
connections, and on Ctrl+C (or SIGTERM) stops both and says goodbye in one line. The children run in a process
group of their own, so the terminal's Ctrl+C reaches only this launcher: the
worker would otherwise answer it with its own notices, and stopping in one
place is what keeps the shutdown to one line and one signal per child.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from chatsite.env import env_str

# As root (containers, CI) Celery warns on every start that the worker should
# not run as root; for a development worker on one's own machine that is noise.
# Deployments run as a user of their own (see the Dockerfile), and keep the warning.
ROOT_WARNING_FILTER = "ignore:You're running the worker with superuser privileges"


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM to this child if the launcher dies, even by SIGKILL."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _start(argv: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        process_group=0,  # out of the terminal's foreground group: Ctrl+C is ours alone
        preexec_fn=_die_with_parent,
        **kwargs,
    )


def _wait_for_port(host: str, port: int, children: list[subprocess.Popen], timeout: float) -> bool:
    """True once the port accepts a connection; False if a child exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _connect_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)

    children: list[subprocess.Popen] = []
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # a second Ctrl+C: do not wait for running replies
            for child in children:
                if child.poll() is None:
                    os.killpg(child.pid, signal.SIGKILL)  # with the worker's beat
            return
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    print("Starting Team chat...", flush=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    # In this process rather than two more `manage.py` runs: each start of
    # Django costs seconds before the site can open.
    call_command("migrate", interactive=False, verbosity=0)
    call_command("seed_demo", stdout=io.StringIO())
    connections.close_all()
    password = settings.DEMO_PASSWORD
    if stopping:
        return 0

    env = dict(os.environ)
    # Warnings and errors only (the access log still shows each request);
    # LOG_LEVEL=INFO make run shows the servers' own start and stop lines.
    env["LOG_LEVEL"] = env_str("LOG_LEVEL", "WARNING")
    python = sys.executable
    web = _start(
        [python, "-m", "chatsite.web", "-b", args.host, "-p", str(args.port)]
        + ["chatsite.asgi:application"],
        env,
    )
    children.append(web)
    base = f"http://{args.host}:{args.port}"
    ready = _wait_for_port(_connect_host(args.host), args.port, children, timeout=60)
    if ready and not stopping:
        # Only now: on a busy machine the two would share the cores while the
        # site is still starting, and the site works without the worker for a
        # while (it runs the periodic housekeeping).
        children.append(
            _start(
                [python, "-W", ROOT_WARNING_FILTER, "-m", "celery", "-A", "chatsite", "--quiet"]
                + ["worker", "--beat", "--pool=solo", "--loglevel=warning"],
                env,
                # The worker's stdout carries only its shutdown notices ("worker:
                # Warm shutdown"); its logs, and any task's print(), go to stderr.
                stdout=subprocess.DEVNULL,
            )
        )
        print(
            f"\n  Team chat is running at {base}/\n"
            f"  Sign in as alice (or bob, carol) with password: {password}\n"
            f"  Django admin: {base}/admin/ as admin / {password}\n"
            "  Press Ctrl+C to stop.\n",
            flush=True,
        )
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)

    names = dict(zip(children, ("web", "worker"), strict=False))
    died = [child for child in children if child.poll() is not None]
    if stopping:
        # Say so at once: the worker's warm shutdown takes about 5 s on the
        # filesystem broker (its loop finishes a 2 s poll of the queue, runs one
        # more, then waits out its 1 s timer thread).
        print("\nStopping Team chat (Ctrl+C again to force)...", end="", flush=True)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    # The web process first lets running replies finish for the shutdown grace.
    deadline = time.monotonic() + settings.CHAT_SHUTDOWN_GRACE_SECONDS + 10
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if died and not stopping:
        child = died[0]
        print(
            f"\nThe {names[child]} process stopped (exit status {child.returncode}); see above.",
            file=sys.stderr,
        )
        return 1
    if not ready and not stopping:
        print(f"\nThe site did not answer on {base} within 60 s.", file=sys.stderr)
        return 1
    print(" stopped." if stopping else "\nTeam chat stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
