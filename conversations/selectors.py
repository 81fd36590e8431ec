"""Reads shared by views, consumers and the admin.

Every lookup of a conversation goes through `conversation_for_user`, the one
place that decides who may see it: today, its owner only.
"""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, QuerySet

from accounts.models import User
from conversations.models import Conversation, Message
from usage.models import ApiCall


def conversation_for_user(*, user: User, conversation_id: uuid.UUID | str) -> Conversation | None:
    """The conversation if `user` may see it, else None (callers answer 404)."""
    if not user.is_authenticated:
        return None
    try:
        conversation_uuid = uuid.UUID(str(conversation_id))
    except ValueError:
        return None
    return Conversation.objects.filter(id=conversation_uuid, owner=user).first()


def conversation_list_for_user(*, user: User, limit: int = 100) -> QuerySet[Conversation]:
    """The sidebar: the user's conversations, newest activity first."""
    return (
        Conversation.objects.filter(owner=user)
        .only("id", "title", "updated_at", "model")
        .order_by("-updated_at")[:limit]
    )


def message_list_for_page(*, conversation: Conversation) -> list[Message]:
    """Every message of a conversation with its API calls, in two queries."""
    calls = ApiCall.objects.only(
        "id",
        "message_id",
        "input_tokens",
        "output_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "cache_read_tokens",
        "cost_usd",
        "model",
    )
    return list(
        conversation.messages.order_by("position").prefetch_related(
            Prefetch("api_calls", queryset=calls, to_attr="calls")
        )
    )


def message_in_conversation(*, conversation: Conversation, message_id: str) -> Message | None:
    """A message of this (already authorised) conversation, or None."""
    try:
        message_uuid = uuid.UUID(str(message_id))
    except ValueError:
        return None
    return Message.objects.filter(id=message_uuid, conversation=conversation).first()

