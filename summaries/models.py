"""Batch summary jobs: a job over some conversations, the Message Batches it was
sent in, each conversation's request and result, and the summaries.

Exactly once lives in the constraints here: a batch's API id is unique and is
stored in the transaction that marks it submitted; a request's ledger row and
its summary are one-to-one with it, written in the transaction that moves it
out of `processing`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class SummaryDigest(models.Model):
    """A team's weekly digest: every Monday a job over the team's past week."""

    team = models.OneToOneField("accounts.Team", on_delete=models.CASCADE, related_name="digest")
    enabled = models.BooleanField(default=False)
    # The owner who turned it on: the digest's jobs are billed as theirs.
    enabled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    model = models.CharField(max_length=100)
    instruction = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("summary digest")
        verbose_name_plural = _("summary digests")

    def __str__(self) -> str:
        return f"{self.team} weekly digest ({'on' if self.enabled else 'off'})"


class SummaryJob(models.Model):
    """One start of "summarise these conversations": estimated, held against the
    team's budget, sent as one or more Message Batches, billed at ingest."""

    class Status(models.TextChoices):
        BUILDING = "building", pgettext_lazy("summary status", "Preparing requests")
        SUBMITTING = "submitting", pgettext_lazy("summary status", "Submitting")
        PROCESSING = "processing", pgettext_lazy("summary status", "Processing")
        CANCELING = "canceling", pgettext_lazy("summary status", "Cancelling")
        ENDED = "ended", pgettext_lazy("summary status", "Ended")
        FAILED = "failed", pgettext_lazy("summary status", "Failed")

    class Source(models.TextChoices):
        WEB = "web", _("Team page")
        ADMIN = "admin", _("Admin action")
        COMMAND = "command", _("Command line")
        DIGEST = "digest", _("Weekly digest")

    ACTIVE_STATUSES = (Status.BUILDING, Status.SUBMITTING, Status.PROCESSING, Status.CANCELING)

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="summary_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.WEB)
    model = models.CharField(max_length=100)
    instruction = models.TextField()
    # The selection as asked for (the conversations themselves are the requests).
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    since = models.DateField(null=True, blank=True)
    until = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.BUILDING)
    # The estimate shown before it started.
    conversations_count = models.PositiveIntegerField(default=0)
    estimated_input_tokens = models.BigIntegerField(default=0)
    estimated_output_tokens = models.BigIntegerField(default=0)
    estimated_cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    estimated_standard_cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    # The budget hold (usage.BudgetReservation, kind batch) and what was billed.
    hold_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    reservation_id = models.UUIDField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    error_message = models.TextField(blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    digest = models.ForeignKey(
        SummaryDigest, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    # The Monday of the week a digest job covers: one job a week, however often beat fires.
    digest_week = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("summary job")
        verbose_name_plural = _("summary jobs")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["digest", "digest_week"],
                condition=models.Q(digest__isnull=False),
                name="summaryjob_one_digest_a_week",
            )
        ]
        indexes = [models.Index(fields=["team", "-created_at"], name="summaryjob_team_recent")]

    def __str__(self) -> str:
        return f"Summary job {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def estimated_saving_usd(self):
        return self.estimated_standard_cost_usd - self.estimated_cost_usd


class SummaryBatch(models.Model):
    """One Message Batch of a job (a job over more than the API takes in one batch
    has several)."""

    class Status(models.TextChoices):
        PENDING = "pending", pgettext_lazy("summary status", "Built, not submitted")
        # A submit was started: the API may have the batch although we have no id.
        SUBMITTING = "submitting", pgettext_lazy("summary status", "Submitting")
        SUBMITTED = "submitted", pgettext_lazy("summary status", "Submitted")
        ENDED = "ended", pgettext_lazy("summary status", "Ended at the API")
        INGESTED = "ingested", pgettext_lazy("summary status", "Results stored")
        # The job was cancelled before this batch was submitted.
        CANCELED = "canceled", pgettext_lazy("summary status", "Cancelled before submission")

    job = models.ForeignKey(SummaryJob, on_delete=models.CASCADE, related_name="batches")
    index = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    anthropic_batch_id = models.CharField(max_length=100, unique=True, null=True, blank=True)
    request_count = models.PositiveIntegerField(default=0)
    byte_size = models.BigIntegerField(default=0)
    # The API's counts, as last polled (shown as progress; never billed from).
    api_counts = models.JSONField(default=dict, blank=True)
    submit_started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ingested_at = models.DateTimeField(null=True, blank=True)
    # Polling state, so a restarted worker (or beat) resumes where it was.
    poll_count = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name = _("summary batch")
        verbose_name_plural = _("summary batches")
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="summarybatch_unique_index")
        ]
        indexes = [
            models.Index(
                fields=["next_poll_at"],
                condition=models.Q(status__in=["pending", "submitting", "submitted", "ended"]),
                name="summarybatch_unfinished",
            )
        ]

    def __str__(self) -> str:
        return f"Batch {self.index} of job {self.job_id} ({self.status})"


class SummaryRequest(models.Model):
    """One conversation of a job: its request in a batch and, once ingested, its result."""

    class Status(models.TextChoices):
        PENDING = "pending", pgettext_lazy("summary status", "Not submitted yet")
        PROCESSING = "processing", pgettext_lazy("summary status", "Processing")
        SUCCEEDED = "succeeded", pgettext_lazy("summary status", "Succeeded")
        ERRORED = "errored", pgettext_lazy("summary status", "Errored")
        EXPIRED = "expired", pgettext_lazy("summary status", "Expired")
        CANCELED = "canceled", pgettext_lazy("summary status", "Canceled")

    OPEN_STATUSES = (Status.PENDING, Status.PROCESSING)

    job = models.ForeignKey(SummaryJob, on_delete=models.CASCADE, related_name="requests")
    batch = models.ForeignKey(
        SummaryBatch, on_delete=models.CASCADE, null=True, blank=True, related_name="requests"
    )
    conversation = models.ForeignKey(
        "conversations.Conversation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    conversation_uuid = models.UUIDField()
    conversation_title = models.CharField(max_length=200, blank=True)
    # "j<job>-c<conversation hex>": ties a result line to this row, job and conversation.
    custom_id = models.CharField(max_length=64, unique=True)
    params = models.JSONField(null=True, blank=True)
    estimated_input_tokens = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    # Why it did not succeed, in words (the API's error message, or what happened).
    reason = models.TextField(blank=True)
    error_type = models.CharField(max_length=60, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    # The one ledger row of this request (succeeded ones only: the API bills nothing else).
    api_call = models.OneToOneField(
        "usage.ApiCall", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("summary request")
        verbose_name_plural = _("summary requests")
        ordering = ["job", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "conversation_uuid"], name="summaryrequest_once_a_job"
            )
        ]
        indexes = [models.Index(fields=["batch", "status"], name="summaryrequest_batch_status")]

    def __str__(self) -> str:
        return f"{self.custom_id} ({self.status})"


class Summary(models.Model):
    """A conversation's summary: the text of one succeeded request, stored once."""

    request = models.OneToOneField(SummaryRequest, on_delete=models.CASCADE, related_name="summary")
    job = models.ForeignKey(SummaryJob, on_delete=models.CASCADE, related_name="summaries")
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="summaries"
    )
    model = models.CharField(max_length=100)
    text = models.TextField()
    # Sanitised HTML of `text` (conversations.rendering), rendered once at ingest.
    html = models.TextField(blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("summary")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["conversation", "-created_at"], name="summary_conversation_latest")
        ]
        verbose_name_plural = _("summaries")

    def __str__(self) -> str:
        return f"Summary of {self.conversation_id} ({self.created_at:%Y-%m-%d})"
