"""Summary jobs through their services against the in-process fake: what is
stored and billed, how large jobs split, mixed outcomes, cancel, the budget,
and exactly once under crashes and repeats at every step."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Sum

from accounts.models import AuditEvent
from claude import batches as gateway
from claude.client import build_client
from claude.pricing import Usage, cost
from conversations.demo import demo_conversations_seed
from summaries import services
from summaries.models import Summary, SummaryBatch, SummaryJob, SummaryRequest
from tests.summaries.conftest import haiku_batch_price, poll_and_ingest, run_job
from usage.budgets import budget_for_team, budget_limit_set
from usage.models import ApiCall, BudgetReservation, DailyUsage

pytestmark = [pytest.mark.django_db, pytest.mark.real_backends]


def fake_batch_ids() -> list[str]:
    """Every batch the fake holds, newest first (through the real SDK)."""

    async def listed():
        async with build_client() as client:
            return [b.id async for b in client.messages.batches.list(limit=100)]

    return asyncio.run(listed())


def start(team, actor, **kwargs) -> SummaryJob:
    return services.summary_job_create(team=team, actor=actor, **kwargs)


def test_a_job_stores_one_summary_and_one_ledger_row_per_conversation_at_half_price(acme, alice):
    demo_conversations_seed(count=6)
    job = start(acme, alice)
    assert job.status == "building" and job.conversations_count == 6
    run_job(job.pk)
    job.refresh_from_db()
    assert job.status == "ended" and job.ended_at is not None
    assert Summary.objects.filter(job=job).count() == 6
    calls = ApiCall.objects.filter(purpose="summary")
    assert calls.count() == 6
    for call in calls:
        assert call.batch is True and call.model == "claude-haiku-5-5"
        assert call.user_id == alice.pk and call.team_id == acme.pk
        assert call.cost_usd == haiku_batch_price(call.input_tokens, call.output_tokens)
        usage = Usage(input_tokens=call.input_tokens, output_tokens=call.output_tokens)
        # Half of the standard price, within the micro-dollar each is rounded to.
        assert abs(2 * call.cost_usd - cost(call.model, usage).usd) <= Decimal("0.000001")
        assert call.batch_savings_usd > 0
        assert call.cost_usd > 0
    total = calls.aggregate(t=Sum("cost_usd"))["t"]
    assert job.cost_usd == total
    assert SummaryRequest.objects.filter(job=job).aggregate(t=Sum("cost_usd"))["t"] == total
    # The rollup and the budget saw exactly the ledger; the hold is closed.
    assert DailyUsage.objects.filter(team_id=acme.pk).aggregate(t=Sum("cost_usd"))["t"] == total
    assert budget_for_team(team=acme).spent_usd == total
    assert budget_for_team(team=acme).reserved_usd == 0
    reservation = BudgetReservation.objects.get(id=job.reservation_id)
    assert (reservation.status, reservation.kind, reservation.actual_usd) == (
        "settled",
        "batch",
        total,
    )
    summary = Summary.objects.filter(job=job).first()
    assert summary.text and summary.html.startswith("<")
    assert len(fake_batch_ids()) == 1


def test_the_estimate_counts_conversations_tokens_cost_and_saving(acme, chat):
    chat()
    chat("Another question about the launch")
    estimate = services.summary_preview(team=acme)
    assert estimate.conversations == 2
    assert estimate.tokens == estimate.input_tokens + estimate.output_tokens > 0
    assert estimate.cost_usd > 0
    assert estimate.saving_usd == estimate.standard_cost_usd - estimate.cost_usd
    assert abs(estimate.standard_cost_usd - 2 * estimate.cost_usd) <= Decimal("0.000002")
    assert estimate.hold_usd > estimate.cost_usd


def test_starting_records_summary_started_in_the_audit_log(acme, alice, chat):
    chat()
    job = start(acme, alice)
    event = AuditEvent.objects.get(action="summary_started")
    assert (event.actor, event.team, event.target) == (alice, acme, f"summary_job:{job.pk}")
    assert event.details["conversations"] == 1


def test_polling_bills_nothing(acme, alice, chat, settings):
    chat()
    job = start(acme, alice)
    services.summary_job_build(job_id=job.pk)
    batch = SummaryBatch.objects.get(job=job)
    services.summary_batch_submit(batch_id=batch.pk)
    for _ in range(3):
        SummaryBatch.objects.filter(pk=batch.pk).update(next_poll_at=None)
        services.summary_batch_poll(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == "ended" and batch.api_counts["succeeded"] == 1
    assert ApiCall.objects.count() == 0 and Summary.objects.count() == 0
    services.summary_batch_ingest(batch_id=batch.pk)
    assert ApiCall.objects.count() == 1


def test_a_large_job_is_split_within_the_requests_limit(acme, alice, settings):
    settings.SUMMARIES_BATCH_MAX_REQUESTS = 10
    demo_conversations_seed(count=25)
    job = start(acme, alice)
    assert services.summary_job_build(job_id=job.pk) == 3
    sizes = list(SummaryBatch.objects.filter(job=job).values_list("request_count", flat=True))
    assert sizes == [10, 10, 5]
    for batch in SummaryBatch.objects.filter(job=job):
        services.summary_batch_submit(batch_id=batch.pk)
    poll_and_ingest(job.pk)
    job.refresh_from_db()
    assert job.status == "ended" and Summary.objects.filter(job=job).count() == 25
    assert len(fake_batch_ids()) == 3


def test_a_large_job_is_split_within_the_bytes_limit(acme, alice, settings):
    demo_conversations_seed(count=6)
    settings.SUMMARIES_BATCH_MAX_BYTES = 2500  # about two requests of these
    job = start(acme, alice)
    batches = services.summary_job_build(job_id=job.pk)
    assert batches >= 3
    for batch in SummaryBatch.objects.filter(job=job):
        assert batch.byte_size <= 2500 and batch.request_count >= 1


def test_mixed_results_are_reported_per_conversation_and_billed_only_where_billed(
    acme, alice, chat
):
    ok = [chat(f"Question {i}") for i in range(3)]
    bad = chat("[[fake error=invalid_request_error]] a broken one")
    late = chat("[[fake expire=1]] a slow one")
    held = chat("[[fake hold=1]] the one that waits")
    job = start(acme, alice)
    services.summary_job_build(job_id=job.pk)
    batch = SummaryBatch.objects.get(job=job)
    services.summary_batch_submit(batch_id=batch.pk)
    services.summary_batch_poll(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == "submitted"  # the held request keeps it running
    services.summary_job_cancel(job=job, actor=alice)
    assert services.summary_job_cancel_run(job_id=job.pk) == 1
    poll_and_ingest(job.pk)
    job.refresh_from_db()
    assert job.status == "ended"
    outcome = {
        r.conversation_id: (r.status, r.reason) for r in SummaryRequest.objects.filter(job=job)
    }
    assert {outcome[c.id][0] for c in ok} == {"succeeded"}
    assert outcome[bad.id][0] == "errored" and "simulated" in outcome[bad.id][1]
    assert outcome[late.id] == ("expired", services.REASON_EXPIRED)
    assert outcome[held.id] == ("canceled", services.REASON_CANCELED)
    calls = ApiCall.objects.filter(purpose="summary")
    assert sorted(calls.values_list("conversation_id", flat=True)) == sorted(c.id for c in ok)
    assert Summary.objects.filter(job=job).count() == 3
    assert job.cost_usd == calls.aggregate(t=Sum("cost_usd"))["t"]
    progress = services.job_progress(job_id=job.pk)
    assert (progress.succeeded, progress.errored, progress.expired, progress.canceled) == (
        3,
        1,
        1,
        1,
    )


def test_a_job_cancelled_before_it_was_submitted_submits_nothing(acme, alice, chat):
    chat()
    job = start(acme, alice)
    services.summary_job_build(job_id=job.pk)
    services.summary_job_cancel(job=SummaryJob.objects.get(pk=job.pk), actor=alice)
    batch = SummaryBatch.objects.get(job=job)
    assert services.summary_batch_submit(batch_id=batch.pk).outcome == "canceled"
    job.refresh_from_db()
    assert job.status == "ended" and fake_batch_ids() == []
    assert SummaryRequest.objects.get(job=job).status == "canceled"
    assert budget_for_team(team=acme).reserved_usd == 0


def test_a_budget_too_small_for_the_worst_case_refuses_and_stores_nothing(acme, alice, chat):
    chat()
    budget_limit_set(team=acme, limit_usd=Decimal("0.000001"))
    with pytest.raises(services.SummaryInputError, match="monthly budget"):
        start(acme, alice)
    assert SummaryJob.objects.count() == 0 and SummaryRequest.objects.count() == 0


def test_nothing_to_summarise_is_a_clear_error(acme, alice):
    with pytest.raises(services.SummaryInputError, match="No conversations match"):
        start(acme, alice)


def test_only_the_teams_conversations_are_summarised(acme, alice, carol, chat):
    mine = chat()
    theirs = chat("Globex stuff", owner=carol)
    job = start(acme, alice, conversation_ids=[mine.id, theirs.id])
    assert list(job.requests.values_list("conversation_id", flat=True)) == [mine.id]


def test_a_date_range_and_a_person_narrow_the_selection(acme, alice, bob, chat):
    old = chat("old one")
    recent = chat("recent one")
    bobs = chat("bob's", owner=bob)
    from conversations.models import Conversation

    Conversation.objects.filter(pk=old.pk).update(updated_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC))
    today = dt.date.today()
    job = start(acme, alice, since=today - dt.timedelta(days=1), until=today, person=alice)
    assert list(job.requests.values_list("conversation_id", flat=True)) == [recent.id]
    assert bobs.id not in job.requests.values_list("conversation_id", flat=True)


# --- Exactly once, step by step ---------------------------------------------------------


class WorkerKilled(Exception):
    """What a SIGKILL looks like from inside: nothing after it runs."""


def test_build_run_twice_builds_once(acme, alice, chat):
    chat()
    job = start(acme, alice)
    assert services.summary_job_build(job_id=job.pk) == 1
    assert services.summary_job_build(job_id=job.pk) == 0
    assert SummaryBatch.objects.filter(job=job).count() == 1


def test_a_crash_after_build_is_resumed_by_beat_and_submits_once(
    acme, alice, chat, settings, django_capture_on_commit_callbacks, monkeypatch
):
    chat()
    job = start(acme, alice)
    services.summary_job_build(job_id=job.pk)  # the submit it queued was lost
    queued = []
    from summaries import tasks

    monkeypatch.setattr(
        tasks.summary_batch_submit_task, "apply_async", lambda args, **kw: queued.append(args[0])
    )
    settings.SUMMARIES_RESUME_AFTER_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        assert services.summaries_resume() == 1
    batch = SummaryBatch.objects.get(job=job)
    assert queued == [batch.pk]
    services.summary_batch_submit(batch_id=batch.pk)
    services.summary_batch_submit(batch_id=batch.pk)  # delivered twice
    poll_and_ingest(job.pk)
    assert len(fake_batch_ids()) == 1
    assert Summary.objects.count() == 1 and ApiCall.objects.count() == 1


def test_a_crash_after_submit_before_the_id_is_stored_adopts_the_batch(
    acme, alice, chat, monkeypatch
):
    for i in range(3):
        chat(f"Question {i}")
    job = start(acme, alice)
    services.summary_job_build(job_id=job.pk)
    batch = SummaryBatch.objects.get(job=job)
    real_create = gateway.batch_create

    def create_then_die(*args, **kwargs):
        real_create(*args, **kwargs)
        raise WorkerKilled

    monkeypatch.setattr(gateway, "batch_create", create_then_die)
    with pytest.raises(WorkerKilled):
        services.summary_batch_submit(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == "submitting" and batch.anthropic_batch_id is None
    monkeypatch.setattr(gateway, "batch_create", real_create)
    # The message is delivered again: the submit finds the batch it made.
    outcome = services.summary_batch_submit(batch_id=batch.pk)
    assert outcome.outcome == "adopted"
    assert fake_batch_ids() == [outcome.anthropic_batch_id]
    poll_and_ingest(job.pk)
    assert len(fake_batch_ids()) == 1
    assert Summary.objects.count() == 3 and ApiCall.objects.count() == 3
    assert SummaryJob.objects.get(pk=job.pk).status == "ended"


def test_a_submit_still_in_its_call_is_not_repeated(acme, alice, chat, settings):
    chat()
    job = start(acme, alice)
    services.summary_job_build(job_id=job.pk)
    batch = SummaryBatch.objects.get(job=job)
    settings.SUMMARIES_SUBMIT_LEASE_SECONDS = 120
    from django.utils import timezone

    SummaryBatch.objects.filter(pk=batch.pk).update(
        status="submitting", submit_started_at=timezone.now()
    )
    assert services.summary_batch_submit(batch_id=batch.pk).outcome == "busy"
    assert fake_batch_ids() == []


def test_a_crash_mid_ingest_then_redelivery_stores_and_bills_each_result_once(
    acme, alice, monkeypatch
):
    demo_conversations_seed(count=12)
    job = start(acme, alice)
    services.summary_job_build(job_id=job.pk)
    batch = SummaryBatch.objects.get(job=job)
    services.summary_batch_submit(batch_id=batch.pk)
    services.summary_batch_poll(batch_id=batch.pk)
    monkeypatch.setattr(services, "INGEST_CHUNK", 5)
    real_store = services._results_store
    stored_chunks = []

    def store_then_die(*args, **kwargs):
        if len(stored_chunks) == 2:
            raise WorkerKilled
        stored_chunks.append(real_store(*args, **kwargs))
        return stored_chunks[-1]

    monkeypatch.setattr(services, "_results_store", store_then_die)
    with pytest.raises(WorkerKilled):
        services.summary_batch_ingest(batch_id=batch.pk)
    assert Summary.objects.count() == 10 and ApiCall.objects.count() == 10
    monkeypatch.setattr(services, "_results_store", real_store)
    assert services.summary_batch_ingest(batch_id=batch.pk) == 2
    assert services.summary_batch_ingest(batch_id=batch.pk) == 0  # delivered once more
    assert Summary.objects.count() == 12 and ApiCall.objects.count() == 12
    assert SummaryRequest.objects.filter(job=job, status="succeeded").count() == 12
    assert len(set(SummaryRequest.objects.values_list("api_call_id", flat=True))) == 12
    job.refresh_from_db()
    total = ApiCall.objects.aggregate(t=Sum("cost_usd"))["t"]
    assert job.status == "ended" and job.cost_usd == total
    assert budget_for_team(team=acme).spent_usd == total


def test_a_results_chunk_read_twice_is_stored_once(acme, alice, chat):
    chat()
    job = start(acme, alice)
    services.summary_job_build(job_id=job.pk)
    batch = SummaryBatch.objects.get(job=job)
    services.summary_batch_submit(batch_id=batch.pk)
    services.summary_batch_poll(batch_id=batch.pk)
    batch.refresh_from_db()
    seen = []
    gateway.batch_results_read(batch.anthropic_batch_id, on_chunk=seen.extend)
    assert services._results_store(batch, job, seen) == 1
    assert services._results_store(batch, job, seen) == 0
    assert Summary.objects.count() == 1 and ApiCall.objects.count() == 1


# --- The weekly digest ----------------------------------------------------------------


def test_the_digest_starts_one_job_a_week_over_the_week_before(acme, alice, bob, chat):
    chat()
    with pytest.raises(services.SummaryInputError, match="owner"):
        services.digest_set(team=acme, actor=bob, enabled=True)
    services.digest_set(team=acme, actor=alice, enabled=True)
    today = dt.date.today()
    monday = services.week_start(today) + dt.timedelta(days=7)  # next Monday: covers this week
    assert services.digests_run(today=monday) == 1
    assert services.digests_run(today=monday + dt.timedelta(days=1)) == 0
    job = SummaryJob.objects.get(source="digest")
    assert (job.digest_week, job.since, job.until) == (
        monday,
        monday - dt.timedelta(days=7),
        monday - dt.timedelta(days=1),
    )
    assert job.created_by == alice and job.conversations_count == 1
    assert AuditEvent.objects.filter(action="settings_changed", team=acme).exists()


def test_a_summary_reads_the_branch_on_show_only(acme, alice, chat):
    from conversations.models import Message

    conversation = chat("Which plan do we take?")
    question = conversation.messages.get(position=0)
    shown = conversation.messages.get(position=1)
    Message.objects.filter(pk=shown.pk).update(parent=question)
    Message.objects.create(
        conversation=conversation,
        position=1,
        role="assistant",
        parent=question,
        text="An older answer nobody kept.",
    )
    conversation.active_leaf = shown
    conversation.save(update_fields=["active_leaf"])
    job = start(acme, alice)
    services.summary_job_build(job_id=job.pk)
    content = SummaryRequest.objects.get(job=job).params["messages"][0]["content"]
    assert "Dana owns the first" in content and "nobody kept" not in content
