from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _


class Conversation(models.Model):
    class ThinkingEffort(models.TextChoices):
        # Labels people pick from (the chat's Thinking menu); the values are stored.
        OFF = "", pgettext_lazy("thinking effort", "Off")
        LOW = "low", pgettext_lazy("thinking effort", "Low")
        MEDIUM = "medium", pgettext_lazy("thinking effort", "Medium")
        HIGH = "high", pgettext_lazy("thinking effort", "High")
        MAX = "max", pgettext_lazy("thinking effort", "Max")

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
    # The team preset it was started from (its name kept, should the preset go).
    preset = models.ForeignKey(
        "conversations.Preset",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
    )
    preset_name = models.CharField(max_length=100, blank=True)
    # "Continue in my own chat": the shared conversation this one is a copy of.
    copied_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The last message of the branch on show: what the page shows and what the next
    # message follows (messages form a tree through `Message.parent`; see
    # conversations/tree.py). Null only while the conversation is empty.
    active_leaf = models.ForeignKey(
        "conversations.Message",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped on every new message so the sidebar lists the newest first.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent"),
            models.Index(fields=["team", "-updated_at"], name="conversation_team_recent"),
        ]

    def __str__(self) -> str:
        return self.title or gettext("New conversation")


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
    # The message this one follows: None for the first message. An edited message
    # and a regenerated answer are siblings (same parent), so every earlier
    # version keeps its own branch below it.
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )
    # Depth in the tree (0 for the first message): the place in its branch.
    # Siblings share it. Assigned under a lock on the conversation.
    position = models.PositiveIntegerField()
    # When this message was last on the branch on show: switching to one of its
    # ancestors' versions comes back down the way last taken.
    selected_at = models.DateTimeField(null=True, blank=True)
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
    # The API's `stop_details` (a refusal's category and explanation), as sent.
    stop_details = models.JSONField(default=dict, blank=True)
    # Set on the last message of the older turns that were condensed into a
    # summary (models without compaction): the branch's requests after it send
    # the summary instead of the turns up to here. The turns stay stored and shown.
    summary = models.TextField(blank=True)
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
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["conversation", "position", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=~models.Q(client_id=""),
                name="message_unique_client_id",
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "position"], name="message_position"),
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
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
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


class ConversationShare(models.Model):
    """Who besides its owner may read a conversation: never anyone outside its team.

    `team`: every member of the conversation's team, listed under "Shared with
    me". `user`: one teammate, listed for them. `link`: any signed-in member of
    the team who has its address (unlisted; only while the team's owner allows
    links). Read-only in every case: only the owner writes
    (`selectors.conversation_for_user` decides)."""

    class Kind(models.TextChoices):
        TEAM = "team", "The whole team"
        USER = "user", "A teammate"
        LINK = "link", "Team members with the link"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="shares")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Set for `user` shares only.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="conversation_shares",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("conversation share")
        verbose_name_plural = _("conversation shares")
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "user"],
                condition=models.Q(user__isnull=False),
                name="share_unique_user",
            ),
            models.UniqueConstraint(
                fields=["conversation", "kind"],
                condition=models.Q(user__isnull=True),
                name="share_unique_kind",
            ),
            models.CheckConstraint(
                condition=(models.Q(kind="user") & models.Q(user__isnull=False))
                | (~models.Q(kind="user") & models.Q(user__isnull=True)),
                name="share_user_iff_user_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conversation} shared ({self.kind})"


class Preset(models.Model):
    """A team's ready-made start for a chat: a model, a system prompt and thinking.

    Owners and admins define them; members pick one on the new-chat form."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="presets")
    name = models.CharField(max_length=100)
    model = models.CharField(max_length=100)
    system_prompt = models.TextField(blank=True)
    thinking_effort = models.CharField(
        max_length=16,
        choices=Conversation.ThinkingEffort.choices,
        blank=True,
        default=Conversation.ThinkingEffort.OFF,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("preset")
        verbose_name_plural = _("presets")
        ordering = ["team", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="preset_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name
