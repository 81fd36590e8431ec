"""Celery wiring: the reaper task runs through a real worker and broker."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from chatsite.celery import app as celery_app
from conversations import services
from conversations.models import Message
from conversations.tasks import generation_reap_task

REAPER_QUEUE = "test-reaper"


@pytest.fixture
def worker_app(settings, tmp_path):
    """The project's Celery app with a live worker thread, on the default
    no-server broker (kombu's filesystem transport) in a fresh folder."""
    queue = tmp_path / "queue"
    queue.mkdir()
    original = (celery_app.conf.broker_url, celery_app.conf.broker_transport_options)
    celery_app.conf.update(
        broker_url="filesystem://",
        broker_transport_options={
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(tmp_path),
            "control_folder": str(tmp_path / "control"),
            "store_processed": False,
            "polling_interval": 0.05,
        },
    )
    try:
        # Its own queue, named on both ends: other tests point the app's default
        # queue elsewhere (tests/attachments/workers.py), and the app caches it.
        with start_worker(
            celery_app,
            perform_ping_check=False,
            pool="solo",
            loglevel="WARNING",
            queues=[REAPER_QUEUE],
        ):
            yield celery_app
    finally:
        celery_app.conf.update(broker_url=original[0], broker_transport_options=original[1])


@pytest.mark.django_db(transaction=True)
def test_reaper_task_marks_a_dead_process_reply_interrupted(alice, make_conversation, worker_app):
    """A reply left streaming by a killed process ends up interrupted, its text kept."""
    conversation = make_conversation()
    sent = services.message_send(conversation=conversation, author=alice, text="hi", client_id="1")
    Message.objects.filter(id=sent.assistant_message.id).update(
        status="streaming", text="partial", heartbeat_at=timezone.now() - dt.timedelta(minutes=10)
    )
    # A connection of its own, to this test's broker folder: the app's pooled
    # producer may still point at the one an earlier test's send opened.
    with worker_app.connection_for_write() as connection:
        generation_reap_task.apply_async(queue=REAPER_QUEUE, connection=connection)
    deadline = time.monotonic() + 60  # a busy host starts the worker thread slowly
    while Message.objects.get(id=sent.assistant_message.id).status != "interrupted":
        assert time.monotonic() < deadline, "the worker never reaped the reply"
        time.sleep(0.05)
    reply = Message.objects.get(id=sent.assistant_message.id)
    assert (reply.status, reply.text) == ("interrupted", "partial")
