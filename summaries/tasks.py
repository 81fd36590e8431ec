"""Celery tasks: thin wrappers over `summaries.services`, one step each.

Every task acks late (a worker killed in it leaves the message to be delivered
again) and every step it calls is safe to run twice. Polls are scheduled with
countdowns below the broker's visibility timeout, and their state is in the
database, so `summaries_resume_task` (beat, every minute) requeues whatever a
restart lost.
"""

from __future__ import annotations

from celery import shared_task

from claude.errors import ClaudeError

_STEP = {
    "acks_late": True,
    # A busy or unreachable API is tried again; the steps decide what a retry may do.
    "autoretry_for": (ClaudeError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "max_retries": 12,
}


@shared_task(name="summaries.tasks.summary_job_build_task", **_STEP)
def summary_job_build_task(job_id: int) -> int:
    """Write a new job's requests into batches, then queue their submits."""
    from summaries.services import summary_job_build

    return summary_job_build(job_id=job_id)


@shared_task(name="summaries.tasks.summary_batch_submit_task", bind=True, **_STEP)
def summary_batch_submit_task(self, batch_id: int) -> str:
    """Submit one batch to the API, at most once."""
    from django.conf import settings

    from summaries.services import summary_batch_submit

    outcome = summary_batch_submit(batch_id=batch_id)
    if outcome.outcome == "busy":
        # Another submit is in its API call: look again once its lease has run out.
        self.apply_async((batch_id,), countdown=settings.SUMMARIES_SUBMIT_LEASE_SECONDS)
    return outcome.outcome


@shared_task(name="summaries.tasks.summary_batch_poll_task", bind=True, **_STEP)
def summary_batch_poll_task(self, batch_id: int) -> float | None:
    """Read a batch's status (billing nothing); poll again later or ingest it."""
    from summaries.services import summary_batch_poll

    delay = summary_batch_poll(batch_id=batch_id)
    if delay is not None:
        self.apply_async((batch_id,), countdown=delay)
    return delay


@shared_task(name="summaries.tasks.summary_batch_ingest_task", **_STEP)
def summary_batch_ingest_task(batch_id: int) -> int:
    """Store an ended batch's results, summaries and ledger rows, exactly once."""
    from summaries.services import summary_batch_ingest

    return summary_batch_ingest(batch_id=batch_id)


@shared_task(name="summaries.tasks.summary_job_cancel_task", **_STEP)
def summary_job_cancel_task(job_id: int) -> int:
    """Cancel a job's submitted batches at the API."""
    from summaries.services import summary_job_cancel_run

    return summary_job_cancel_run(job_id=job_id)


@shared_task(name="summaries.tasks.summaries_resume_task")
def summaries_resume_task() -> int:
    """Requeue the steps of jobs whose tasks a restart lost (every minute)."""
    from summaries.services import summaries_resume

    return summaries_resume()


@shared_task(name="summaries.tasks.weekly_digests_task")
def weekly_digests_task() -> int:
    """Start this week's digest jobs (Mondays)."""
    from summaries.services import digests_run

    return digests_run()
