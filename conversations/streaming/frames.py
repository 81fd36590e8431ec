"""Server-to-browser websocket frames: one TypedDict and one builder per type.

The protocol is documented in docs/websocket-protocol.md. Every frame of a
type is built by its one function here, whether it goes out live or is
rebuilt from the stored row for a socket that missed it, so the two cannot
disagree. Frames about a conversation go to that conversation's group only.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal, NotRequired, TypedDict

from django.utils.translation import gettext, pgettext_lazy

from claude.catalog import model_info
from claude.errors import BAD_REQUEST_WITH_DETAIL, error_message_parts, error_retryable
from conversations.models import Attachment, Conversation, Message
from usage.models import ApiCall


def conversation_group(conversation_id: uuid.UUID | str) -> str:
    """The channel-layer group of every socket watching one conversation."""
    return f"conv.{uuid.UUID(str(conversation_id)).hex}"


class MessagePayload(TypedDict):
    id: str
    role: str
    status: str
    position: int
    text: str
    thinking: str
    html: str
    model: str
    stop_reason: str
    client_id: str
    seq: int
    # The model's display name ("Claude Sonnet 5.5"); `model` is its id.
    model_label: str
    # Its versions (edits of a user message, regenerations of an answer): this
    # one's place among them, 1-based, and their ids oldest first.
    versions: VersionsPayload
    # Why it stopped, in words, when that is worth saying: "cut off at the length
    # limit" (with Continue), a refusal's reason.
    stop_note: str
    # Where earlier turns were condensed to fit the context window: what they
    # were condensed into (readable), else "".
    condensed: str
    # When it was written (ISO 8601): the time shown on hover.
    created_at: NotRequired[str]
    error: NotRequired[dict[str, Any]]
    # User messages only: the files sent with it, in the order Claude got them.
    attachments: NotRequired[list[AttachmentPayload]]
    # Finished answers in a `branch.switched`: the sum of their calls.
    usage: NotRequired[UsagePayload | None]
    cost_usd: NotRequired[str | None]


class VersionsPayload(TypedDict):
    index: int
    count: int
    ids: list[str]


class BranchSwitched(TypedDict):
    """The branch on show changed (a switch, an edit, a regeneration, a Continue):
    the messages of the new branch from `from_position` down, in order. Every tab
    keeps what it shows above that position and replaces the rest."""

    type: Literal["branch.switched"]
    leaf_id: str | None
    from_position: int
    messages: list[MessagePayload]


class MessageCreated(TypedDict):
    type: Literal["message.created"]
    message: MessagePayload


class MessageDelta(TypedDict):
    type: Literal["message.delta"]
    message_id: str
    seq: int
    text: NotRequired[str]
    thinking: NotRequired[str]


class MessageSnapshot(TypedDict):
    type: Literal["message.snapshot"]
    message_id: str
    seq: int
    status: str
    text: str
    thinking: str


class UsagePayload(TypedDict):
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int


class MessageCompleted(TypedDict):
    type: Literal["message.completed"]
    message_id: str
    seq: int
    status: str
    stop_reason: str
    text: str
    thinking: str
    html: str
    usage: UsagePayload | None
    cost_usd: str | None
    model_label: str
    stop_note: str
    condensed: str
    error: NotRequired[dict[str, Any]]


class MessageDeleted(TypedDict):
    type: Literal["message.deleted"]
    message_id: str


class MessageCondensed(TypedDict):
    """The branch's older turns were condensed, up to `message_id` (a model
    without compaction): the marker goes there, with what they became."""

    type: Literal["message.condensed"]
    message_id: str
    condensed: str


def message_condensed(message_id: uuid.UUID | str, summary: str) -> MessageCondensed:
    return {"type": "message.condensed", "message_id": str(message_id), "condensed": summary}


class ConversationUpdated(TypedDict):
    type: Literal["conversation.updated"]
    conversation_id: str
    title: str
    # The model of the next answer (settings changed in another tab).
    model: str
    model_label: str
    context_window: int


class ConversationDeleted(TypedDict):
    type: Literal["conversation.deleted"]
    conversation_id: str


class BudgetStatusFrame(TypedDict):
    """Where the owner stands against the tighter of their and their team's budget.

    Built by `usage.budgets.BudgetStatus.as_frame`; sent on connect and after
    each reply, only to people who have a budget."""

    type: Literal["budget.status"]
    level: Literal["ok", "warning", "exceeded"]
    scope: Literal["team", "user"]
    spent_usd: str
    limit_usd: str | None
    remaining_usd: str | None
    percent: int | None
    resets_at: str
    message: str


class AttachmentPayload(TypedDict):
    """An attachment as `GET /attachments/<id>/` answers it (docs/uploads.md)."""

    id: str
    name: str
    size: int
    status: Literal["checking", "ready", "rejected"]
    reason: str
    kind: Literal["image", "pdf", "text", ""]
    media_type: str
    pages: int | None
    width: int | None
    height: int | None
    message_id: str | None


class AttachmentUpdated(TypedDict):
    type: Literal["attachment.updated"]
    attachment: AttachmentPayload


class AttachmentDeleted(TypedDict):
    """An unsent upload was removed (from the composer, or swept): every tab drops its chip."""

    type: Literal["attachment.deleted"]
    attachment_id: str


class ErrorFrame(TypedDict):
    type: Literal["error"]
    code: str
    message: str
    client_id: NotRequired[str]


def message_payload(message: Message) -> MessagePayload:
    index = getattr(message, "version_index", 1)
    payload: MessagePayload = {
        "id": str(message.id),
        "role": message.role,
        "status": message.status,
        "position": message.position,
        "text": message.text,
        "thinking": message.thinking,
        "html": message.html,
        "model": message.model,
        "stop_reason": message.stop_reason,
        "client_id": message.client_id,
        "seq": message.seq,
        "model_label": model_label(message.model),
        "versions": {
            "index": index,
            "count": getattr(message, "version_count", 1),
            "ids": getattr(message, "version_ids", None) or [str(message.id)],
        },
        "stop_note": stop_note(message),
        "condensed": condensed_text(message),
    }
    if message.created_at:
        payload["created_at"] = message.created_at.isoformat()
    if message.error_code:
        payload["error"] = error_payload(message)
    if message.role == Message.Role.USER:
        payload["attachments"] = [attachment_payload(a) for a in message_attachments(message)]
    return payload


def model_label(model_id: str) -> str:
    """A model's display name, never its raw id when the catalog knows it."""
    info = model_info(model_id) if model_id else None
    return info.label if info else model_id


REFUSAL_CATEGORIES = {
    "cyber": pgettext_lazy("refusal category", "cyber security"),
    "bio": pgettext_lazy("refusal category", "biological risk"),
    "frontier_llm": pgettext_lazy("refusal category", "AI model development"),
    "reasoning_extraction": pgettext_lazy("refusal category", "revealing its reasoning"),
    "general_harms": pgettext_lazy("refusal category", "possible harm"),
}


def error_text_parts(message: str) -> tuple[str, str]:
    """A failed reply's stored message in the reader's language, as (what happened,
    the sentence telling to press Retry or "").

    Stored in English, the source language (claude/errors.py marks the messages
    and keeps them so): each part the catalog knows is its own msgid, the API's
    detail after "Claude rejected the request." is put back into that sentence's
    translation, and anything else (older rows, the API's words) shows as stored.
    """
    if not message:
        return "", ""
    prefix, _, suffix = BAD_REQUEST_WITH_DETAIL.partition("%(detail)s")
    if message.startswith(prefix) and message.endswith(suffix) and len(message) > len(prefix):
        detail = message[len(prefix) : len(message) - len(suffix)]
        return gettext(BAD_REQUEST_WITH_DETAIL) % {"detail": detail}, ""
    main, hint = error_message_parts(message)
    return gettext(main), gettext(hint) if hint else ""


def error_text(message: str) -> str:
    """A failed reply's stored message in the reader's language, whole."""
    return " ".join(filter(None, error_text_parts(message)))


def error_payload(message: Message) -> dict:
    """The `error` of a failed reply's frames: its code, its message in the reader's
    language and, apart, the sentence of it that says to press Retry (the card
    shows that one only while Retry is there)."""
    main, hint = error_text_parts(message.error_message)
    return {
        "code": message.error_code,
        "message": " ".join(filter(None, (main, hint))),
        "retry_hint": hint,
        "retryable": error_retryable(message.error_code),
    }


def stop_note(message: Message) -> str:
    """What a reader should know about where an answer stopped ("" for a normal end)."""
    if message.role != Message.Role.ASSISTANT or message.is_active:
        return ""
    if message.stop_reason == "max_tokens":
        return gettext("This answer was cut off at the length limit.")
    if message.stop_reason == "refusal":
        details = message.stop_details or {}
        explanation = (details.get("explanation") or "").strip()
        category = REFUSAL_CATEGORIES.get(details.get("category") or "", details.get("category"))
        # The explanation is the model's own words (data); the rest is ours.
        if explanation:
            return gettext("Claude declined to answer. %(explanation)s") % {
                "explanation": explanation
            }
        if category:
            return gettext("Claude declined to answer. Reason: %(category)s.") % {
                "category": category
            }
        return gettext("Claude declined to answer. No reason was given.")
    if message.stop_reason == "model_context_window_exceeded":
        return gettext("This answer filled the model's context window and stopped there.")
    return ""


def condensed_text(message: Message) -> str:
    """The summary earlier turns were condensed into at this message: the API's
    compaction block in an answer, or the summary kept for a model without it."""
    if message.summary:
        return message.summary
    for block in message.content or ():
        if isinstance(block, dict) and block.get("type") == "compaction":
            return block.get("content") or gettext("(The earlier turns were condensed.)")
    return ""


def message_usage(message: Message) -> tuple[UsagePayload | None, str | None]:
    """The sum of an answer's calls (`calls`, prefetched): a continued answer has several."""
    calls = getattr(message, "calls", None) or []
    if not calls:
        return None, None
    usage: UsagePayload = {
        "input_tokens": sum(c.input_tokens for c in calls),
        "output_tokens": sum(c.output_tokens for c in calls),
        "cache_write_tokens": sum(c.cache_write_5m_tokens + c.cache_write_1h_tokens for c in calls),
        "cache_read_tokens": sum(c.cache_read_tokens for c in calls),
    }
    return usage, str(sum(c.cost_usd for c in calls))


def branch_switched(
    *, leaf_id: uuid.UUID | None, from_position: int, messages: list[Message]
) -> BranchSwitched:
    """The branch on show from `from_position` down (messages read by
    `selectors.message_list_for_page`, with their versions and calls)."""
    payloads = []
    for message in messages:
        payload = message_payload(message)
        if message.role == Message.Role.ASSISTANT and not message.is_active:
            payload["usage"], payload["cost_usd"] = message_usage(message)
        payloads.append(payload)
    return {
        "type": "branch.switched",
        "leaf_id": str(leaf_id) if leaf_id else None,
        "from_position": from_position,
        "messages": payloads,
    }


def message_attachments(message: Message) -> list[Attachment]:
    """A message's files: `attachment_list` as the reader prefetched it
    (`selectors.attachment_list_prefetch`) or the sender set it; else one query,
    which code on the event loop cannot make (Django refuses it there), so every
    async path must hand over messages read with the prefetch."""
    found = getattr(message, "attachment_list", None)
    if found is None:
        found = message.attachment_list = list(message.attachments.order_by("created_at", "id"))
    return found


def attachment_payload(attachment: Attachment) -> AttachmentPayload:
    return {
        "id": str(attachment.id),
        "name": attachment.name,
        "size": attachment.size,
        "status": attachment.status,
        "reason": attachment.reason,
        "kind": attachment.kind,
        "media_type": attachment.media_type,
        "pages": attachment.pages,
        "width": attachment.width,
        "height": attachment.height,
        "message_id": str(attachment.message_id) if attachment.message_id else None,
    }


def attachment_updated(attachment: Attachment) -> AttachmentUpdated:
    return {"type": "attachment.updated", "attachment": attachment_payload(attachment)}


def attachment_deleted(attachment_id: uuid.UUID | str) -> AttachmentDeleted:
    return {"type": "attachment.deleted", "attachment_id": str(attachment_id)}


def message_created(message: Message) -> MessageCreated:
    return {"type": "message.created", "message": message_payload(message)}


def message_deleted(message_id: uuid.UUID | str) -> MessageDeleted:
    return {"type": "message.deleted", "message_id": str(message_id)}


def message_snapshot(
    *, message_id: uuid.UUID | str, seq: int, status: str, text: str, thinking: str
) -> MessageSnapshot:
    return {
        "type": "message.snapshot",
        "message_id": str(message_id),
        "seq": seq,
        "status": status,
        "text": text,
        "thinking": thinking,
    }


def message_completed(message: Message, call: ApiCall | None) -> MessageCompleted:
    """The end of a reply, from its final row and its ledger entry: the frame the
    reply's runner publishes and the one a late socket is sent, alike."""
    frame: MessageCompleted = {
        "type": "message.completed",
        "message_id": str(message.id),
        "seq": message.seq,
        "status": message.status,
        "stop_reason": message.stop_reason,
        "text": message.text,
        "thinking": message.thinking,
        "html": message.html,
        "usage": usage_payload(call) if call else None,
        "cost_usd": str(call.cost_usd) if call else None,
        "model_label": model_label(message.model),
        "stop_note": stop_note(message),
        "condensed": condensed_text(message),
    }
    if message.error_code:
        frame["error"] = error_payload(message)
    return frame


def conversation_updated(conversation: Conversation) -> ConversationUpdated:
    return {
        "type": "conversation.updated",
        "conversation_id": str(conversation.pk),
        "title": conversation.title,
        "model": conversation.model,
        "model_label": model_label(conversation.model),
        "context_window": info.context_window if (info := model_info(conversation.model)) else 0,
    }


def conversation_deleted(conversation_id: uuid.UUID | str) -> ConversationDeleted:
    return {"type": "conversation.deleted", "conversation_id": str(conversation_id)}


def error_frame(code: str, message: str, *, client_id: str = "") -> ErrorFrame:
    # str(): a module's message may be lazy (gettext_lazy), and json cannot dump that.
    frame: ErrorFrame = {"type": "error", "code": code, "message": str(message)}
    if client_id:
        frame["client_id"] = client_id
    return frame


def usage_payload(call: ApiCall) -> UsagePayload:
    return {
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "cache_write_tokens": call.cache_write_5m_tokens + call.cache_write_1h_tokens,
        "cache_read_tokens": call.cache_read_tokens,
    }


def frame_json(frame: Any) -> str:
    """Serialise a frame once; every socket in the group sends the same string."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
