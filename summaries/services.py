"""Batch summary jobs: start (estimate, hold), build, submit, poll, ingest, cancel.

Each step is a plain function that Celery tasks (`summaries.tasks`), the
`summarize` command and tests call, and each is safe to run twice or after a
crash anywhere in it:

- build: one transaction turns a `building` job into its batches' requests;
- submit: a batch is marked `submitting` (committed) before the API call, and
  its API id is stored in the transaction that marks it `submitted`. A submit
  that finds a batch still `submitting` (its worker died in the call) looks
  for the batch it made at the API before making another;
- poll: reads the API's status into the batch row, bills nothing, and says when
  to look again (the state is in the row, so beat can resume it);
- ingest: streams the results and stores each chunk in one transaction that
  moves its requests out of `processing`, so a result read twice is stored,
  and billed, once (`SummaryRequest.api_call` and `Summary.request` are
  one-to-one).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce, Length
from django.utils import timezone
from django.utils.translation import gettext

from accounts.audit import audit_record
from accounts.models import AuditEvent, Membership, Team, User
from claude import batches as gateway
from claude.catalog import model_info
from claude.errors import ClaudeError
from conversations.models import Conversation, Message
from conversations.rendering import markdown_to_html
from conversations.tree import Tree
from infra.channel_layers import group_send_after_commit
from infra.rows import rows_update
from summaries import requests as summary_requests
from summaries.models import Summary, SummaryBatch, SummaryDigest, SummaryJob, SummaryRequest
from usage.budgets import BudgetExceeded, budget_hold_finish, budget_hold_in_transaction
from usage.ledger import api_call_priced, ledger_record_batch_in_transaction
from usage.models import ApiCall, BudgetReservation
from usage.money import usd_display

logger = logging.getLogger(__name__)

MANAGER_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)
# How many conversations a build reads (and requests it writes) at a time.
BUILD_CHUNK = 500
# How many results an ingest stores in one transaction.
INGEST_CHUNK = 500

REASON_EXPIRED = "The batch expired (24 hours) before this request was processed."
REASON_CANCELED = "The job was cancelled before this request was processed."
REASON_CANCELED_UNSUBMITTED = "The job was cancelled before this request was submitted."
REASON_MISSING = "The batch ended without a result for this request."
REASON_DELETED = "The conversation was deleted before the job was submitted."


class SummaryInputError(Exception):
    """A job that cannot start as asked; `message` is for the person."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def job_group(job_id: int) -> str:
    """The channel-layer group of a job's page sockets."""
    return f"summary-job-{job_id}"


def _job_changed(job_id: int) -> None:
    """Tell the job's sockets, after commit, to read its progress again."""
    group_send_after_commit(job_group(job_id), {"type": "job.changed"})


# --- Choosing conversations and estimating -----------------------------------------


def conversations_select(
    *,
    team: Team,
    person: User | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    conversation_ids: Iterable[uuid.UUID | str] | None = None,
):
    """The team's conversations a job would summarise: those given (of this team
    only), or all of the team's, or a person's, updated in [since, until] (UTC
    days); only conversations with something written in them."""
    found = Conversation.objects.filter(team=team)
    if conversation_ids is not None:
        found = found.filter(id__in=list(conversation_ids))
    if person is not None:
        found = found.filter(owner=person)
    if since is not None:
        found = found.filter(updated_at__gte=dt.datetime.combine(since, dt.time(), dt.UTC))
    if until is not None:
        end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.UTC)
        found = found.filter(updated_at__lt=end)
    return found.filter(messages__text__gt="").distinct()


def _sizes(conversations) -> list[summary_requests.ConversationSize]:
    rows = (
        Conversation.objects.filter(id__in=conversations.values("id"))
        .annotate(chars=Coalesce(Sum(Length("messages__text")), 0), turns=Count("messages"))
        .order_by("created_at", "id")
        .values_list("id", "title", "chars", "turns")
    )
    return [
        summary_requests.ConversationSize(cid, title or "", chars, turns)
        for cid, title, chars, turns in rows.iterator(chunk_size=2000)
    ]


def _estimate(model: str, instruction: str, sizes) -> summary_requests.Estimate:
    return summary_requests.estimate(
        model=model,
        instruction=instruction,
        sizes=sizes,
        max_tokens=settings.SUMMARIES_MAX_TOKENS,
        expected_output_tokens=settings.SUMMARIES_EXPECTED_OUTPUT_TOKENS,
        max_input_chars=settings.SUMMARIES_MAX_INPUT_CHARS,
        at=timezone.now().date(),
    )


def _check_model(model: str) -> str:
    info = model_info(model)
    if info is None:
        raise SummaryInputError(gettext("Unknown model: %(model)s.") % {"model": model})
    return info.id


def summary_preview(
    *,
    team: Team,
    model: str = "",
    instruction: str = "",
    person: User | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    conversation_ids: Iterable[uuid.UUID | str] | None = None,
) -> summary_requests.Estimate:
    """How many conversations a job would summarise, its tokens and cost at the batch
    price, and the same calls' standard price (the saving). Starts nothing."""
    model = _check_model(model or settings.SUMMARIES_DEFAULT_MODEL)
    instruction = instruction.strip() or settings.SUMMARIES_DEFAULT_INSTRUCTION
    conversations = conversations_select(
        team=team, person=person, since=since, until=until, conversation_ids=conversation_ids
    )
    return _estimate(model, instruction, _sizes(conversations))


def can_manage_team(*, user: User | None, team: Team) -> bool:
    """Owners and admins of a team may start (and cancel) its summary jobs."""
    if user is None or not user.is_authenticated:
        return False
    return Membership.objects.filter(user=user, team=team, role__in=MANAGER_ROLES).exists()


# --- Starting a job ------------------------------------------------------------------


@transaction.atomic
def summary_job_create(
    *,
    team: Team,
    actor: User | None,
    source: str = SummaryJob.Source.WEB,
    model: str = "",
    instruction: str = "",
    person: User | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    conversation_ids: Iterable[uuid.UUID | str] | None = None,
    ip: str | None = None,
    digest: SummaryDigest | None = None,
    digest_week: dt.date | None = None,
) -> SummaryJob:
    """Start a job: fix its conversations, estimate it, hold its worst case against
    the team's budget (and the actor's), record SUMMARY_STARTED, and build it in a
    worker once this commits.

    The caller has checked that `actor` may (an owner or admin of `team`, staff,
    or None for the command line and the weekly digest). Raises SummaryInputError
    when nothing matches, the model is unknown, the provider has no batches, or
    the budget cannot hold the job.
    """
    if not gateway.batches_available():
        raise SummaryInputError(gateway.batches_unavailable_message())
    if since and until and since > until:
        raise SummaryInputError(gettext("The start date is after the end date."))
    model = _check_model(model or settings.SUMMARIES_DEFAULT_MODEL)
    instruction = instruction.strip() or settings.SUMMARIES_DEFAULT_INSTRUCTION
    conversations = conversations_select(
        team=team, person=person, since=since, until=until, conversation_ids=conversation_ids
    )
    sizes = _sizes(conversations)
    if not sizes:
        raise SummaryInputError(gettext("No conversations match: there is nothing to summarise."))
    estimate = _estimate(model, instruction, sizes)
    job = SummaryJob.objects.create(
        team=team,
        created_by=actor,
        source=source,
        model=model,
        instruction=instruction,
        person=person,
        since=since,
        until=until,
        conversations_count=estimate.conversations,
        estimated_input_tokens=estimate.input_tokens,
        estimated_output_tokens=estimate.output_tokens,
        estimated_cost_usd=estimate.cost_usd,
        estimated_standard_cost_usd=estimate.standard_cost_usd,
        hold_usd=estimate.hold_usd,
        digest=digest,
        digest_week=digest_week,
    )
    SummaryRequest.objects.bulk_create(
        [
            SummaryRequest(
                job=job,
                conversation_id=size.conversation_id,
                conversation_uuid=size.conversation_id,
                conversation_title=(size.title or "")[:200],
                custom_id=f"j{job.pk}-c{uuid.UUID(str(size.conversation_id)).hex}",
                estimated_input_tokens=tokens,
            )
            for size, tokens in zip(sizes, estimate.per_conversation_input, strict=True)
        ],
        batch_size=2000,
    )
    audit_record(
        action=AuditEvent.Action.SUMMARY_STARTED,
        actor=actor,
        actor_name="" if actor else f"{source} job",
        team=team,
        target=f"summary_job:{job.pk}",
        ip=ip,
        details={
            "source": source,
            "model": model,
            "conversations": estimate.conversations,
            "estimated_cost_usd": f"{estimate.cost_usd:.6f}",
            "hold_usd": f"{estimate.hold_usd:.6f}",
        },
    )
    # Last before the commit (it locks the team's budget counter): a refusal
    # stores nothing at all.
    try:
        hold = budget_hold_in_transaction(
            user_id=actor.pk if actor else None,
            team_id=team.pk,
            amount=estimate.hold_usd,
            kind=BudgetReservation.Kind.BATCH,
        )
    except BudgetExceeded as exc:
        raise SummaryInputError(
            gettext("%(refusal)s This job could cost up to %(hold)s.")
            % {"refusal": exc.message, "hold": usd_display(estimate.hold_usd)}
        ) from exc
    SummaryJob.objects.filter(pk=job.pk).update(reservation_id=hold.reservation.id)
    job.reservation_id = hold.reservation.id
    _enqueue_after_commit("build", job.pk)
    return job


def _enqueue_after_commit(step: str, object_id: int, *, countdown: float = 0) -> None:
    """Queue a step's task once the transaction commits (never if it rolls back)."""
    from summaries import tasks

    task = {
        "build": tasks.summary_job_build_task,
        "submit": tasks.summary_batch_submit_task,
        "poll": tasks.summary_batch_poll_task,
        "ingest": tasks.summary_batch_ingest_task,
        "cancel": tasks.summary_job_cancel_task,
    }[step]
    transaction.on_commit(
        lambda: task.apply_async((object_id,), countdown=countdown or None), robust=True
    )


# --- Build ---------------------------------------------------------------------------


def _turns_by_conversation(conversation_ids: Sequence) -> dict:
    """Each conversation's branch on show (`conversations.tree`), as (role, text):
    what its owner sees, and what a chat call would send."""
    leaves = dict(
        Conversation.objects.filter(id__in=conversation_ids).values_list("id", "active_leaf_id")
    )
    by_conversation: dict = {cid: [] for cid in conversation_ids}
    rows = (
        Message.objects.filter(conversation_id__in=conversation_ids)
        .order_by("conversation_id", "position")
        .only(
            "id",
            "conversation_id",
            "position",
            "parent_id",
            "selected_at",
            "created_at",
            "role",
            "text",
        )
    )
    for message in rows.iterator(chunk_size=2000):
        by_conversation[message.conversation_id].append(message)
    turns: dict = {}
    for cid, messages in by_conversation.items():
        if cid not in leaves:
            continue  # deleted since the job started
        path = Tree.of(messages).active_path(leaves[cid])
        turns[cid] = [(m.role, m.text) for m in path if m.text]
    return turns


class _BatchFiller:
    """Assigns requests to batches in order, opening a new one at either API limit."""

    def __init__(self, job: SummaryJob) -> None:
        self.job = job
        self.max_requests = min(settings.SUMMARIES_BATCH_MAX_REQUESTS, gateway.MAX_BATCH_REQUESTS)
        self.max_bytes = min(settings.SUMMARIES_BATCH_MAX_BYTES, gateway.MAX_BATCH_BYTES)
        self.batches: list[SummaryBatch] = []
        self.current: SummaryBatch | None = None

    def place(self, size: int) -> SummaryBatch:
        batch = self.current
        if (
            batch is None
            or batch.request_count >= self.max_requests
            or batch.byte_size + size > self.max_bytes
        ):
            if batch is not None:
                batch.save(update_fields=["request_count", "byte_size"])
            batch = SummaryBatch.objects.create(job=self.job, index=len(self.batches))
            self.batches.append(batch)
            self.current = batch
        batch.request_count += 1
        batch.byte_size += size
        return batch

    def close(self) -> None:
        if self.current is not None:
            self.current.save(update_fields=["request_count", "byte_size"])


def summary_job_build(*, job_id: int) -> int:
    """Write each request's parameters and split them into batches within the API's
    limits (requests and bytes); then submit each batch in a worker. One
    transaction: a crash leaves the job `building`, to be built again whole.
    Returns how many batches; 0 when there was nothing to do (built already)."""
    with transaction.atomic():
        job = SummaryJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != SummaryJob.Status.BUILDING:
            return 0
        if job.cancel_requested_at is not None:
            SummaryRequest.objects.filter(job=job, status__in=SummaryRequest.OPEN_STATUSES).update(
                status=SummaryRequest.Status.CANCELED,
                reason=REASON_CANCELED_UNSUBMITTED,
                ended_at=timezone.now(),
            )
            _job_finish(job)
            return 0
        filler = _BatchFiller(job)
        pending = SummaryRequest.objects.filter(job=job).order_by("id")
        last_id = 0
        while True:
            chunk = list(pending.filter(id__gt=last_id)[:BUILD_CHUNK])
            if not chunk:
                break
            last_id = chunk[-1].id
            turns = _turns_by_conversation([r.conversation_id for r in chunk if r.conversation_id])
            for request in chunk:
                conversation_turns = turns.get(request.conversation_id)
                if not conversation_turns:
                    request.status = SummaryRequest.Status.ERRORED
                    request.error_type = "conversation_deleted"
                    request.reason = REASON_DELETED
                    request.ended_at = timezone.now()
                    continue
                request.params = summary_requests.request_params(
                    model=job.model,
                    instruction=job.instruction,
                    title=request.conversation_title,
                    turns=conversation_turns,
                    max_tokens=settings.SUMMARIES_MAX_TOKENS,
                    max_input_chars=settings.SUMMARIES_MAX_INPUT_CHARS,
                )
                request.batch = filler.place(
                    summary_requests.request_bytes(request.custom_id, request.params)
                )
            SummaryRequest.objects.bulk_update(
                chunk, ["params", "batch", "status", "error_type", "reason", "ended_at"]
            )
        filler.close()
        job.status = SummaryJob.Status.SUBMITTING
        job.save(update_fields=["status", "updated_at"])
        for batch in filler.batches:
            _enqueue_after_commit("submit", batch.pk)
        if not filler.batches:
            _job_finish(job)
        _job_changed(job.pk)
        return len(filler.batches)


# --- Submit --------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitOutcome:
    """What a submit did: submitted, adopted (found the batch a dead submit made),
    busy (another submit is in its API call: try later), skipped (nothing to do),
    canceled (the job was cancelled first) or failed (the API refused it)."""

    outcome: str
    anthropic_batch_id: str = ""


def _orphan_find(batch: SummaryBatch) -> gateway.BatchStatus | None:
    """The batch a submit that died in its API call may have made: created at the API
    since just before that submit started, of the same size, and recorded by no
    batch of ours. The oldest such (the API has no field of ours to match on; its
    results, keyed by our custom ids, are checked at ingest)."""
    since = batch.submit_started_at - dt.timedelta(seconds=settings.SUMMARIES_ORPHAN_SKEW_SECONDS)
    candidates = [
        found
        for found in gateway.batch_list_created_since(since)
        if found.total == batch.request_count
    ]
    known = set(
        SummaryBatch.objects.filter(anthropic_batch_id__in=[c.id for c in candidates]).values_list(
            "anthropic_batch_id", flat=True
        )
    )
    free = [c for c in candidates if c.id not in known]
    return min(free, key=lambda c: c.created_at) if free else None


def _batch_submitted(batch: SummaryBatch, status: gateway.BatchStatus) -> None:
    """Record the API id and mark the batch submitted: one transaction (the caller's)."""
    now = timezone.now()
    batch.anthropic_batch_id = status.id
    batch.status = SummaryBatch.Status.SUBMITTED
    batch.submitted_at = now
    batch.api_counts = status.counts()
    batch.poll_count = 0
    batch.next_poll_at = now + dt.timedelta(seconds=_poll_delay(0))
    batch.last_error = ""
    batch.save()
    SummaryRequest.objects.filter(batch=batch, status=SummaryRequest.Status.PENDING).update(
        status=SummaryRequest.Status.PROCESSING
    )
    job = SummaryJob.objects.select_for_update().get(pk=batch.job_id)
    unsubmitted = job.batches.filter(
        status__in=[SummaryBatch.Status.PENDING, SummaryBatch.Status.SUBMITTING]
    ).exists()
    if job.status == SummaryJob.Status.SUBMITTING and not unsubmitted:
        job.status = SummaryJob.Status.PROCESSING
        job.save(update_fields=["status", "updated_at"])
    _enqueue_after_commit("poll", batch.pk, countdown=_poll_delay(0))
    if job.cancel_requested_at is not None:
        _enqueue_after_commit("cancel", job.pk)
    _job_changed(job.pk)


def _batch_requests(batch: SummaryBatch) -> list[dict]:
    rows = (
        SummaryRequest.objects.filter(batch=batch, status=SummaryRequest.Status.PENDING)
        .order_by("id")
        .values_list("custom_id", "params")
    )
    return [
        {"custom_id": custom_id, "params": params}
        for custom_id, params in rows.iterator(chunk_size=2000)
    ]


def summary_batch_submit(*, batch_id: int, headers: dict[str, str] | None = None) -> SubmitOutcome:
    """Submit one batch to the API, at most once whatever crashes or repeats.

    `headers` go with the create request (tests steer the fake with them)."""
    with transaction.atomic():
        batch = SummaryBatch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None or batch.status not in (
            SummaryBatch.Status.PENDING,
            SummaryBatch.Status.SUBMITTING,
        ):
            return SubmitOutcome("skipped")
        job = SummaryJob.objects.get(pk=batch.job_id)
        if job.cancel_requested_at is not None and batch.status == SummaryBatch.Status.PENDING:
            _batch_cancel_unsubmitted(batch)
            return SubmitOutcome("canceled")
        now = timezone.now()
        if batch.status == SummaryBatch.Status.SUBMITTING:
            lease = dt.timedelta(seconds=settings.SUMMARIES_SUBMIT_LEASE_SECONDS)
            if batch.submit_started_at and batch.submit_started_at > now - lease:
                return SubmitOutcome("busy")
            # The last submit died in its API call: it may have made the batch.
            found = _orphan_find(batch)
            if found is not None:
                _batch_submitted(batch, found)
                return SubmitOutcome("adopted", found.id)
            if job.cancel_requested_at is not None:
                _batch_cancel_unsubmitted(batch)
                return SubmitOutcome("canceled")
        batch.status = SummaryBatch.Status.SUBMITTING
        batch.submit_started_at = now
        batch.save(update_fields=["status", "submit_started_at"])
    # Committed: from here a crash leaves the batch `submitting`, and the next
    # submit looks for what this one made before making another.
    try:
        status = gateway.batch_create(_batch_requests(batch), headers=headers)
    except ClaudeError as exc:
        return _submit_failed(batch, exc)
    with transaction.atomic():
        batch = SummaryBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != SummaryBatch.Status.SUBMITTING:
            # Another submit adopted or made this batch meanwhile: ours is extra.
            logger.warning("Batch %s was submitted twice; cancelling %s", batch_id, status.id)
            _cancel_quietly(status.id)
            return SubmitOutcome("skipped")
        _batch_submitted(batch, status)
    return SubmitOutcome("submitted", status.id)


def _cancel_quietly(anthropic_batch_id: str) -> None:
    try:
        gateway.batch_cancel(anthropic_batch_id)
    except ClaudeError:
        logger.exception("Could not cancel batch %s", anthropic_batch_id)


def _submit_failed(batch: SummaryBatch, exc: ClaudeError) -> SubmitOutcome:
    """A refused submit: a busy API is tried again (the task retries; the batch is
    left `submitting`, so the retry first checks the API did not make it); any
    other refusal errors the batch's requests with the API's reason."""
    if exc.retryable:
        SummaryBatch.objects.filter(pk=batch.pk).update(last_error=str(exc))
        raise exc
    with transaction.atomic():
        batch = SummaryBatch.objects.select_for_update().get(pk=batch.pk)
        if batch.status != SummaryBatch.Status.SUBMITTING:
            return SubmitOutcome("skipped")
        SummaryRequest.objects.filter(batch=batch, status=SummaryRequest.Status.PENDING).update(
            status=SummaryRequest.Status.ERRORED,
            error_type=exc.api_error_type,
            reason=f"The API refused the batch: {exc.detail or exc.human_message}",
            ended_at=timezone.now(),
        )
        batch.status = SummaryBatch.Status.INGESTED
        batch.last_error = str(exc)
        batch.ingested_at = timezone.now()
        batch.save(update_fields=["status", "last_error", "ingested_at"])
        _job_finish_if_done(batch.job_id)
    return SubmitOutcome("failed")


def _batch_cancel_unsubmitted(batch: SummaryBatch) -> None:
    """A batch the job was cancelled before submitting: its requests end canceled."""
    SummaryRequest.objects.filter(batch=batch, status__in=SummaryRequest.OPEN_STATUSES).update(
        status=SummaryRequest.Status.CANCELED,
        reason=REASON_CANCELED_UNSUBMITTED,
        ended_at=timezone.now(),
    )
    batch.status = SummaryBatch.Status.CANCELED
    batch.save(update_fields=["status"])
    _job_finish_if_done(batch.job_id)


# --- Poll ----------------------------------------------------------------------------


_POLL_SLACK = dt.timedelta(seconds=1)


def _poll_delay(polls: int) -> float:
    """Seconds until the next look: doubling from the first delay, capped below the
    broker's visibility timeout (a countdown past it would be delivered twice)."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    cap = min(settings.SUMMARIES_POLL_MAX_SECONDS, max(1, visibility - 60))
    return min(settings.SUMMARIES_POLL_FIRST_SECONDS * (2 ** min(polls, 20)), cap)


def summary_batch_poll(*, batch_id: int) -> float | None:
    """Read a submitted batch's status from the API into its row (billing nothing);
    once it has ended, ingest it in a worker. Returns the seconds until the next
    poll, or None when there is none to make."""
    batch = SummaryBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        return None
    if batch.status == SummaryBatch.Status.ENDED:
        _enqueue_after_commit("ingest", batch.pk)
        return None
    if batch.status != SummaryBatch.Status.SUBMITTED:
        return None
    if batch.next_poll_at is not None and batch.next_poll_at > timezone.now() + _POLL_SLACK:
        # A second chain of polls (a requeue beside a late one): the row says when the
        # next look is due, and the chain that set it makes it; this one ends here.
        return None
    try:
        status = gateway.batch_retrieve(batch.anthropic_batch_id)
    except ClaudeError as exc:
        if exc.code != "not_found":
            delay = _poll_delay(batch.poll_count + 1)
            SummaryBatch.objects.filter(pk=batch.pk).update(
                last_error=str(exc),
                poll_count=F("poll_count") + 1,
                next_poll_at=timezone.now() + dt.timedelta(seconds=delay),
            )
            return delay
        return _batch_lost(batch)
    with transaction.atomic():
        batch = SummaryBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != SummaryBatch.Status.SUBMITTED:
            return None
        batch.api_counts = status.counts()
        batch.poll_count += 1
        batch.last_error = ""
        if status.ended:
            batch.status = SummaryBatch.Status.ENDED
            batch.ended_at = timezone.now()
            batch.next_poll_at = None
            batch.save()
            _enqueue_after_commit("ingest", batch.pk)
            _job_changed(batch.job_id)
            return None
        delay = _poll_delay(batch.poll_count)
        batch.next_poll_at = timezone.now() + dt.timedelta(seconds=delay)
        batch.save()
        _job_changed(batch.job_id)
    return delay


def _batch_lost(batch: SummaryBatch) -> None:
    """The API no longer knows the batch (deleted at the console): nothing was billed
    that we can read, so its requests end errored."""
    with transaction.atomic():
        batch = SummaryBatch.objects.select_for_update().get(pk=batch.pk)
        if batch.status != SummaryBatch.Status.SUBMITTED:
            return None
        SummaryRequest.objects.filter(batch=batch, status=SummaryRequest.Status.PROCESSING).update(
            status=SummaryRequest.Status.ERRORED,
            error_type="not_found",
            reason="The API no longer knows this batch (was it deleted?).",
            ended_at=timezone.now(),
        )
        batch.status = SummaryBatch.Status.INGESTED
        batch.ingested_at = timezone.now()
        batch.save(update_fields=["status", "ingested_at"])
        _job_finish_if_done(batch.job_id)
    return None


# --- Ingest --------------------------------------------------------------------------


_REQUEST_RESULT_FIELDS = [
    "status",
    "reason",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "api_call",
    "ended_at",
]
# The same, as `rows_update` names them (a foreign key by its column).
_REQUEST_RESULT_COLUMNS = [
    name if name != "api_call" else "api_call_id" for name in _REQUEST_RESULT_FIELDS
]


def _results_store(batch: SummaryBatch, job: SummaryJob, results: list[gateway.BatchResult]) -> int:
    """Store one chunk of results in one transaction: each request still processing
    gets its outcome, and a succeeded one its summary and its one ledger row at
    the batch price. A result whose request has its outcome already (a chunk read
    again after a crash or a repeated task) is skipped. Returns how many were new."""
    by_id = {result.custom_id: result for result in results}
    now = timezone.now()
    priced_on = (batch.submitted_at or now).date()
    with transaction.atomic():
        rows = list(
            SummaryRequest.objects.select_for_update()
            .filter(batch=batch, custom_id__in=list(by_id), status=SummaryRequest.Status.PROCESSING)
            .order_by("id")
            .only(
                "id", "custom_id", "conversation_id", "conversation_uuid", *_REQUEST_RESULT_FIELDS
            )
        )
        if not rows:
            return 0
        billed: list[tuple[SummaryRequest, gateway.BatchResult]] = []
        calls: list[ApiCall] = []
        for row in rows:
            result = by_id[row.custom_id]
            row.ended_at = now
            if result.kind == "succeeded":
                usage = result.usage
                model = result.model or job.model
                call = api_call_priced(
                    model=model,
                    usage=usage,
                    on=priced_on,
                    batch=True,
                    user_id=job.created_by_id,
                    team_id=job.team_id,
                    conversation_id=row.conversation_id,
                    conversation_uuid=row.conversation_uuid,
                    purpose=ApiCall.Purpose.SUMMARY,
                    request_id=result.message_id[:80],
                    stop_reason=result.stop_reason[:40],
                )
                row.status = SummaryRequest.Status.SUCCEEDED
                row.input_tokens = usage.prompt_tokens
                row.output_tokens = usage.output_tokens
                row.cost_usd = call.cost_usd
                calls.append(call)
                billed.append((row, result))
            elif result.kind == "errored":
                row.status = SummaryRequest.Status.ERRORED
                row.error_type = result.error_type[:60]
                row.reason = result.error_message or result.error_type
            elif result.kind == "expired":
                row.status = SummaryRequest.Status.EXPIRED
                row.reason = REASON_EXPIRED
            else:
                row.status = SummaryRequest.Status.CANCELED
                row.reason = REASON_CANCELED
        total = sum((call.cost_usd for call in calls), Decimal(0))
        if total:
            # Before the ledger: the job row is locked before the budget's rows,
            # in the order `_job_finish` takes them.
            SummaryJob.objects.filter(pk=job.pk).update(cost_usd=F("cost_usd") + total)
        saved = ledger_record_batch_in_transaction(
            calls=calls,
            reservation_id=job.reservation_id,
            user_id=job.created_by_id,
            team_id=job.team_id,
        )
        summaries = []
        for (row, result), call in zip(billed, saved, strict=True):
            row.api_call = call
            if row.conversation_id is not None:
                summaries.append(
                    Summary(
                        request=row,
                        job=job,
                        conversation_id=row.conversation_id,
                        model=call.model,
                        text=result.text,
                        html=markdown_to_html(result.text),
                        cost_usd=call.cost_usd,
                    )
                )
        Summary.objects.bulk_create(summaries)
        # One plain UPDATE a row (`infra.rows`): Django's bulk_update builds a CASE
        # per field and row, and spent 15 ms a row doing it (measured at 500 rows).
        for row in rows:
            rows_update(
                SummaryRequest,
                {name: getattr(row, name) for name in _REQUEST_RESULT_COLUMNS},
                where={"id": row.id},
            )
        _job_changed(job.pk)
        return len(rows)


def summary_batch_ingest(*, batch_id: int) -> int:
    """Stream an ended batch's results into summaries, outcomes and ledger rows, a
    chunk per transaction; then close the batch (and the job, with its last
    batch). Safe to run again after a crash part way: stored results are skipped.
    Returns how many results were new."""
    batch = SummaryBatch.objects.filter(pk=batch_id).select_related("job").first()
    if batch is None or batch.status != SummaryBatch.Status.ENDED:
        return 0
    job = batch.job
    stored = 0

    def on_chunk(results: list[gateway.BatchResult]) -> None:
        nonlocal stored
        stored += _results_store(batch, job, results)

    gateway.batch_results_read(batch.anthropic_batch_id, on_chunk=on_chunk, chunk_size=INGEST_CHUNK)
    with transaction.atomic():
        batch = SummaryBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != SummaryBatch.Status.ENDED:
            return stored
        SummaryRequest.objects.filter(batch=batch, status=SummaryRequest.Status.PROCESSING).update(
            status=SummaryRequest.Status.ERRORED,
            error_type="missing_result",
            reason=REASON_MISSING,
            ended_at=timezone.now(),
        )
        batch.status = SummaryBatch.Status.INGESTED
        batch.ingested_at = timezone.now()
        batch.save(update_fields=["status", "ingested_at"])
        _job_finish_if_done(batch.job_id)
    return stored


def _job_finish_if_done(job_id: int) -> None:
    """End the job once every batch is ingested or was never submitted."""
    job = SummaryJob.objects.select_for_update().get(pk=job_id)
    open_batches = job.batches.exclude(
        status__in=[SummaryBatch.Status.INGESTED, SummaryBatch.Status.CANCELED]
    ).exists()
    if not open_batches:
        _job_finish(job)


def _job_finish(job: SummaryJob) -> None:
    """Mark a job ended, its cost the sum of its requests', and give back what is
    left of its budget hold. Precondition: the job row is locked."""
    if job.status in (SummaryJob.Status.ENDED, SummaryJob.Status.FAILED):
        return
    job.cost_usd = job.requests.aggregate(total=Coalesce(Sum("cost_usd"), Decimal(0)))["total"]
    job.status = SummaryJob.Status.ENDED
    job.ended_at = timezone.now()
    job.save(update_fields=["cost_usd", "status", "ended_at", "updated_at"])
    if job.reservation_id:
        # In the same transaction: the job ends exactly when its hold is given back.
        budget_hold_finish(reservation_id=job.reservation_id)
    _job_changed(job.pk)


# --- Cancel --------------------------------------------------------------------------


def summary_job_cancel(*, job: SummaryJob, actor: User | None) -> SummaryJob:
    """Ask a running job to stop: batches not submitted yet never are; submitted ones
    are cancelled at the API (in a worker), and what they had done is still stored
    and billed. A job that has ended is left as it is."""
    with transaction.atomic():
        job = SummaryJob.objects.select_for_update().get(pk=job.pk)
        if not job.is_active or job.cancel_requested_at is not None:
            return job
        job.cancel_requested_at = timezone.now()
        if job.status != SummaryJob.Status.BUILDING:
            job.status = SummaryJob.Status.CANCELING
        job.save(update_fields=["cancel_requested_at", "status", "updated_at"])
        _enqueue_after_commit(
            "build" if job.status == SummaryJob.Status.BUILDING else "cancel", job.pk
        )
        _job_changed(job.pk)
    return job


def summary_job_cancel_run(*, job_id: int) -> int:
    """Carry out a cancel: unsubmitted batches end canceled, submitted ones are
    cancelled at the API and polled at once. Returns how many were cancelled there."""
    canceled = 0
    for batch in SummaryBatch.objects.filter(job_id=job_id).order_by("index"):
        if batch.status == SummaryBatch.Status.PENDING:
            with transaction.atomic():
                locked = SummaryBatch.objects.select_for_update().get(pk=batch.pk)
                if locked.status == SummaryBatch.Status.PENDING:
                    _batch_cancel_unsubmitted(locked)
        elif batch.status == SummaryBatch.Status.SUBMITTED:
            _cancel_quietly(batch.anthropic_batch_id)
            canceled += 1
            with transaction.atomic():
                SummaryBatch.objects.filter(pk=batch.pk).update(next_poll_at=timezone.now())
                _enqueue_after_commit("poll", batch.pk)
    return canceled


# --- Resuming after a restart (beat) ------------------------------------------------


def summaries_resume(*, now: dt.datetime | None = None) -> int:
    """Queue again every step whose task was lost (a worker or broker restart):
    jobs still building, batches not submitted, submits that died in their call,
    polls past due, ended batches not ingested. Each step is safe to run twice,
    so a step queued here and by its own task runs once in effect. Returns how
    many were queued."""
    now = now or timezone.now()
    quiet = now - dt.timedelta(seconds=settings.SUMMARIES_RESUME_AFTER_SECONDS)
    lease = now - dt.timedelta(seconds=settings.SUMMARIES_SUBMIT_LEASE_SECONDS)
    queued = 0
    with transaction.atomic():
        for job_id in SummaryJob.objects.filter(
            status=SummaryJob.Status.BUILDING, updated_at__lt=quiet
        ).values_list("id", flat=True):
            _enqueue_after_commit("build", job_id)
            queued += 1
        due = SummaryBatch.objects.filter(
            Q(status=SummaryBatch.Status.PENDING, job__updated_at__lt=quiet)
            | Q(status=SummaryBatch.Status.SUBMITTING, submit_started_at__lt=lease)
        ).values_list("id", flat=True)
        for batch_id in due:
            _enqueue_after_commit("submit", batch_id)
            queued += 1
        for batch_id in SummaryBatch.objects.filter(
            status=SummaryBatch.Status.SUBMITTED, next_poll_at__lt=quiet
        ).values_list("id", flat=True):
            _enqueue_after_commit("poll", batch_id)
            queued += 1
        for batch_id in SummaryBatch.objects.filter(
            status=SummaryBatch.Status.ENDED, ended_at__lt=quiet
        ).values_list("id", flat=True):
            _enqueue_after_commit("ingest", batch_id)
            queued += 1
    return queued


def summary_job_advance(*, job_id: int) -> None:
    """Run whatever step of a job is due, here and now (the command line's `--wait`,
    which must finish with no worker running). Safe beside a worker doing the same."""
    job = SummaryJob.objects.get(pk=job_id)
    if job.status == SummaryJob.Status.BUILDING:
        summary_job_build(job_id=job_id)
        return
    if job.cancel_requested_at is not None:
        summary_job_cancel_run(job_id=job_id)
    now = timezone.now()
    for batch in SummaryBatch.objects.filter(job_id=job_id).order_by("index"):
        if batch.status == SummaryBatch.Status.PENDING:
            summary_batch_submit(batch_id=batch.pk)
        elif batch.status == SummaryBatch.Status.SUBMITTING:
            try:
                summary_batch_submit(batch_id=batch.pk)
            except ClaudeError:
                logger.warning("Submitting batch %s failed; will try again", batch.pk)
        elif batch.status == SummaryBatch.Status.SUBMITTED and (
            batch.next_poll_at is None or batch.next_poll_at <= now
        ):
            summary_batch_poll(batch_id=batch.pk)
        elif batch.status == SummaryBatch.Status.ENDED:
            summary_batch_ingest(batch_id=batch.pk)


# --- Progress --------------------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress:
    job_id: int
    status: str
    status_label: str
    total: int
    submitted: int
    processing: int
    succeeded: int
    errored: int
    expired: int
    canceled: int
    cost_usd: Decimal
    cancel_requested: bool

    @property
    def done(self) -> int:
        return self.succeeded + self.errored + self.expired + self.canceled

    @property
    def percent(self) -> int:
        return int(self.done * 100 / self.total) if self.total else 100

    def as_frame(self) -> dict:
        """The `job.progress` websocket frame (docs/summaries.md)."""
        return {
            "type": "job.progress",
            "job_id": self.job_id,
            "status": self.status,
            "status_label": self.status_label,
            "total": self.total,
            "submitted": self.submitted,
            "processing": self.processing,
            "succeeded": self.succeeded,
            "errored": self.errored,
            "expired": self.expired,
            "canceled": self.canceled,
            "percent": self.percent,
            "cost_usd": f"{self.cost_usd:.6f}",
            "cost_display": usd_display(self.cost_usd),
            "ended": self.status in (SummaryJob.Status.ENDED, SummaryJob.Status.FAILED),
            "cancel_requested": self.cancel_requested,
        }


def job_progress(*, job_id: int) -> JobProgress | None:
    """A job's counts now: what the page and its socket show."""
    job = (
        SummaryJob.objects.filter(pk=job_id)
        .only("id", "status", "cost_usd", "cancel_requested_at")
        .first()
    )
    if job is None:
        return None
    counts = dict.fromkeys(SummaryRequest.Status.values, 0)
    for status, n in (
        SummaryRequest.objects.filter(job_id=job_id)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        counts[status] = n
    total = sum(counts.values())
    return JobProgress(
        job_id=job.pk,
        status=job.status,
        status_label=str(SummaryJob.Status(job.status).label),
        total=total,
        submitted=total - counts[SummaryRequest.Status.PENDING],
        processing=counts[SummaryRequest.Status.PENDING] + counts[SummaryRequest.Status.PROCESSING],
        succeeded=counts[SummaryRequest.Status.SUCCEEDED],
        errored=counts[SummaryRequest.Status.ERRORED],
        expired=counts[SummaryRequest.Status.EXPIRED],
        canceled=counts[SummaryRequest.Status.CANCELED],
        cost_usd=job.cost_usd,
        cancel_requested=job.cancel_requested_at is not None,
    )


# --- The weekly digest ----------------------------------------------------------------


def digest_set(
    *, team: Team, actor: User, enabled: bool, model: str = "", instruction: str = ""
) -> SummaryDigest:
    """Turn a team's weekly digest on or off (its owner only). Its jobs are billed as
    the owner who turned it on."""
    if not Membership.objects.filter(user=actor, team=team, role=Membership.Role.OWNER).exists():
        raise SummaryInputError(gettext("Only the team's owner can change the weekly digest."))
    model = _check_model(model or settings.SUMMARIES_DEFAULT_MODEL)
    with transaction.atomic():
        digest, _ = SummaryDigest.objects.update_or_create(
            team=team,
            defaults={
                "enabled": enabled,
                "enabled_by": actor if enabled else None,
                "model": model,
                "instruction": instruction.strip() or settings.SUMMARIES_DEFAULT_INSTRUCTION,
            },
        )
        audit_record(
            action=AuditEvent.Action.SETTINGS_CHANGED,
            actor=actor,
            team=team,
            target=f"team:{team.pk}",
            details={"weekly_digest": enabled, "model": model},
        )
    return digest


def week_start(day: dt.date) -> dt.date:
    """The Monday of `day`'s week."""
    return day - dt.timedelta(days=day.weekday())


def digests_run(*, today: dt.date | None = None) -> int:
    """Start this week's digest job of every team that has one on: the team's
    conversations of the seven days before this Monday. Once a week per team,
    however often it is called. Returns how many jobs started."""
    monday = week_start(today or timezone.now().date())
    started = 0
    for digest in SummaryDigest.objects.filter(enabled=True).select_related("team", "enabled_by"):
        owner = digest.enabled_by
        if (
            owner is None
            or not Membership.objects.filter(
                user=owner, team=digest.team, role=Membership.Role.OWNER
            ).exists()
        ):
            continue  # its owner left: a digest is billed to no one else
        if SummaryJob.objects.filter(digest=digest, digest_week=monday).exists():
            continue
        try:
            summary_job_create(
                team=digest.team,
                actor=owner,
                source=SummaryJob.Source.DIGEST,
                model=digest.model,
                instruction=digest.instruction,
                since=monday - dt.timedelta(days=7),
                until=monday - dt.timedelta(days=1),
                digest=digest,
                digest_week=monday,
            )
        except SummaryInputError as exc:
            logger.info("No weekly digest for %s: %s", digest.team, exc.message)
            continue
        except IntegrityError:
            continue  # another beat started it meanwhile
        started += 1
    return started
