"""The ledger of calls to Claude, budgets, their per-month counters and
reservations, and the daily usage rollup.

`ApiCall` is the ledger; everything else here is derived from it or guards it,
and is written in the same transaction as each ledger row.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class ApiCall(models.Model):
    """One call to Claude: who, what, how many tokens, what it cost.

    A ledger row: it outlives the conversation, message and even the user it
    belongs to, so foreign keys are SET_NULL and the ids are kept as values.
    """

    class Purpose(models.TextChoices):
        CHAT = "chat", _("Chat reply")
        COUNT_TOKENS = "count_tokens", _("Token count")
        TITLE = "title", _("Conversation title")
        CONDENSE = "condense", _("Summary of earlier turns")
        SUMMARY = "summary", _("Batch summary")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_calls",
    )
    team = models.ForeignKey(
        "accounts.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="api_calls"
    )
    # String references: `usage` sits below `conversations` and never imports it.
    conversation = models.ForeignKey(
        "conversations.Conversation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_calls",
    )
    conversation_uuid = models.UUIDField(null=True, blank=True, db_index=True)
    message = models.ForeignKey(
        "conversations.Message",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="api_calls",
    )
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.CHAT)

    class Endpoint(models.TextChoices):
        GLOBAL = "global", _("Global")
        REGIONAL = "regional", _("Regional")

    # Where the call went: the provider (anthropic, bedrock, vertex, fake), its
    # region (the AWS region or Vertex location; blank on the Anthropic API) and
    # whether the endpoint was global or regional (a Bedrock geography profile,
    # a Vertex region).
    provider = models.CharField(max_length=20, default="anthropic")
    region = models.CharField(max_length=40, blank=True)
    endpoint = models.CharField(max_length=10, choices=Endpoint.choices, default=Endpoint.GLOBAL)
    model = models.CharField(max_length=100)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_write_5m_tokens = models.PositiveIntegerField(default=0)
    cache_write_1h_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    # True when the call ended before the API reported final usage (stopped or
    # failed mid-stream): output tokens are then counted from what was received.
    usage_estimated = models.BooleanField(default=False)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    # Billed at the Message Batches discount / with the regional-endpoint premium
    # (+10%: a regional endpoint, for the models from Sonnet 4.5 on).
    batch = models.BooleanField(default=False)
    regional = models.BooleanField(default=False)
    # What the regional premium added to `cost_usd` (0 when `regional` is false).
    regional_premium_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    # What cache reads saved against full input price, and what the batch
    # discount saved, computed with the cost (the usage report sums them).
    cache_savings_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    batch_savings_usd = models.DecimalField(max_digits=14, decimal_places=6, default=0)
    price_key = models.CharField(max_length=80, blank=True)
    priced = models.BooleanField(default=True)
    request_id = models.CharField(max_length=80, blank=True)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    stop_reason = models.CharField(max_length=40, blank=True)
    error_type = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name_plural = _("API calls")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="apicall_user_created"),
            models.Index(fields=["team", "created_at"], name="apicall_team_created"),
        ]
        verbose_name = _("API call")

    def __str__(self) -> str:
        return f"{self.model} ${self.cost_usd} ({self.created_at:%Y-%m-%d %H:%M})"

    @property
    def total_input_tokens(self) -> int:
        return (
            self.input_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
            + self.cache_read_tokens
        )


class Budget(models.Model):
    """A monthly limit in USD for one team or one person (exactly one is set).

    A person's effective limit is the tighter of their own and their team's.
    """

    team = models.OneToOneField(
        "accounts.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="budget"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="budget",
    )
    monthly_limit_usd = models.DecimalField(
        _("monthly budget (USD)"),
        max_digits=14,
        decimal_places=6,
        help_text=_("New messages are refused once this month's spend would pass it."),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("budget")
        verbose_name_plural = _("budgets")
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(team__isnull=False, user__isnull=True))
                | (models.Q(team__isnull=True, user__isnull=False)),
                name="budget_exactly_one_scope",
            ),
            models.CheckConstraint(
                condition=models.Q(monthly_limit_usd__gte=0), name="budget_not_negative"
            ),
        ]

    def __str__(self) -> str:
        owner = self.team if self.team_id else self.user
        return f"{owner}: ${self.monthly_limit_usd:.2f}/month"


class BudgetCounter(models.Model):
    """Settled spend and open reservations of one scope for one UTC month.

    `scope` is "team:<id>" or "user:<id>". This is the row a reservation locks
    (its upsert, `usage.budgets._counters_add`), so two concurrent sends cannot
    both take the last dollars. Team keys sort before user keys: locking in
    `scope` order is the fixed team-then-user order that keeps two lockers from
    deadlocking.
    """

    scope = models.CharField(max_length=40)
    month = models.DateField(help_text=_("The first day of the month (UTC)."))
    spent_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    reserved_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)

    class Meta:
        verbose_name = _("budget counter")
        verbose_name_plural = _("budget counters")
        constraints = [
            models.UniqueConstraint(fields=["scope", "month"], name="budgetcounter_unique_scope")
        ]

    def __str__(self) -> str:
        return (
            f"{self.scope} {self.month:%Y-%m}: ${self.spent_usd} spent, ${self.reserved_usd} held"
        )


class BudgetReservation(models.Model):
    """The worst-case cost of one call, held against the budget until it ends."""

    class Status(models.TextChoices):
        OPEN = "open", pgettext_lazy("budget hold", "Open")
        SETTLED = "settled", pgettext_lazy("budget hold", "Settled")
        RELEASED = "released", pgettext_lazy("budget hold", "Released")
        EXPIRED = "expired", pgettext_lazy("budget hold", "Expired (released by the sweeper)")

    class Kind(models.TextChoices):
        # One chat call: settled when its reply ends, swept when its process died.
        CHAT = "chat", _("Chat call")
        # A batch summary job: billed a request at a time as its results are read,
        # released by the job when it ends (hours later, so never swept).
        BATCH = "batch", _("Batch job")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="budget_reservations",
    )
    # The counters it holds money on, kept as values: settling must find them
    # even after the user or team is gone.
    user_scope = models.CharField(max_length=40)
    team_scope = models.CharField(max_length=40, blank=True)
    month = models.DateField()
    message = models.ForeignKey(
        "conversations.Message",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="budget_reservations",
    )
    amount_usd = models.DecimalField(max_digits=14, decimal_places=6)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CHAT)
    actual_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("budget reservation")
        verbose_name_plural = _("budget reservations")
        indexes = [
            models.Index(fields=["user", "created_at"], name="reservation_user_created"),
            models.Index(
                fields=["created_at"],
                condition=models.Q(status="open"),
                name="reservation_open_created",
            ),
        ]

    def __str__(self) -> str:
        return f"${self.amount_usd} for {self.user_scope} ({self.status})"


class DailyUsage(models.Model):
    """One day's usage of one person in one team on one model: the report's table.

    Per provider, region and endpoint too (a deployment that moves to Bedrock keeps
    its earlier days apart). Upserted in the same transaction as every `ApiCall`
    (`usage.ledger.ledger_record`)
    and rebuildable from the ledger (`usage_rollup_rebuild`). User and team are kept
    as plain ids (0 = none) so deleting a person or a team never changes a row.
    """

    day = models.DateField()
    user_id = models.BigIntegerField(default=0)
    team_id = models.BigIntegerField(default=0)
    model = models.CharField(max_length=100)
    # Where the calls went (ApiCall's provider, region and endpoint).
    provider = models.CharField(max_length=20, default="anthropic")
    region = models.CharField(max_length=40, blank=True)
    endpoint = models.CharField(max_length=10, default="global")
    calls = models.PositiveIntegerField(default=0)
    unpriced_calls = models.PositiveIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_write_5m_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    cache_savings_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    batch_savings_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    regional_premium_usd = models.DecimalField(max_digits=16, decimal_places=6, default=0)

    class Meta:
        verbose_name = _("daily usage")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "user_id", "team_id", "model", "provider", "region", "endpoint"],
                name="dailyusage_unique_key_endpoint",
            )
        ]
        indexes = [
            models.Index(fields=["user_id", "day"], name="dailyusage_user_day"),
            models.Index(fields=["team_id", "day"], name="dailyusage_team_day"),
        ]
        verbose_name_plural = _("daily usage")

    def __str__(self) -> str:
        return f"{self.day} user {self.user_id} {self.model}: ${self.cost_usd}"
