"""Business logic on conversations and messages: plain, typed functions.

Views, the websocket consumer and Celery tasks call these; they never touch the
network. Events about the rows they change go to the conversation's sockets
once the transaction commits (`broadcast_after_commit`), whoever called them.
Running a reply lives in `conversations/streaming/runner.py`.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.services import user_primary_team
from claude.catalog import model_info
from claude.errors import INTERRUPTED_CODE, INTERRUPTED_MESSAGE
from claude.stream import ChatRequest
from conversations import selectors
from conversations.attachments import blocks
from conversations.models import Attachment, Conversation, Message
from conversations.rendering import markdown_to_plain_text
from conversations.streaming.frames import (
    attachment_updated,
    conversation_updated,
    message_created,
    message_deleted,
)
from conversations.streaming.publisher import broadcast_after_commit
from infra.rows import rows_insert, rows_select, rows_update
from usage import budgets, estimates

TITLE_MAX_CHARS = 60


class ChatInputError(Exception):
    """Input a person can correct; `message` is shown to them as is."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


class ConversationGone(ChatInputError):
    """The conversation was deleted while a socket still had it open."""

    def __init__(self) -> None:
        super().__init__("conversation_deleted", "This conversation was deleted.")


@dataclass(frozen=True)
class ReplyJob:
    """All that streaming one reply needs, read in the transaction that stored the
    reply, so the generator starts without another trip to the database."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID
    owner_id: int
    team_id: int | None
    request: ChatRequest
    # The budget hold taken for this call; settled when the reply is final.
    reservation_id: uuid.UUID | None
    # A budget applies to the owner: they are told where it stands after the reply.
    budget_limited: bool = False


@dataclass(frozen=True)
class SendResult:
    user_message: Message
    assistant_message: Message
    # False when the client id was seen before: nothing new was stored.
    created: bool
    conversation_title: str = ""
    # The reply to generate; None for a resend.
    job: ReplyJob | None = None


def conversation_create(
    *, owner: User, model: str, system_prompt: str = "", thinking_effort: str = ""
) -> Conversation:
    """Start an empty conversation, billed to the owner's team."""
    if model_info(model) is None:
        raise ChatInputError("unknown_model", f"Unknown model {model!r}.")
    if thinking_effort not in Conversation.ThinkingEffort.values:
        raise ChatInputError("bad_effort", f"Unknown thinking effort {thinking_effort!r}.")
    if model_info(model).thinking == "none":
        thinking_effort = ""
    return Conversation.objects.create(
        owner=owner,
        team=user_primary_team(user=owner),
        model=model,
        system_prompt=system_prompt.strip(),
        thinking_effort=thinking_effort,
    )


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    """Set a title; an empty one is refused."""
    title = " ".join(title.split())[:200]
    if not title:
        raise ChatInputError("empty_title", "A title cannot be empty.")
    with transaction.atomic():
        conversation.title = title
        conversation.save(update_fields=["title", "updated_at"])
        broadcast_after_commit(conversation.pk, conversation_updated(conversation))
    return conversation


def conversation_start(
    *, owner: User, model: str, system_prompt: str = "", thinking_effort: str = ""
) -> Conversation:
    """What the empty chat page's form does: `conversation_create`, refused when
    the budget it would be billed to is used up (a conversation nobody can send
    in would only sit empty in the sidebar)."""
    status = new_conversation_budget(user=owner)
    if status.level == "exceeded":
        raise ChatInputError("budget_exceeded", status.as_frame()["message"])
    return conversation_create(
        owner=owner, model=model, system_prompt=system_prompt, thinking_effort=thinking_effort
    )


def conversation_pin(*, conversation: Conversation, pinned: bool) -> Conversation:
    """Pin a conversation to the top of the sidebar, or unpin it. Its place among
    the others (`updated_at`) does not change."""
    conversation.pinned_at = timezone.now() if pinned else None
    Conversation.objects.filter(pk=conversation.pk).update(pinned_at=conversation.pinned_at)
    return conversation


def new_conversation_budget(*, user: User) -> budgets.BudgetStatus:
    """Where the budget a new conversation of `user` would be billed to stands:
    what the empty chat page says before anyone types."""
    team = user_primary_team(user=user)
    return budgets.budget_status(user_id=user.pk, team_id=team.pk if team else None)


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete a conversation and its messages. Its API calls (the ledger) stay.
    Its open sockets are told and closed (`conversations.signals`, which also
    sees deletes made in the admin)."""
    conversation.delete()


# The offline fake's control directive (docs/fake-claude.md) is no part of a title.
_FAKE_DIRECTIVE = re.compile(r"\[\[fake\b[^\]]*\]\]")


def title_from_text(text: str) -> str:
    """A sidebar title from the first message: its first line without Markdown's
    marks (a title shows no `#`, `**` or backticks), cut at a word."""
    text = _FAKE_DIRECTIVE.sub("", text)
    first_line = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    # A line of only marks (a code fence's ```) keeps its own text.
    first_line = markdown_to_plain_text(first_line) or first_line
    if len(first_line) <= TITLE_MAX_CHARS:
        return first_line or "New conversation"
    cut = first_line[:TITLE_MAX_CHARS].rsplit(" ", 1)[0]
    return f"{cut or first_line[:TITLE_MAX_CHARS]}…"


# What a send reads of each earlier message: enough for the request's history,
# the busy and resend checks, the next position and the cost estimate.
_HISTORY_FIELDS = (
    "id",
    "conversation_id",
    "position",
    "role",
    "status",
    "content",
    "text",
    "client_id",
    "created_at",
)


def _messages_for_history(conversation: Conversation) -> list[Message]:
    return rows_select(
        Message, _HISTORY_FIELDS, where={"conversation_id": conversation.id}, order_by="position"
    )


# What a send or retry reads of the conversation itself.
_CONVERSATION_FIELDS = (
    "id",
    "owner",
    "team",
    "title",
    "model",
    "system_prompt",
    "thinking_effort",
    "updated_at",
)


def _conversation_locked(conversation: Conversation) -> Conversation:
    """The conversation as stored, locked until the transaction ends: two tabs
    sending at once must not both get a reply slot or the same position."""
    found = rows_select(
        Conversation, _CONVERSATION_FIELDS, where={"id": conversation.pk}, for_update=True
    )
    if not found:
        raise ConversationGone
    return found[0]


# A user message whose files were all deleted since, and that had no text: the
# API takes no empty turn, and dropping it would leave Claude's answer to it hanging.
FILES_REMOVED_TEXT = "(The files of this message were removed.)"


def api_turns(
    messages: Iterable[Message],
    *,
    attachments: Mapping[uuid.UUID, Sequence[Attachment]] | None = None,
) -> list[dict[str, Any]]:
    """Messages in the API's multi-turn shape: alternating roles, full history.

    A user message's files (`attachments`: by message id, as
    `blocks.attachments_by_message` groups them) come first, then its text, as
    claude.ai sends them; their bytes are read from storage here. Replies with
    no text (failed before a token) are skipped; consecutive turns of one role
    are merged, as the API itself would.
    """
    files_of = attachments or {}
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == Message.Role.USER:
            content = [blocks.attachment_block(a) for a in files_of.get(message.id, ())]
            content.extend(
                message.content
                or ([{"type": "text", "text": message.text}] if message.text else [])
            )
            if not content:
                content = [{"type": "text", "text": FILES_REMOVED_TEXT}]
        elif message.text.strip():
            content = [{"type": "text", "text": message.text}]
        else:
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"].extend(content)
        else:
            turns.append({"role": message.role, "content": content})
    return turns


def _chat_request(conversation: Conversation, turns: list[dict[str, Any]]) -> ChatRequest:
    return ChatRequest(
        model=conversation.model,
        system=conversation.system_prompt,
        thinking_effort=conversation.thinking_effort,
        messages=turns,
        max_tokens=settings.CLAUDE_MAX_TOKENS,
    )


def chat_request_for_draft(
    *, conversation: Conversation, text: str, attachment_ids: Collection[uuid.UUID] = ()
) -> ChatRequest:
    """The request the next message would make, with `text` and the files
    `attachment_ids` as that message: what the composer's estimate counts (the
    same history, its files, system prompt and thinking). Of the draft's files
    only those a send would take are counted (the owner's, in this conversation,
    unsent and ready); the others are left out, not refused."""
    stored = blocks.conversation_attachments(conversation.id)
    files_of = blocks.attachments_by_message(stored)
    draft_files = blocks.draft_attachments(
        available=stored, ids=attachment_ids, author_id=conversation.owner_id
    )
    draft = Message(role=Message.Role.USER, text=text, content=[])
    if text:
        draft.content = [{"type": "text", "text": text}]
    files_of[draft.id] = draft_files
    turns = api_turns([*_messages_for_history(conversation), draft], attachments=files_of)
    return _chat_request(conversation, turns)


def _attachment_tokens_noted(
    history: Sequence[Message], files_of: Mapping[uuid.UUID, Sequence[Attachment]]
) -> None:
    """Note on each message what its files cost (`attachment_tokens`): the budget
    estimate counts them for messages the last call's usage does not cover."""
    for message in history:
        message.attachment_tokens = sum(
            blocks.attachment_tokens(a) for a in files_of.get(message.id, ())
        )


@transaction.atomic
def message_send(
    *,
    conversation: Conversation,
    author: User,
    text: str,
    client_id: str = "",
    attachment_ids: Collection[uuid.UUID] = (),
) -> SendResult:
    """Store the user's message and the assistant's reply (streaming, empty) in one
    transaction, and hold the reply's worst-case cost against the budgets.

    `attachment_ids`: files the author uploaded into this conversation, ready and
    not sent yet; they become the message's (with no text, they are the whole
    message, as on claude.ai). Any other id is refused, all alike
    (`blocks.attachments_for_send`), as is a request over the API's limits.

    The caller starts `result.job` after this returns (the transaction has then
    committed, and the conversation's sockets have the two `message.created`,
    then an `attachment.updated` for each file). A repeated `client_id` returns
    the stored pair, unchanged, and tells no one.
    """
    text = text.strip()
    if not text and not attachment_ids:
        raise ChatInputError("empty_message", "Type a message first.")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatInputError(
            "message_too_long",
            f"That message is {len(text):,} characters; the limit is "
            f"{settings.CHAT_MAX_MESSAGE_CHARS:,}. Shorten it or split it.",
        )
    conversation = _conversation_locked(conversation)
    if conversation.owner_id != author.pk:  # given to someone else since it was opened
        raise ChatInputError("not_found", "This conversation is no longer yours.")
    # One read serves every check below and the request itself (the generator
    # sends the whole history anyway).
    history = _messages_for_history(conversation)
    if client_id:
        sent = next((m for m in history if m.client_id == client_id), None)
        if sent is not None:
            pair = list(
                conversation.messages.filter(
                    position__in=[sent.position, sent.position + 1]
                ).prefetch_related(selectors.attachment_list_prefetch())
            )
            if len(pair) == 2:
                return SendResult(pair[0], pair[1], created=False)
    if any(m.status in Message.ACTIVE_STATUSES for m in history):
        raise ChatInputError(
            "generation_in_progress", "Claude is still answering. Wait for it or press Stop."
        )
    # One read of the conversation's files serves the checks and the history's blocks.
    stored_files = blocks.conversation_attachments(conversation.id)
    files_of = blocks.attachments_by_message(stored_files)
    files = _attachments_for_send(
        conversation=conversation, author=author, text=text, history=history,
        stored=stored_files, files_of=files_of, ids=attachment_ids,
    )
    position = history[-1].position + 1 if history else 0
    user_message = Message(
        conversation=conversation,
        position=position,
        role=Message.Role.USER,
        status=Message.Status.COMPLETE,
        content=[{"type": "text", "text": text}] if text else [],
        text=text,
        client_id=client_id,
    )
    user_message.attachment_list = files
    files_of[user_message.id] = files
    # The one request of this send: what the reply sends, and what its hold prices
    # (the files' bytes are read and encoded here, once).
    request = _chat_request(conversation, api_turns([*history, user_message], attachments=files_of))
    _attachment_tokens_noted(history, files_of)
    # Priced before the new rows exist (it reads the conversation as the API will).
    worst_case = estimates.call_worst_case_usd(
        model=conversation.model,
        conversation_id=conversation.id,
        system_prompt=conversation.system_prompt,
        messages=history,
        new_text=text,
        new_attachment_tokens=sum(blocks.attachment_tokens(a) for a in files),
        max_output_tokens=request.max_output_tokens,
    )
    # Stored as streaming: the caller starts its generator as soon as this commits
    # (a process that dies first leaves it to the reaper, as any other stream).
    assistant_message = Message(
        conversation=conversation,
        position=position + 1,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        heartbeat_at=timezone.now(),
        model=conversation.model,
    )
    try:
        rows_insert(user_message, assistant_message)
    except IntegrityError as exc:
        raise ChatInputError("duplicate", "That message was already sent.") from exc
    try:
        blocks.attachments_link(files=files, message_id=user_message.id, author_id=author.pk)
    except blocks.AttachmentRefused as exc:  # changed since read: the send is undone
        raise ChatInputError(exc.code, exc.message) from exc
    if not conversation.title:
        conversation.title = title_from_text(text) if text else _title_from_files(files)
    conversation.updated_at = timezone.now()
    rows_update(
        Conversation,
        {"title": conversation.title, "updated_at": conversation.updated_at},
        where={"id": conversation.id},
    )
    # Same transaction, last before the commit (it locks the team's budget
    # counter): a refused budget or rate limit stores nothing at all.
    hold = _budget_hold(conversation=conversation, reply=assistant_message, amount=worst_case)
    job = ReplyJob(
        message_id=assistant_message.id,
        conversation_id=conversation.id,
        owner_id=conversation.owner_id,
        team_id=conversation.team_id,
        request=request,
        reservation_id=hold.reservation.id,
        budget_limited=hold.limited,
    )
    broadcast_after_commit(conversation.id, message_created(user_message))
    broadcast_after_commit(
        conversation.id, message_created(assistant_message), reply_id=assistant_message.id
    )
    for attachment in files:  # each chip shows its file as sent, on every tab
        broadcast_after_commit(conversation.id, attachment_updated(attachment))
    if position == 0:
        # The first message titled the conversation: every sidebar shows it.
        broadcast_after_commit(conversation.id, conversation_updated(conversation))
    return SendResult(
        user_message,
        assistant_message,
        created=True,
        conversation_title=conversation.title,
        job=job,
    )


def _attachments_for_send(
    *,
    conversation: Conversation,
    author: User,
    text: str,
    history: Sequence[Message],
    stored: Sequence[Attachment],
    files_of: Mapping[uuid.UUID, Sequence[Attachment]],
    ids: Collection[uuid.UUID],
) -> list[Attachment]:
    """The new message's files, checked (`blocks`), or ChatInputError."""
    if not ids:
        return []
    try:
        files = blocks.attachments_for_send(available=stored, ids=ids, author_id=author.pk)
        blocks.request_limits_check(
            earlier=[a for sent in files_of.values() for a in sent],
            new=files,
            text_bytes=len(conversation.system_prompt.encode())
            + sum(len(m.text.encode()) for m in history)
            + len(text.encode()),
        )
    except blocks.AttachmentRefused as exc:
        raise ChatInputError(exc.code, exc.message) from exc
    return files


def _title_from_files(files: Sequence[Attachment]) -> str:
    """A sidebar title for a first message of files only: their names."""
    names = ", ".join(a.name for a in files)
    return title_from_text(names) if names else "New conversation"


@transaction.atomic
def message_retry(
    *, conversation: Conversation, message_id: uuid.UUID
) -> tuple[uuid.UUID, Message, ReplyJob]:
    """Replace the last reply (failed, stopped or interrupted) with a new, streaming one.

    Returns the id of the removed reply, the new one and its job; the caller
    starts the job.
    """
    conversation = _conversation_locked(conversation)
    history = _messages_for_history(conversation)
    last = history.pop() if history else None
    retryable = {Message.Status.ERROR, Message.Status.STOPPED, Message.Status.INTERRUPTED}
    if last is None or last.id != message_id or last.role != Message.Role.ASSISTANT:
        raise ChatInputError("not_retryable", "Only the last reply can be retried.")
    if last.status not in retryable:
        raise ChatInputError("not_retryable", "This reply cannot be retried.")
    position = last.position
    last.delete()
    reply = Message.objects.create(
        conversation=conversation,
        position=position,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        heartbeat_at=timezone.now(),
        model=conversation.model,
    )
    conversation.save(update_fields=["updated_at"])
    files_of = blocks.attachments_by_message(blocks.conversation_attachments(conversation.id))
    request = _chat_request(conversation, api_turns(history, attachments=files_of))
    _attachment_tokens_noted(history, files_of)
    # A retry is a new call: it holds its worst case like a new message (the
    # files of messages the last call did not report on included).
    hold = _budget_hold(
        conversation=conversation,
        reply=reply,
        amount=estimates.call_worst_case_usd(
            model=conversation.model,
            conversation_id=conversation.id,
            system_prompt=conversation.system_prompt,
            messages=history,
            new_text="",
            max_output_tokens=request.max_output_tokens,
        ),
    )
    job = ReplyJob(
        message_id=reply.id,
        conversation_id=conversation.id,
        owner_id=conversation.owner_id,
        team_id=conversation.team_id,
        request=request,
        reservation_id=hold.reservation.id,
        budget_limited=hold.limited,
    )
    broadcast_after_commit(conversation.id, message_deleted(message_id))
    broadcast_after_commit(conversation.id, message_created(reply), reply_id=reply.id)
    return message_id, reply, job


def _budget_hold(*, conversation: Conversation, reply: Message, amount) -> budgets.BudgetHold:
    """Reserve the reply's worst-case cost, or refuse with a message the person can act on.

    No savepoint of its own: a refusal aborts the caller's whole transaction."""
    try:
        return budgets.budget_hold_in_transaction(
            user_id=conversation.owner_id,
            team_id=conversation.team_id,
            amount=amount,
            message_id=reply.id,
        )
    except budgets.BudgetExceeded as exc:
        raise ChatInputError("budget_exceeded", exc.message) from exc
    except budgets.RateLimited as exc:
        raise ChatInputError("rate_limited", exc.message) from exc


def reply_stop_request(*, conversation: Conversation, message_id: uuid.UUID) -> bool:
    """Record that the reply should stop; the generator (in any process) acts on it.

    Returns False when the reply is not running (already finished, or not here).
    """
    updated = Message.objects.filter(
        id=message_id,
        conversation=conversation,
        conversation__owner=conversation.owner,
        status__in=Message.ACTIVE_STATUSES,
        stop_requested_at__isnull=True,
    ).update(stop_requested_at=timezone.now())
    return updated == 1


def generation_reap(*, older_than: dt.timedelta | None = None) -> int:
    """Mark replies whose generator died (no heartbeat for a while) as interrupted.

    One atomic UPDATE, guarded by status, so a live generator that finishes at the
    same moment wins and nothing is finalised twice. The checkpointed text stays.
    """
    age = older_than or dt.timedelta(seconds=settings.CHAT_ORPHAN_AFTER_SECONDS)
    cutoff = timezone.now() - age
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    return (
        Message.objects.filter(status__in=Message.ACTIVE_STATUSES)
        .filter(stale)
        .update(
            status=Message.Status.INTERRUPTED,
            error_code=INTERRUPTED_CODE,
            error_message=INTERRUPTED_MESSAGE,
            heartbeat_at=None,
            updated_at=timezone.now(),
        )
    )
