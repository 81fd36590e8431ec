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
    # Set when pinned: pinned conversations head the sidebar, the latest pinned first.
    pinned_at = models.DateTimeField(null=True, blank=True)
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
        STREAMING = "streaming", "Streaming"
        COMPLETE = "complete", "Complete"
        STOPPED = "stopped", "Stopped"
        ERROR = "error", "Error"
        INTERRUPTED = "interrupted", "Interrupted"

    # A reply is stored as streaming from the start (`message_send`), so streaming
    # is the one active status; a tuple, for `status__in` and `in`.
    ACTIVE_STATUSES = (Status.STREAMING,)

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
                condition=models.Q(status="streaming"),
                name="message_active_heartbeat",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.position} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class Attachment(models.Model):
    """A file uploaded into a conversation: stored at once, checked by a worker.

    The upload request only streams the bytes to storage (`original_path`) and
    creates this row as checking; `conversations.attachments` sniffs the real
    type, applies the limits and writes what Claude is sent (`prepared_path`:
    an image re-encoded without metadata and resized, or the PDF or text as
    uploaded) and a thumbnail. It belongs to the message it was sent with.
    """

    class Status(models.TextChoices):
        CHECKING = "checking", "Checking"
        READY = "ready", "Ready"
        REJECTED = "rejected", "Rejected"

    class Kind(models.TextChoices):
        UNKNOWN = "", "Unknown"
        IMAGE = "image", "Image"
        PDF = "pdf", "PDF"
        TEXT = "text", "Text"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="attachments"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    # Set when a message is sent with it; an attachment never sent is removed after a day.
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="attachments"
    )
    # The file name as shown (cleaned of paths and control characters, at most 255).
    name = models.CharField(max_length=255)
    # Bytes as uploaded; `prepared_size` is what Claude is sent.
    size = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CHECKING)
    # Why it was rejected, in words for the person who uploaded it.
    reason = models.TextField(blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, blank=True, default=Kind.UNKNOWN)
    # The real type, from the bytes: image/png, application/pdf, text/plain, ...
    media_type = models.CharField(max_length=100, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # Names in the attachments storage (random; never the uploaded name).
    original_path = models.CharField(max_length=255, blank=True)
    prepared_path = models.CharField(max_length=255, blank=True)
    thumbnail_path = models.CharField(max_length=255, blank=True)
    prepared_size = models.BigIntegerField(default=0)
    # Input tokens the prepared file costs in a request (the API's own rules).
    tokens = models.PositiveIntegerField(default=0)
    # With CLAUDE_FILES_API: the Files API id it was uploaded as, once.
    claude_file_id = models.CharField(max_length=100, blank=True)
    # The check: how many times a worker started it, and when the last one did
    # (the sweep retries a check whose worker died, and rejects after a few).
    check_attempts = models.PositiveSmallIntegerField(default=0)
    check_started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["status", "check_started_at"],
                condition=models.Q(status="checking"),
                name="attachment_checking",
            ),
            models.Index(
                fields=["created_at"],
                condition=models.Q(message__isnull=True),
                name="attachment_unsent",
            ),
            models.Index(fields=["uploaded_by", "created_at"], name="attachment_uploader"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"
