"""Business logic on conversations and messages: plain, typed functions.

Views, the websocket consumer and Celery tasks call these; they never touch the
network. Events about the rows they change go to the conversation's sockets
once the transaction commits (`broadcast_after_commit`), whoever called them.
Running a reply lives in `conversations/streaming/runner.py`.
"""

from __future__ import annotations

import dataclasses
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
from django.utils.formats import number_format
from django.utils.translation import gettext

from accounts.models import Team, User
from accounts.services import user_primary_team
from accounts.teams import team_is_member
from claude.catalog import model_info
from claude.client import claude_provider_name
from claude.errors import INTERRUPTED_CODE, INTERRUPTED_MESSAGE
from claude.providers import model_offered
from claude.stream import ChatRequest
from conversations import context, selectors, tree
from conversations.attachments import blocks
from conversations.models import Attachment, Conversation, Message, Preset
from conversations.rendering import markdown_to_plain_text
from conversations.streaming.frames import (
    attachment_updated,
    branch_switched,
    conversation_updated,
    message_created,
    message_deleted,
)
from conversations.streaming.publisher import broadcast_after_commit
from infra.rows import rows_insert, rows_select, rows_update
from usage import budgets, estimates
from usage.models import ApiCall

TITLE_MAX_CHARS = 60


class ChatInputError(Exception):
    """Input a person can correct; `message` is shown to them as is (translated when
    raised: the request's or the socket's language)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


def _model_unavailable(label: str) -> str:
    return gettext("%(model)s is not offered on %(provider)s here. Pick another model.") % {
        "model": label,
        "provider": claude_provider_name(),
    }


class ConversationGone(ChatInputError):
    """The conversation was deleted while a socket still had it open."""

    def __init__(self) -> None:
        super().__init__("conversation_deleted", gettext("This conversation was deleted."))


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
    # A continued answer: what it already said (the request's prefill), its
    # thinking and its blocks; the new text is written on after them.
    prefill_text: str = ""
    prefill_thinking: str = ""
    prefill_content: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # A long branch on a model without compaction: the summary to write first.
    condense: context.CondensePlan | None = None


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
    *,
    owner: User,
    model: str,
    system_prompt: str = "",
    thinking_effort: str = "",
    team: Team | None = None,
    preset: Preset | None = None,
) -> Conversation:
    """Start an empty conversation in `team` (one the owner is in; by default their
    oldest), billed to it. From a `preset` of that team, the model, system prompt
    and thinking are the preset's, and the conversation remembers which it was."""
    if team is not None and not team_is_member(user_id=owner.pk, team_id=team.pk):
        raise ChatInputError("not_member", gettext("You are not a member of that team."))
    team = team if team is not None else user_primary_team(user=owner)
    if preset is not None:
        if team is None or preset.team_id != team.pk:
            raise ChatInputError("unknown_preset", gettext("That preset is not one of your team's."))
        model, system_prompt, thinking_effort = (
            preset.model,
            preset.system_prompt,
            preset.thinking_effort,
        )
    if model_info(model) is None:
        raise ChatInputError(
            "unknown_model", gettext("Unknown model %(model)s.") % {"model": repr(model)}
        )
    if not model_offered(model):
        raise ChatInputError(
            "model_unavailable",
            _model_unavailable(model_info(model).label),
        )
    if thinking_effort not in Conversation.ThinkingEffort.values:
        raise ChatInputError(
            "bad_effort",
            gettext("Unknown thinking effort %(effort)s.") % {"effort": repr(thinking_effort)},
        )
    if model_info(model).thinking == "none":
        thinking_effort = ""
    return Conversation.objects.create(
        owner=owner,
        team=team,
        model=model,
        system_prompt=system_prompt.strip(),
        thinking_effort=thinking_effort,
        preset=preset,
        preset_name=preset.name if preset is not None else "",
    )


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    """Set a title; an empty one is refused."""
    title = " ".join(title.split())[:200]
    if not title:
        raise ChatInputError("empty_title", gettext("A title cannot be empty."))
    with transaction.atomic():
        conversation.title = title
        conversation.save(update_fields=["title", "updated_at"])
        broadcast_after_commit(conversation.pk, conversation_updated(conversation))
    return conversation


def conversation_start(
    *,
    owner: User,
    model: str,
    system_prompt: str = "",
    thinking_effort: str = "",
    team: Team | None = None,
    preset: Preset | None = None,
) -> Conversation:
    """What the empty chat page's form does: `conversation_create`, refused when
    the budget it would be billed to is used up (a conversation nobody can send
    in would only sit empty in the sidebar)."""
    status = new_conversation_budget(user=owner, team=team)
    if status.level == "exceeded":
        raise ChatInputError("budget_exceeded", status.as_frame()["message"])
    return conversation_create(
        owner=owner,
        model=model,
        system_prompt=system_prompt,
        thinking_effort=thinking_effort,
        team=team,
        preset=preset,
    )


def conversation_pin(*, conversation: Conversation, pinned: bool) -> Conversation:
    """Pin a conversation to the top of the sidebar, or unpin it. Its place among
    the others (`updated_at`) does not change."""
    conversation.pinned_at = timezone.now() if pinned else None
    Conversation.objects.filter(pk=conversation.pk).update(pinned_at=conversation.pinned_at)
    return conversation


def new_conversation_budget(*, user: User, team: Team | None = None) -> budgets.BudgetStatus:
    """Where the budget a new conversation of `user` in `team` (by default their
    oldest) would be billed to stands: what the empty chat page says before
    anyone types."""
    team = team if team is not None else user_primary_team(user=user)
    return budgets.budget_status(user_id=user.pk, team_id=team.pk if team else None)


def conversation_settings_update(
    *, conversation: Conversation, model: str, system_prompt: str, thinking_effort: str
) -> Conversation:
    """Change the model, system prompt or thinking of a conversation at any point:
    the next answer uses them (each answer keeps the model that wrote it)."""
    info = model_info(model)
    if info is None:
        raise ChatInputError(
            "unknown_model", gettext("Unknown model %(model)s.") % {"model": repr(model)}
        )
    if not model_offered(model):
        raise ChatInputError(
            "model_unavailable",
            _model_unavailable(info.label),
        )
    if thinking_effort not in Conversation.ThinkingEffort.values:
        raise ChatInputError(
            "bad_effort",
            gettext("Unknown thinking effort %(effort)s.") % {"effort": repr(thinking_effort)},
        )
    if info.thinking == "none":
        thinking_effort = ""
    with transaction.atomic():
        conversation.model = info.id
        conversation.system_prompt = system_prompt.strip()
        conversation.thinking_effort = thinking_effort
        conversation.save(
            update_fields=["model", "system_prompt", "thinking_effort", "updated_at"]
        )
        # The conversation's other tabs show the next answer's model too.
        broadcast_after_commit(conversation.pk, conversation_updated(conversation))
    return conversation


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
        return first_line or gettext("New conversation")
    cut = first_line[:TITLE_MAX_CHARS].rsplit(" ", 1)[0]
    return f"{cut or first_line[:TITLE_MAX_CHARS]}…"


# What a send reads of each earlier message: enough for the request's history,
# the branches, the busy and resend checks, the next position and the cost estimate.
_HISTORY_FIELDS = (
    "id",
    "conversation_id",
    "parent",
    "position",
    "role",
    "status",
    "content",
    "text",
    "summary",
    "client_id",
    "created_at",
    "selected_at",
)


def _conversation_messages(conversation: Conversation) -> list[Message]:
    """Every message of the conversation, of every branch."""
    return rows_select(
        Message, _HISTORY_FIELDS, where={"conversation_id": conversation.id}, order_by="position"
    )


def _messages_for_history(conversation: Conversation) -> list[Message]:
    """The branch on show, first message first: exactly what the next request sends."""
    return tree.Tree.of(_conversation_messages(conversation)).active_path(
        conversation.active_leaf_id
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
    "active_leaf",
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
        else:
            # A compaction block goes back as it came (the API ignores what is
            # before it), then the answer's text.
            content = [
                {k: v for k, v in block.items() if k in _COMPACTION_KEYS}
                for block in message.content or ()
                if isinstance(block, dict) and block.get("type") == "compaction"
            ]
            if message.text.strip():
                content.append({"type": "text", "text": message.text})
            if not content:
                continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"].extend(content)
        else:
            turns.append({"role": message.role, "content": content})
    return turns


_COMPACTION_KEYS = ("type", "content", "encrypted_content", "signature", "tool_changes")


def _branch_request(
    conversation: Conversation,
    history: Sequence[Message],
    files_of: Mapping[uuid.UUID, Sequence[Attachment]],
    *,
    model: str = "",
    tail: Sequence[dict[str, Any]] = (),
) -> tuple[ChatRequest, context.CondensePlan | None]:
    """The request for an answer after `history` (the branch, oldest first), and
    the summary to write first if the branch has grown too long for a model
    without compaction (conversations/context.py). `tail`: turns after the
    history (a continued answer's prefill)."""
    model = model or conversation.model
    info = model_info(model)
    compacting = info is not None and info.compaction
    # A model without compaction (switched to after one) reads a compaction as a summary.
    cut = context.summarised_before(history, compaction_too=not compacting)
    rest = list(history[cut + 1 :])
    base_system = conversation.system_prompt
    system = context.system_with_summary(
        base_system, context.summary_of(history[cut]) if cut >= 0 else ""
    )
    request = ChatRequest(
        model=model,
        system=system,
        thinking_effort=conversation.thinking_effort,
        messages=[*api_turns(rest, attachments=files_of), *tail],
        max_tokens=settings.CLAUDE_MAX_TOKENS,
    )
    threshold = context.condense_threshold(info)
    files_tokens = {
        key: sum(blocks.attachment_tokens(a) for a in files) for key, files in files_of.items()
    }
    estimate = context.prompt_estimate(system, rest, files_tokens)
    if compacting:
        # The API decides when: from half-way there, every request says where (and
        # always once a compaction block goes back, which needs the beta).
        if estimate * 2 >= threshold or context.has_compaction(rest):
            request = dataclasses.replace(request, compact_at=threshold)
        return request, None
    older = rest[:-1]
    if (
        estimate < threshold
        or tail
        or not older
        or older[-1].role != Message.Role.ASSISTANT
        or not older[-1].text.strip()
    ):
        return request, None
    summary_request = ChatRequest(
        model=model,
        system=system,
        messages=[
            *api_turns(older, attachments=files_of),
            {"role": "user", "content": [{"type": "text", "text": context.SUMMARY_INSTRUCTION}]},
        ],
        max_tokens=context.SUMMARY_MAX_TOKENS,
    )
    answer_request = dataclasses.replace(
        request, messages=api_turns(rest[-1:], attachments=files_of)
    )
    plan = context.CondensePlan(
        message_id=older[-1].id,
        summary_request=summary_request,
        answer_request=answer_request,
        base_system=base_system,
    )
    return request, plan


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
    request, _ = _branch_request(
        conversation, [*_messages_for_history(conversation), draft], files_of
    )
    return request


def draft_tokens_local_estimate(
    *, conversation: Conversation, text: str, attachment_ids: Collection[uuid.UUID] = ()
) -> int:
    """The next message's prompt counted here, without the API, where the provider
    has no token counting (Bedrock): the same conservative count a budget hold
    uses (the last call's reported prompt and answer, the text since at three
    characters a token, each file at its recorded cost). It errs high."""
    stored = blocks.conversation_attachments(conversation.id)
    files_of = blocks.attachments_by_message(stored)
    draft_files = blocks.draft_attachments(
        available=stored, ids=attachment_ids, author_id=conversation.owner_id
    )
    history = _messages_for_history(conversation)
    _attachment_tokens_noted(history, files_of)
    return estimates.call_prompt_tokens_estimate(
        conversation_id=conversation.id,
        system_prompt=conversation.system_prompt,
        messages=history,
        new_text=text,
        new_attachment_tokens=sum(blocks.attachment_tokens(a) for a in draft_files),
    )


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
        raise ChatInputError("empty_message", gettext("Type a message first."))
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatInputError(
            "message_too_long",
            gettext(
                "That message is %(length)s characters; the limit is %(limit)s. "
                "Shorten it or split it."
            )
            % {
                "length": number_format(len(text), force_grouping=True),
                "limit": number_format(settings.CHAT_MAX_MESSAGE_CHARS, force_grouping=True),
            },
        )
    conversation = _conversation_locked(conversation)
    if conversation.owner_id != author.pk:  # given to someone else since it was opened
        raise ChatInputError("not_found", gettext("This conversation is no longer yours."))
    # One read serves every check below and the request itself (the generator
    # sends the whole history anyway).
    stored = _conversation_messages(conversation)
    if client_id:
        sent = next((m for m in stored if m.client_id == client_id), None)
        if sent is not None:
            pair = message_pair(sent)
            if len(pair) == 2:
                return SendResult(pair[0], pair[1], created=False)
    _not_busy(stored)
    history = tree.Tree.of(stored).active_path(conversation.active_leaf_id)
    return _user_message_store(
        conversation=conversation,
        author=author,
        text=text,
        client_id=client_id,
        attachment_ids=attachment_ids,
        history=history,
    )


def message_pair(sent: Message) -> list[Message]:
    """A user message and the reply stored with it (its first answer), with their files."""
    return list(
        Message.objects.filter(Q(id=sent.id) | Q(parent_id=sent.id, role=Message.Role.ASSISTANT))
        .order_by("position", "created_at")
        .prefetch_related(selectors.attachment_list_prefetch())
    )[:2]


def _not_busy(stored: Sequence[Message]) -> None:
    """One answer at a time per conversation, whichever branch it is on."""
    if any(m.status in Message.ACTIVE_STATUSES for m in stored):
        raise ChatInputError(
            "generation_in_progress", gettext("Claude is still answering. Wait for it or press Stop.")
        )


def _user_message_store(
    *,
    conversation: Conversation,
    author: User,
    text: str,
    client_id: str,
    attachment_ids: Collection[uuid.UUID],
    history: list[Message],
    files_again: Sequence[Attachment] = (),
) -> SendResult:
    """Store a user message after `history` (the branch it continues: the one on
    show for a send, the edited message's parent's for an edit) and its streaming
    reply; the reply's end becomes the branch on show. Under the conversation's lock."""
    # One read of the conversation's files serves the checks and the history's blocks.
    stored_files = blocks.conversation_attachments(conversation.id)
    files_of = blocks.attachments_by_message(stored_files)
    files = _attachments_for_send(
        conversation=conversation, author=author, text=text, history=history,
        stored=stored_files, files_of=files_of, ids=attachment_ids,
    )
    if files_again:
        # An edited message keeps its files: the same stored files, a row of its own.
        files = [_attachment_copy(a) for a in files_again]
    position = history[-1].position + 1 if history else 0
    parent_id = history[-1].id if history else None
    user_message = Message(
        conversation=conversation,
        parent_id=parent_id,
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
    request, condense = _branch_request(conversation, [*history, user_message], files_of)
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
    now = timezone.now()
    user_message.selected_at = now
    assistant_message = Message(
        conversation=conversation,
        parent_id=user_message.id,
        position=position + 1,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        heartbeat_at=now,
        selected_at=now,
        model=conversation.model,
    )
    try:
        rows_insert(user_message, assistant_message)
    except IntegrityError as exc:
        raise ChatInputError("duplicate", gettext("That message was already sent.")) from exc
    if files_again:
        for copy in files:
            copy.message_id = user_message.id
        Attachment.objects.bulk_create(files)
    else:
        try:
            blocks.attachments_link(files=files, message_id=user_message.id, author_id=author.pk)
        except blocks.AttachmentRefused as exc:  # changed since read: the send is undone
            raise ChatInputError(exc.code, exc.message) from exc
    if not conversation.title:
        conversation.title = title_from_text(text) if text else _title_from_files(files)
    conversation.updated_at = timezone.now()
    conversation.active_leaf_id = assistant_message.id
    rows_update(
        Conversation,
        {
            "title": conversation.title,
            "updated_at": conversation.updated_at,
            "active_leaf": assistant_message.id,
        },
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
        condense=condense,
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


def _attachment_copy(attachment: Attachment) -> Attachment:
    """The same checked file for another version of its message. Only a whole
    conversation's delete removes a sent message's files, so the copies and the
    original go together."""
    copy = Attachment(
        **{
            f.attname: getattr(attachment, f.attname)
            for f in Attachment._meta.concrete_fields
            if f.attname not in ("id", "message_id", "created_at", "updated_at")
        }
    )
    return copy


def _title_from_files(files: Sequence[Attachment]) -> str:
    """A sidebar title for a first message of files only: their names."""
    names = ", ".join(a.name for a in files)
    return title_from_text(names) if names else gettext("New conversation")


def _reply_store(
    *,
    conversation: Conversation,
    history: list[Message],
    model: str = "",
    prefill: Message | None = None,
) -> tuple[Message, ReplyJob]:
    """Store a streaming answer to the last message of `history` (a user message),
    make it the end of the branch on show, and hold its worst case. With
    `prefill` (an answer cut off at the length limit), the new answer starts as
    that one's text and the request asks Claude to continue it."""
    now = timezone.now()
    parent = history[-1]
    reply = Message(
        conversation=conversation,
        parent_id=parent.id,
        position=parent.position + 1,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        heartbeat_at=now,
        selected_at=now,
        model=model or conversation.model,
    )
    files_of = blocks.attachments_by_message(blocks.conversation_attachments(conversation.id))
    tail = []
    prefix = ""
    if prefill is not None:
        # The API refuses a final assistant turn that ends in white space.
        prefix = prefill.text.rstrip()
        reply.text = prefix
        reply.thinking = prefill.thinking
        tail.append({"role": "assistant", "content": [{"type": "text", "text": prefix}]})
    rows_insert(reply)
    conversation.active_leaf_id = reply.id
    conversation.updated_at = now
    rows_update(
        Conversation,
        {"active_leaf": reply.id, "updated_at": now},
        where={"id": conversation.id},
    )
    request, condense = _branch_request(
        conversation, history, files_of, model=reply.model, tail=tail
    )
    if prefill is not None and request.thinking_effort:
        # A continuation writes on from the answer's text: no new thinking first.
        request = dataclasses.replace(request, thinking_effort="")
    _attachment_tokens_noted(history, files_of)
    # A new call: it holds its worst case like a new message (the files of
    # messages the last call did not report on included).
    hold = _budget_hold(
        conversation=conversation,
        reply=reply,
        amount=estimates.call_worst_case_usd(
            model=reply.model,
            conversation_id=conversation.id,
            system_prompt=conversation.system_prompt,
            messages=history,
            new_text=prefix,
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
        prefill_text=prefix,
        prefill_thinking=reply.thinking,
        prefill_content=list(prefill.content) if prefill is not None else [],
        condense=condense,
    )
    return reply, job


def _branch_broadcast(conversation: Conversation, from_position: int) -> None:
    """Every tab shows the branch now on show, from `from_position` down."""
    conversation.refresh_from_db(fields=["active_leaf"])
    messages = selectors.message_list_for_page(
        conversation=conversation, from_position=from_position
    )
    broadcast_after_commit(
        conversation.id,
        branch_switched(
            leaf_id=conversation.active_leaf_id, from_position=from_position, messages=messages
        ),
    )


def _path_message(
    history: Sequence[Message], message_id: uuid.UUID, role: str
) -> tuple[int, Message]:
    """A message of the branch on show by id, and its index in it, or ChatInputError."""
    for index, message in enumerate(history):
        if message.id == message_id and message.role == role:
            return index, message
    raise ChatInputError("not_found", gettext("That message is not on the branch on show."))


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
        raise ChatInputError("not_retryable", gettext("Only the last reply can be retried."))
    if last.status not in retryable:
        raise ChatInputError("not_retryable", gettext("This reply cannot be retried."))
    Message.objects.filter(id=last.id).delete()
    reply, job = _reply_store(conversation=conversation, history=history)
    broadcast_after_commit(conversation.id, message_deleted(message_id))
    broadcast_after_commit(conversation.id, message_created(reply), reply_id=reply.id)
    return message_id, reply, job


@transaction.atomic
def message_regenerate(*, conversation: Conversation, message_id: uuid.UUID) -> tuple[Message, ReplyJob]:
    """A new version of a finished answer on the branch on show: a sibling of it
    (same question, same history before it), streaming, now on show. The old
    version and everything below it stay, one arrow away."""
    conversation = _conversation_locked(conversation)
    stored = _conversation_messages(conversation)
    _not_busy(stored)
    history = tree.Tree.of(stored).active_path(conversation.active_leaf_id)
    index, answer = _path_message(history, message_id, Message.Role.ASSISTANT)
    reply, job = _reply_store(conversation=conversation, history=history[:index])
    _branch_broadcast(conversation, answer.position)
    broadcast_after_commit(conversation.id, message_created(reply), reply_id=reply.id)
    return reply, job


@transaction.atomic
def message_edit(
    *,
    conversation: Conversation,
    author: User,
    message_id: uuid.UUID,
    text: str,
    client_id: str = "",
) -> SendResult:
    """Send an edited version of a user message of the branch on show: a sibling
    of it (same history before it) with a new answer, now on show. The old
    version keeps its answers and its branch below. Its files go with it."""
    text = text.strip()
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatInputError(
            "message_too_long",
            gettext(
                "That message is %(length)s characters; the limit is %(limit)s. "
                "Shorten it or split it."
            )
            % {
                "length": number_format(len(text), force_grouping=True),
                "limit": number_format(settings.CHAT_MAX_MESSAGE_CHARS, force_grouping=True),
            },
        )
    conversation = _conversation_locked(conversation)
    if conversation.owner_id != author.pk:
        raise ChatInputError("not_found", gettext("This conversation is no longer yours."))
    stored = _conversation_messages(conversation)
    if client_id:
        sent = next((m for m in stored if m.client_id == client_id), None)
        if sent is not None:
            pair = message_pair(sent)
            if len(pair) == 2:
                return SendResult(pair[0], pair[1], created=False)
    _not_busy(stored)
    history = tree.Tree.of(stored).active_path(conversation.active_leaf_id)
    index, original = _path_message(history, message_id, Message.Role.USER)
    files = list(Attachment.objects.filter(message_id=original.id).order_by("created_at", "id"))
    if not text and not files:
        raise ChatInputError("empty_message", gettext("Type a message first."))
    result = _user_message_store(
        conversation=conversation,
        author=author,
        text=text,
        client_id=client_id,
        attachment_ids=(),
        history=history[:index],
        files_again=files,
    )
    _branch_broadcast(conversation, original.position)
    return result


@transaction.atomic
def branch_switch(*, conversation: Conversation, message_id: uuid.UUID) -> uuid.UUID:
    """Show the branch through `message_id` (a version of a message on show), down
    to the leaf last on show below it. Returns the new leaf's id."""
    conversation = _conversation_locked(conversation)
    stored = _conversation_messages(conversation)
    _not_busy(stored)
    branches = tree.Tree.of(stored)
    target = branches.by_id.get(message_id)
    if target is None:
        raise ChatInputError("not_found", gettext("No such message in this conversation."))
    leaf_id = branches.leaf_below(target.id)
    now = timezone.now()
    path_ids = [m.id for m in branches.path_to(leaf_id)]
    Message.objects.filter(id__in=path_ids).update(selected_at=now)
    Conversation.objects.filter(id=conversation.id).update(active_leaf_id=leaf_id)
    _branch_broadcast(conversation, target.position)
    return leaf_id


@transaction.atomic
def message_continue(
    *, conversation: Conversation, message_id: uuid.UUID
) -> tuple[uuid.UUID, Message, ReplyJob]:
    """Continue an answer cut off at the length limit (the last of the branch on
    show): Claude is sent its text as the start of its own turn and writes on.
    The continued answer replaces it, with its text so far and its calls (so
    its cost stays whole); returns the replaced id, the answer and its job."""
    conversation = _conversation_locked(conversation)
    stored = _conversation_messages(conversation)
    _not_busy(stored)
    history = tree.Tree.of(stored).active_path(conversation.active_leaf_id)
    last = history[-1] if history else None
    if last is None or last.id != message_id or last.role != Message.Role.ASSISTANT:
        raise ChatInputError("not_continuable", gettext("Only the last answer can be continued."))
    cut = Message.objects.get(id=last.id)
    if cut.stop_reason != "max_tokens" or cut.status != Message.Status.COMPLETE or not cut.text:
        raise ChatInputError("not_continuable", gettext("Only an answer cut off at the length limit can be continued."))
    reply, job = _reply_store(
        conversation=conversation, history=history[:-1], model=cut.model, prefill=cut
    )
    ApiCall.objects.filter(message_id=cut.id).update(message_id=reply.id)
    Message.objects.filter(id=cut.id).delete()
    broadcast_after_commit(conversation.id, message_deleted(cut.id))
    _branch_broadcast(conversation, reply.position)
    broadcast_after_commit(conversation.id, message_created(reply), reply_id=reply.id)
    return cut.id, reply, job


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
