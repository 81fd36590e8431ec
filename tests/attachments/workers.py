"""A real Celery worker process beside the test process, on the test database
and a broker both can reach: Redis in the PostgreSQL + Redis pass, kombu's
filesystem broker (folders in a shared var folder) in the SQLite one.

The test process's Celery app is pointed at the same broker and at a queue of
the caller's own, so only that caller's worker takes its tasks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.db import connection

from chatsite.celery import app as celery_app
from tests.integration.servers import ROOT

_BROKER_KEYS = ("broker_url", "broker_transport_options", "task_default_queue")


def database_url() -> str:
    """The test database, as a URL the worker process can open."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(name).resolve()}"
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{name}"))


def broker_use(var: Path, queue: str) -> dict:
    """Point this process's Celery app at the workers' broker and `queue`; the
    configuration it had, for `broker_restore`."""
    original = {key: celery_app.conf[key] for key in _BROKER_KEYS}
    if os.environ.get("REDIS_URL"):
        celery_app.conf.update(broker_url=os.environ["REDIS_URL"], task_default_queue=queue)
    else:
        broker = var / "celery-broker"
        for folder in ("queue", "processed", "control"):
            (broker / folder).mkdir(parents=True, exist_ok=True)
        celery_app.conf.update(
            broker_url="filesystem://localhost/",
            broker_transport_options={
                "data_folder_in": str(broker / "queue"),
                "data_folder_out": str(broker / "queue"),
                "processed_folder": str(broker / "processed"),
                "control_folder": str(broker / "control"),
                "store_processed": False,
            },
            task_default_queue=queue,
        )
    producer_pools_reset()
    return original


def broker_restore(original: dict) -> None:
    celery_app.conf.update(original)
    producer_pools_reset()


def producer_pools_reset() -> None:
    """The app forgets what it made for another broker and queue: its connection
    pool and its messaging object (queues, routes, producers), which it makes
    again, lazily, from the configuration it has now."""
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)


def worker_start(
    *, queue: str, env: dict[str, str], log_path: Path, hold_seconds: float = 0
) -> subprocess.Popen:
    """`celery worker` on `queue`, in a process group of its own (a kill takes all of
    it); with `hold_seconds`, one whose checks hold that long once started
    (tests/attachments/slow_worker.py)."""
    command = (
        ["-m", "tests.attachments.slow_worker", str(hold_seconds)]
        if hold_seconds
        else ["-m", "celery", "-A", "chatsite"]
    )
    with log_path.open("w") as log:
        return subprocess.Popen(
            [
                sys.executable,
                *command,
                "worker",
                "-P",
                "solo",
                "-Q",
                queue,
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def worker_wait_ready(process: subprocess.Popen, log_path: Path, *, timeout: float = 60) -> None:
    """Until the worker says it is ready to take tasks; fail with its log if it dies."""
    deadline = time.monotonic() + timeout
    while b" ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            worker_kill(process)
            raise AssertionError(
                "The Celery worker did not start:\n" + log_path.read_text()[-4000:]
            )
        time.sleep(0.1)


def worker_kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
