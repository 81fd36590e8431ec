"""Server-to-browser websocket frames, one TypedDict per type.

The protocol is documented in docs/websocket-protocol.md. Frames about a
conversation go to that conversation's group only.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal, NotRequired, TypedDict

from conversations.models import Message
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
    error: NotRequired[dict[str, Any]]


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
    error: NotRequired[dict[str, Any]]


class MessageDeleted(TypedDict):
    type: Literal["message.deleted"]
    message_id: str


class ConversationUpdated(TypedDict):
    type: Literal["conversation.updated"]
    conversation_id: str
    title: str


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


class ErrorFrame(TypedDict):
    type: Literal["error"]
    code: str
    message: str
    client_id: NotRequired[str]


def message_payload(message: Message) -> MessagePayload:
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
    }
    if message.error_code:
        payload["error"] = {"code": message.error_code, "message": message.error_message}
    return payload


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
