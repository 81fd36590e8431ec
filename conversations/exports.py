"""A conversation out (JSON in the API's own shapes, or Markdown) and back in.

`conversation_export_json` writes what the Messages API takes: `model`,
`system`, `max_tokens` and the branch on show as `messages` (files as the
blocks Claude got), so the file can be sent to the API as it is; plus every
message of every branch (`turns`, with usage and cost per answer) and the other
branches in the same shape (`branches`). `conversation_import` reads such a
file (or any body with `model` and `messages` in the API's shape) back as a new
conversation of the importer's, checked first: a file that does not parse or
does not fit is refused whole with a reason (`ImportRefused`), never half
stored. The request's size is refused before its body is read
(`conversations.attachments.upload_gate`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from django.conf import settings
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from accounts.audit import audit_record
from accounts.models import AuditEvent, Team, User
from accounts.services import user_primary_team
from claude.catalog import model_info
from conversations import selectors, services, tree
from conversations.attachments import blocks
from conversations.attachments.uploads import AttachmentRefused
from conversations.models import Conversation, Message
from conversations.rendering import markdown_to_html
from conversations.streaming.frames import (
    condensed_text,
    error_text,
    message_usage,
    model_label,
    stop_note,
)

EXPORT_FORMAT = "teamchat.conversation"
EXPORT_VERSION = 1
# The multipart framing around the file, on top of IMPORT_MAX_BYTES.
IMPORT_OVERHEAD_BYTES = 64 * 1024
MAX_IMPORT_MESSAGES = 5000


# --- Export ------------------------------------------------------------------------


def _turn(message: Message, parent_id: uuid.UUID | None) -> dict[str, Any]:
    usage, cost_usd = message_usage(message)
    turn: dict[str, Any] = {
        "id": str(message.id),
        "parent_id": str(parent_id) if parent_id else None,
        "role": message.role,
        "status": message.status,
        "text": message.text,
        "content": message.content
        or ([{"type": "text", "text": message.text}] if message.text else []),
        "created_at": message.created_at.isoformat(),
    }
    if message.role == Message.Role.ASSISTANT:
        turn.update(
            model=message.model,
            model_label=model_label(message.model),
            stop_reason=message.stop_reason,
            usage=usage,
            cost_usd=cost_usd,
        )
        if message.error_message:
            turn["error"] = message.error_message
        if message.summary:
            turn["summary"] = message.summary
    else:
        turn["attachments"] = [
            {"name": a.name, "media_type": a.media_type, "size": a.size}
            for a in getattr(message, "attachment_list", ())
        ]
    return turn


def conversation_export_json(*, conversation: Conversation, actor: User, ip: str | None) -> dict:
    """The conversation as one JSON document (module docstring); recorded in the audit log."""
    branches = _tree(conversation)
    active = branches.active_path(conversation.active_leaf_id)
    files_of = blocks.attachments_by_message(blocks.conversation_attachments(conversation.id))
    leaves = [m for m in branches.by_id.values() if not branches.children.get(m.id)]
    other = [
        {
            "leaf_id": str(leaf.id),
            "messages": services.api_turns(branches.path_to(leaf.id), attachments=files_of),
        }
        for leaf in sorted(leaves, key=lambda m: (m.created_at, str(m.id)))
        if not active or leaf.id != active[-1].id
    ]
    turns = [
        _turn(m, branches.parent_of.get(m.id))
        for m in sorted(branches.by_id.values(), key=_tree_order)
    ]
    total = sum((Decimal(t["cost_usd"]) for t in turns if t.get("cost_usd")), Decimal(0))
    document = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "id": str(conversation.id),
        "title": conversation.title,
        "model": conversation.model,
        "model_label": model_label(conversation.model),
        "system": conversation.system_prompt,
        "thinking_effort": conversation.thinking_effort,
        "max_tokens": settings.CLAUDE_MAX_TOKENS,
        "messages": services.api_turns(active, attachments=files_of),
        "active_leaf_id": str(active[-1].id) if active else None,
        "turns": turns,
        "branches": other,
        "cost_usd": str(total),
    }
    _exported(conversation=conversation, actor=actor, ip=ip, kind="json")
    return document


def conversation_export_markdown(*, conversation: Conversation, actor: User, ip: str | None) -> str:
    """The branch on show as readable Markdown; recorded in the audit log."""
    branches = _tree(conversation)
    active = branches.active_path(conversation.active_leaf_id)
    # A document for people: its words in the reader's language (the JSON export's
    # keys are the API's shapes and stay as they are).
    lines = [f"# {conversation.title or gettext('New conversation')}", ""]
    exported = gettext("Model: %(model)s · exported %(when)s UTC") % {
        "model": model_label(conversation.model),
        "when": timezone.now().strftime("%Y-%m-%d %H:%M"),
    }
    lines.append(f"_{exported}_")
    lines.append("")
    if conversation.system_prompt:
        lines += [f"**{gettext('System prompt:')}**", "", _quoted(conversation.system_prompt), ""]
    for message in active:
        versions = len(branches.siblings(message))
        version = {"index": branches.version_of(message)[0], "count": versions}
        if message.role == Message.Role.USER:
            heading = (
                gettext("You · version %(index)s of %(count)s") % version
                if versions > 1
                else gettext("You")
            )
            lines += [f"## {heading}", ""]
            for a in getattr(message, "attachment_list", ()):
                attached = gettext("Attached: %(name)s") % {"name": a.name}
                lines.append(f"_{attached}_")
            lines += [message.text, ""]
        else:
            condensed = condensed_text(message)
            if condensed:
                marker = gettext("Earlier turns were condensed here:")
                lines += [f"> **{marker}**", _quoted(condensed), ""]
            model = {"model": model_label(message.model), **version}
            heading = (
                gettext("Claude (%(model)s) · version %(index)s of %(count)s") % model
                if versions > 1
                else gettext("Claude (%(model)s)") % model
            )
            lines += [f"## {heading}", ""]
            fallback = error_text(message.error_message) or gettext("No answer.")
            lines += [message.text or f"_{fallback}_", ""]
            note = stop_note(message)
            if note:
                lines += [f"_{note}_", ""]
    _exported(conversation=conversation, actor=actor, ip=ip, kind="markdown")
    return "\n".join(lines).rstrip() + "\n"


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _tree(conversation: Conversation) -> tree.Tree:
    return selectors.conversation_tree(conversation=conversation)


def _tree_order(message: Message) -> tuple:
    return (message.position, message.created_at, str(message.id))


def _exported(*, conversation: Conversation, actor: User, ip: str | None, kind: str) -> None:
    audit_record(
        action=AuditEvent.Action.EXPORTED,
        actor=actor,
        team=conversation.team,
        target=f"conversation:{conversation.id}",
        ip=ip,
        details={"format": kind, "title": conversation.title},
    )


# --- Import ------------------------------------------------------------------------


class ImportRefused(Exception):
    """A file that cannot be imported; `message` says why, for the person."""

    def __init__(self, message: str, http_status: int = 400) -> None:
        self.message = message
        self.http_status = http_status
        super().__init__(message)


def import_request_max_bytes() -> int:
    """The largest `POST /import/` body: the file limit plus the multipart framing."""
    return settings.IMPORT_MAX_BYTES + IMPORT_OVERHEAD_BYTES


def import_too_large(size: int | None = None) -> AttachmentRefused:
    """The 413 for an import over the limit (the upload gate's shape)."""
    limit = filesizeformat(settings.IMPORT_MAX_BYTES).replace("\xa0", " ")
    message = gettext("This file is over the %(limit)s import limit.") % {"limit": limit}
    if size is not None:
        message = gettext("This request is %(size)s; the import limit is %(limit)s.") % {
            "size": filesizeformat(size).replace("\xa0", " "),
            "limit": limit,
        }
    return AttachmentRefused("import_too_large", message, 413)


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _text_limit(text: str) -> str:
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ValueError(
            gettext("a message is over %(limit)s characters")
            % {"limit": f"{settings.CHAT_MAX_MESSAGE_CHARS:,}"}
        )
    if "\x00" in text:
        raise ValueError(gettext("a message contains a NUL character"))
    return text


class _Block(_In):
    type: str
    text: str | None = None
    content: Any = None
    encrypted_content: str | None = None


class _ApiMessage(_In):
    role: Literal["user", "assistant"]
    content: str | list[_Block]


class _Turn(_In):
    id: str
    parent_id: str | None = None
    role: Literal["user", "assistant"]
    text: str = ""
    content: list[_Block] = Field(default_factory=list)
    model: str = ""
    stop_reason: str = ""
    summary: str = ""

    @field_validator("text", "summary")
    @classmethod
    def _fits(cls, value: str) -> str:
        return _text_limit(value)


class _Document(_In):
    title: Annotated[str, Field(max_length=500)] = ""
    model: str
    system: str | list[_Block] = ""
    thinking_effort: str = ""
    messages: Annotated[list[_ApiMessage], Field(max_length=MAX_IMPORT_MESSAGES)]
    turns: Annotated[list[_Turn], Field(max_length=MAX_IMPORT_MESSAGES)] | None = None
    active_leaf_id: str | None = None


def _block_text(content: str | list[_Block]) -> str:
    if isinstance(content, str):
        return content
    return "\n\n".join(b.text for b in content if b.type == "text" and b.text)


def _fields(error: ValidationError) -> str:
    parts = []
    for err in error.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "file"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def import_document_parse(raw: bytes) -> _Document:
    """The file's document, checked, or ImportRefused with the first problems."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ImportRefused(
            gettext("This file is not UTF-8 text; export a conversation as .json.")
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise ImportRefused(
            gettext("This file is not valid JSON (%(error)s).") % {"error": exc}
        ) from exc
    if not isinstance(data, dict):
        raise ImportRefused(gettext("This file is not a conversation: expected a JSON object."))
    try:
        document = _Document.model_validate(data)
    except ValidationError as exc:
        raise ImportRefused(
            gettext("This file is not a conversation export: %(problems)s.")
            % {"problems": _fields(exc)}
        ) from exc
    if model_info(document.model) is None:
        raise ImportRefused(
            gettext("This file names an unknown model: %(model)s.")
            % {"model": repr(document.model[:100])}
        )
    if not document.messages and not document.turns:
        raise ImportRefused(gettext("This file has no messages."))
    for index, message in enumerate(document.messages):
        if index == 0 and message.role != "user":
            raise ImportRefused(gettext("messages.0: the first message must be the user's."))
        if index and message.role == document.messages[index - 1].role:
            raise ImportRefused(
                gettext("messages.%(index)s: the roles must alternate (user, assistant).")
                % {"index": index}
            )
        try:
            _text_limit(_block_text(message.content))
        except ValueError as exc:
            raise ImportRefused(f"messages.{index}: {exc}.") from exc
    if document.turns:
        ids = set()
        for index, turn in enumerate(document.turns):
            if turn.parent_id is not None and turn.parent_id not in ids:
                raise ImportRefused(
                    gettext("turns.%(index)s: its parent comes later or is missing.")
                    % {"index": index}
                )
            if turn.id in ids:
                raise ImportRefused(
                    gettext("turns.%(index)s: the id %(id)s is used twice.")
                    % {"index": index, "id": repr(turn.id[:40])}
                )
            ids.add(turn.id)
    return document


@transaction.atomic
def conversation_import(*, owner: User, raw: bytes, team: Team | None = None) -> Conversation:
    """A new conversation of `owner`'s from an export (every branch, when the file
    has `turns`; else its `messages`), in `team` (the one the person works in; by
    default their first). Files are not imported: a message that had some says
    so. ImportRefused if the file does not parse or fit."""
    if len(raw) > settings.IMPORT_MAX_BYTES:
        raise ImportRefused(import_too_large(len(raw)).message, 413)
    document = import_document_parse(raw)
    try:
        return _conversation_from(owner, document, team or user_primary_team(user=owner))
    except ValueError as exc:  # a text past the limits, found while storing
        raise ImportRefused(
            gettext("This file does not fit: %(problem)s.") % {"problem": exc}
        ) from exc


def _conversation_from(owner: User, document: _Document, team: Team | None) -> Conversation:
    info = model_info(document.model)
    effort = document.thinking_effort
    if effort not in Conversation.ThinkingEffort.values or info.thinking == "none":
        effort = ""
    system = document.system if isinstance(document.system, str) else _block_text(document.system)
    conversation = Conversation.objects.create(
        owner=owner,
        team=team,
        title=" ".join(document.title.split())[:200] or gettext("Imported conversation"),
        model=info.id,
        system_prompt=_text_limit(system)[: settings.CHAT_MAX_MESSAGE_CHARS],
        thinking_effort=effort,
    )
    now = timezone.now()
    if document.turns:
        rows, leaf = _rows_from_turns(conversation, document, info.id, now)
    else:
        rows, leaf = _rows_from_messages(conversation, document, info.id, now)
    Message.objects.bulk_create(rows)
    conversation.active_leaf_id = leaf
    conversation.save(update_fields=["active_leaf", "updated_at"])
    return conversation


def _row(
    conversation, *, parent, role, text, content, model, stop_reason, now, summary=""
) -> Message:
    compaction = [
        {k: v for k, v in block.items() if v is not None}
        for block in content
        if block.get("type") == "compaction"
    ]
    return Message(
        id=uuid.uuid4(),
        conversation=conversation,
        parent_id=parent.id if parent else None,
        position=parent.position + 1 if parent else 0,
        role=role,
        status=Message.Status.COMPLETE,
        content=[*compaction, {"type": "text", "text": text}] if text else compaction,
        text=text,
        html=markdown_to_html(text) if role == Message.Role.ASSISTANT and text else "",
        model=model if role == Message.Role.ASSISTANT else "",
        stop_reason=stop_reason if role == Message.Role.ASSISTANT else "",
        summary=summary,
        selected_at=now,
        created_at=now,
    )


def _files_note(blocks_in: list[dict]) -> str:
    names = [
        b.get("title") or b.get("type") for b in blocks_in if b.get("type") in ("image", "document")
    ]
    return f"({len(names)} file(s) of this message were not imported.)" if names else ""


def _rows_from_messages(conversation, document: _Document, model: str, now):
    rows: list[Message] = []
    parent = None
    for index, message in enumerate(document.messages):
        content = (
            [{"type": "text", "text": message.content}]
            if isinstance(message.content, str)
            else [b.model_dump(exclude_none=True) for b in message.content]
        )
        text = _block_text(message.content)
        if message.role == "user" and not text:
            text = _files_note(content) or "(empty message)"
        row = _row(
            conversation,
            parent=parent,
            role=message.role,
            text=text,
            content=content,
            model=model,
            stop_reason="end_turn",
            now=now + dt.timedelta(microseconds=index),
        )
        rows.append(row)
        parent = row
    return rows, parent.id if parent else None


def _rows_from_turns(conversation, document: _Document, model: str, now):
    rows: list[Message] = []
    new_of: dict[str, Message] = {}
    for index, turn in enumerate(document.turns):
        parent = new_of.get(turn.parent_id) if turn.parent_id else None
        content = [b.model_dump(exclude_none=True) for b in turn.content]
        text = turn.text or _block_text(turn.content)
        if turn.role == "user" and not text:
            text = _files_note(content) or "(empty message)"
        row = _row(
            conversation,
            parent=parent,
            role=turn.role,
            text=_text_limit(text),
            content=content,
            model=turn.model if model_info(turn.model) else model,
            stop_reason=turn.stop_reason,
            now=now + dt.timedelta(microseconds=index),
            summary=turn.summary,
        )
        rows.append(row)
        new_of[turn.id] = row
    leaf = new_of.get(document.active_leaf_id or "")
    if leaf is None:
        leaf = tree.Tree.of(rows).leaf_below(None)
        return rows, leaf
    return rows, leaf.id
