from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    class ThinkingEffort(models.TextChoices):
        OFF = "", "Off"
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        MAX = "max", "Max"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    # The team the conversation's costs are billed to.
    team = models.ForeignKey(
        "accounts.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    title = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=100)
    system_prompt = models.TextField(blank=True)
    thinking_effort = models.CharField(
        max_length=16, choices=ThinkingEffort.choices, blank=True, default=ThinkingEffort.OFF
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped on every new message so the sidebar lists the newest first.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent")]

    def __str__(self) -> str:
        return self.title or "New conversation"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        STREAMING = "streaming", "Streaming"
        COMPLETE = "complete", "Complete"
        STOPPED = "stopped", "Stopped"
        ERROR = "error", "Error"
        INTERRUPTED = "interrupted", "Interrupted"

    ACTIVE_STATUSES = (Status.PENDING, Status.STREAMING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # Order within the conversation; assigned under a lock on the conversation.
    position = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    # Content blocks in the API's own shape: [{"type": "text", "text": "..."}, ...].
    content = models.JSONField(default=list, blank=True)
    # Plain text of the text blocks, and of the thinking blocks, for display and search.
    text = models.TextField(blank=True)
    thinking = models.TextField(blank=True)
    # Sanitised HTML of `text`, rendered once when the text is final.
    html = models.TextField(blank=True)
    model = models.CharField(max_length=100, blank=True)
    stop_reason = models.CharField(max_length=40, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    # Set by the browser on user messages, so a resent frame is not a second message.
    client_id = models.CharField(max_length=64, blank=True)
    # Streaming checkpoint: `text`/`thinking` hold exactly the frames 1..seq.
    seq = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["conversation", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "position"], name="message_unique_position"
            ),
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=~models.Q(client_id=""),
                name="message_unique_client_id",
            ),
        ]
        indexes = [
            models.Index(
                fields=["status", "heartbeat_at"],
                condition=models.Q(status__in=["pending", "streaming"]),
                name="message_active_heartbeat",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.position} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class ApiCall(models.Model):
    """One call to Claude: who, what, how many tokens, what it cost.

    A ledger row: it outlives the conversation, message and even the user it
    belongs to, so foreign keys are SET_NULL and the ids are kept as values.
    """

    class Purpose(models.TextChoices):
        CHAT = "chat", "Chat reply"
        TITLE = "title", "Title"
        SUMMARY = "summary", "Summary"
        COUNT_TOKENS = "count_tokens", "Token count"

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
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="api_calls"
    )
    conversation_uuid = models.UUIDField(null=True, blank=True, db_index=True)
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="api_calls"
    )
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.CHAT)
    provider = models.CharField(max_length=20, default="anthropic")
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
    # Billed at the Message Batches discount / with the regional-endpoint premium.
    batch = models.BooleanField(default=False)
    regional = models.BooleanField(default=False)
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
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="apicall_user_created"),
            models.Index(fields=["team", "created_at"], name="apicall_team_created"),
        ]
        verbose_name = "API call"

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
