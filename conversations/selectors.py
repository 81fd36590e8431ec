"""Reads shared by views, consumers and the admin.

Who may see a conversation is decided in one place, `conversations_visible_to`
(today: its owner only); `conversation_for_user`, the sidebar and search
(`conversations.search`) all start from it, so widening it (sharing) widens
them all at once.
"""

from __future__ import annotations

import uuid

from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, prefetch_related_objects

from accounts.models import User
from accounts.sessions import session_row_read, session_stands
from conversations.models import Attachment, Conversation, Message
from infra.rows import rows_first_values
from usage.models import ApiCall


def conversations_visible_to(*, user: User) -> QuerySet[Conversation]:
    """Every conversation `user` may see: the one rule every lookup, list and
    search of conversations starts from."""
    if not user.is_authenticated:
        return Conversation.objects.none()
    return Conversation.objects.filter(owner=user)


def conversation_for_user(*, user: User, conversation_id: uuid.UUID | str) -> Conversation | None:
    """The conversation if `user` may see it, else None (callers answer 404)."""
    if not user.is_authenticated:
        return None
    try:
        conversation_uuid = uuid.UUID(str(conversation_id))
    except ValueError:
        return None
    return conversations_visible_to(user=user).filter(id=conversation_uuid).first()


def conversation_list_for_user(
    *, user: User, limit: int = 100, current_id: uuid.UUID | None = None
) -> QuerySet[Conversation]:
    """The sidebar: the user's conversations, pinned ones first, then newest
    activity first. A conversation nothing was sent in yet is left out (a first
    message refused, files attached and never sent), but for the one open."""
    started = Exists(Message.objects.filter(conversation_id=OuterRef("pk")))
    if current_id is not None:
        started = started | Q(id=current_id)
    return (
        conversations_visible_to(user=user)
        .filter(started)
        .only("id", "title", "updated_at", "model", "pinned_at")
        .order_by(F("pinned_at").desc(nulls_last=True), "-updated_at")[:limit]
    )


def attachment_list_prefetch() -> Prefetch:
    """A message's files as `message.attachment_list`, in upload order (the order
    Claude gets them in): what `frames.message_payload` lists for a user message."""
    return Prefetch(
        "attachments",
        queryset=Attachment.objects.order_by("created_at", "id"),
        to_attr="attachment_list",
    )


def message_list_for_page(*, conversation: Conversation) -> list[Message]:
    """Every message of a conversation with its API calls and its files, in three
    queries."""
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
            Prefetch("api_calls", queryset=calls, to_attr="calls"), attachment_list_prefetch()
        )
    )


def message_in_conversation(*, conversation_id: uuid.UUID, message_id: str) -> Message | None:
    """A message of this (already authorised) conversation, or None."""
    try:
        message_uuid = uuid.UUID(str(message_id))
    except ValueError:
        return None
    return Message.objects.filter(id=message_uuid, conversation_id=conversation_id).first()


def message_with_prompt(*, conversation_id: uuid.UUID, message_id: str) -> list[Message]:
    """A message of the conversation and the one before it, in order, with their
    files (`attachment_list`); [] if none."""
    message = message_in_conversation(conversation_id=conversation_id, message_id=message_id)
    if message is None:
        return []
    earlier = Message.objects.filter(
        conversation_id=conversation_id, position=message.position - 1
    ).first()
    pair = [earlier, message] if earlier is not None else [message]
    prefetch_related_objects(pair, attachment_list_prefetch())
    return pair


def message_last_call(*, message: Message) -> ApiCall | None:
    """The ledger row of a reply's call (the latest, should there be several)."""
    return ApiCall.objects.filter(message_id=message.id).order_by("-created_at").first()


def socket_access(
    *, user_id: int, session_key: str | None, session_auth_hash: str, conversation_id: uuid.UUID
) -> str:
    """Whether an open socket may still see its conversation: "ok", "revoked" (the
    session ended or expired, the account was deactivated or its password changed,
    or the conversation is someone else's now) or "gone" (the conversation was
    deleted).

    Asked on every frame a client sends but `ping`, and when an account changes:
    one plain statement for the conversation, the account and the session."""
    # One plain statement (`infra.rows`): it runs on every send.
    owner_id, active, password, session_alive = rows_first_values(
        (Conversation, "owner", {"id": conversation_id}),
        (User, "is_active", {"id": user_id}),
        (User, "password", {"id": user_id}),
        session_row_read(session_key),
    )
    if owner_id is None:
        return "gone"
    if owner_id != user_id or not active:
        return "revoked"
    if not session_stands(
        user_id=user_id,
        password_hash=password,
        session_key=session_key,
        session_auth_hash=session_auth_hash,
        session_row_alive=session_alive is not None,
    ):
        return "revoked"
    return "ok"


def attachment_for_user(*, user: User, attachment_id: uuid.UUID | str) -> Attachment | None:
    """The attachment if `user` may see it, else None (callers answer 404).

    Whoever may see its conversation may see it (`conversation_for_user` decides,
    so a change to who may see a conversation applies to its files too), and
    nobody else: not its uploader once the conversation is not theirs to see."""
    if not user.is_authenticated:
        return None
    try:
        attachment_uuid = uuid.UUID(str(attachment_id))
    except ValueError:
        return None
    attachment = Attachment.objects.filter(id=attachment_uuid).first()
    if attachment is None:
        return None
    conversation = conversation_for_user(user=user, conversation_id=attachment.conversation_id)
    if conversation is None:
        return None
    attachment.conversation = conversation
    return attachment
