"""A job over 25 conversations end to end through a real Celery worker and broker
(Redis in the PostgreSQL + Redis pass, the filesystem broker in the SQLite one):
every summary stored, each cost exactly half the standard price, and progress
frames received on the job page's socket."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from channels.db import database_sync_to_async as sync_to_async
from channels.testing import WebsocketCommunicator

from tests.attachments import workers
from tests.conftest import ORIGIN, session_cookie_for
from tests.integration.servers import site_env
from tests.summaries.conftest import haiku_batch_price

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


@pytest.fixture
def worker(tmp_path):
    var = tmp_path / "var"
    queue = f"summaries-test-{uuid.uuid4().hex[:8]}"
    original = workers.broker_use(var, queue)
    env = site_env(
        DATABASE_URL=workers.database_url(),
        CHAT_VAR_DIR=str(var),
        CHANNEL_LAYER_PREFIX=f"wk{uuid.uuid4().hex[:8]}",
        FAKE_CLAUDE_BATCHES_DIR=os.environ["FAKE_CLAUDE_BATCHES_DIR"],
        FAKE_CLAUDE_BATCH_SECONDS="1",
        SUMMARIES_POLL_FIRST_SECONDS="0.3",
        SUMMARIES_POLL_MAX_SECONDS="1",
        SUMMARIES_BATCH_MAX_REQUESTS="10",  # three batches
        CLAUDE_PROVIDER="fake",
        # The worker's own follow-up tasks (submit, poll, ingest) go to its queue too.
        CELERY_QUEUE=queue,
    )
    log = tmp_path / "worker.log"
    process = workers.worker_start(queue=queue, env=env, log_path=log)
    workers.worker_wait_ready(process, log)
    yield log
    workers.worker_kill(process)
    workers.broker_restore(original)


async def test_25_conversations_through_a_real_worker(world, worker, settings):
    from accounts.models import Team
    from chatsite.asgi import application
    from conversations.demo import demo_conversations_seed
    from summaries import services
    from summaries.models import Summary, SummaryJob
    from usage.models import ApiCall

    settings.SUMMARIES_PROGRESS_SECONDS = 0.2
    alice = world["alice"]

    def start():
        demo_conversations_seed(count=25)
        return services.summary_job_create(team=Team.objects.get(slug="acme"), actor=alice)

    job = await sync_to_async(start)()
    cookie = await sync_to_async(session_cookie_for)(alice)
    socket = WebsocketCommunicator(
        application,
        f"/ws/summaries/{job.pk}/",
        headers=[(b"cookie", cookie.encode()), (b"origin", ORIGIN.encode())],
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    frames = [json.loads(await socket.receive_from(timeout=10))]
    try:
        while not frames[-1]["ended"]:
            frames.append(json.loads(await socket.receive_from(timeout=60)))
    except Exception:
        raise AssertionError("no end; worker log:\n" + worker.read_text()[-4000:]) from None
    finally:
        await socket.disconnect()
    last = frames[-1]
    assert (last["total"], last["succeeded"], last["status"]) == (25, 25, "ended")
    assert len(frames) >= 2 and frames[0]["succeeded"] < 25

    def stored():
        finished = SummaryJob.objects.get(pk=job.pk)
        calls = list(ApiCall.objects.filter(purpose="summary"))
        return finished, calls, Summary.objects.filter(job_id=job.pk).count()

    finished, calls, summaries = await sync_to_async(stored)()
    assert summaries == 25 and len(calls) == 25
    assert len({c.conversation_id for c in calls}) == 25
    for call in calls:
        assert call.cost_usd == haiku_batch_price(call.input_tokens, call.output_tokens)
    assert finished.cost_usd == sum(c.cost_usd for c in calls)
    assert last["cost_usd"] == f"{finished.cost_usd:.6f}"
