"""The check through a real Celery worker process and broker (Redis in the
PostgreSQL + Redis pass, kombu's filesystem broker in the SQLite one), and a
worker killed in the middle of a check: the file still ends ready."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest

from conversations.attachments import pipeline
from conversations.models import Attachment
from conversations.tasks import attachment_check_task
from tests.attachments import workers
from tests.attachments.corpus import jpeg_with_gps, pdf_bytes
from tests.integration.servers import site_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


@pytest.fixture
def site(settings, tmp_path):
    """One var folder shared by this test process and its workers: the attachments
    storage and (without Redis) the broker's folders; a queue of its own."""
    var = tmp_path / "var"
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(var / "attachments"), "base_url": None},
        },
    }
    queue = f"attachments-test-{uuid.uuid4().hex[:8]}"
    original = workers.broker_use(var, queue)
    env = site_env(
        DATABASE_URL=workers.database_url(),
        CHAT_VAR_DIR=str(var),
        CHANNEL_LAYER_PREFIX=f"wk{uuid.uuid4().hex[:8]}",
    )
    started: list[subprocess.Popen] = []

    def start_worker(*, hold_seconds: float = 0) -> subprocess.Popen:
        """A worker process; with `hold_seconds`, one whose checks hold that long
        once started (tests/attachments/slow_worker.py)."""
        process = workers.worker_start(
            queue=queue,
            env=env,
            log_path=tmp_path / f"worker-{len(started)}.log",
            hold_seconds=hold_seconds,
        )
        started.append(process)
        return process

    yield start_worker
    for process in started:
        workers.worker_kill(process)
    workers.broker_restore(original)


def _wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_real_worker_checks_an_upload(upload, site):
    site()
    attachment = upload("scan.pdf", pdf_bytes(4))
    attachment_check_task.delay(str(attachment.id))
    ready = _wait_for(
        lambda: Attachment.objects.filter(id=attachment.id, status="ready").first(),
        timeout=40,
        what="the worker to check the file",
    )
    assert (ready.kind, ready.pages, ready.check_attempts) == ("pdf", 4, 1)


def test_a_worker_killed_mid_check_leaves_the_file_to_end_ready(upload, site, settings):
    killed = site(hold_seconds=60)
    attachment = upload("photo.jpg", jpeg_with_gps((2400, 1600)))
    attachment_check_task.delay(str(attachment.id))
    _wait_for(
        lambda: Attachment.objects.filter(id=attachment.id, check_attempts=1).exists(),
        timeout=40,
        what="the first worker to start the check",
    )
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    stuck = Attachment.objects.get(id=attachment.id)
    assert (stuck.status, stuck.check_attempts) == ("checking", 1)

    site()  # a new worker; the beat's sweep finds the check gone quiet
    settings.ATTACHMENT_CHECK_STALE_SECONDS = 1
    time.sleep(1.1)
    assert pipeline.attachments_sweep() == 1
    ready = _wait_for(
        lambda: Attachment.objects.filter(id=attachment.id, status="ready").first(),
        timeout=40,
        what="the new worker to check the file",
    )
    assert (ready.width, ready.height, ready.check_attempts) == (1568, 1045, 2)
    assert pipeline.attachment_storage().exists(ready.prepared_path)
