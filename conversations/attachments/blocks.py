"""What a send does with attachments: which ids a message may carry, the
request's limits, and the blocks Claude gets.

Pure over rows the caller read (`conversation_attachments`, one query per send);
only `attachment_block` touches storage, to read the prepared bytes, and the
request-size check, to measure a text's JSON escapes when the request might be
near the limit.
"""

from __future__ import annotations

import base64
import codecs
import json
import math
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.files.storage import storages
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, ngettext

from claude.files import files_api_available
from conversations.attachments.checks import (
    API_MAX_REQUEST_BYTES,
    PDF_PAGE_TOKENS,
    REQUEST_BYTES_HEADROOM,
)
from conversations.models import Attachment
from infra.rows import rows_select, rows_update

# The API's own limits on one request, over everything it carries (history included):
# - 32 MB of request body (checks.py keeps the number: a single file past it is
#   rejected when checked).
# - 100 images (600 on the largest models; 100 holds on all). Past 20 images the
#   API takes at most 2000 px a side: ours are at most ATTACHMENT_IMAGE_LONG_EDGE.
API_MAX_IMAGES = 100

# What a send reads of every attachment of the conversation.
_FIELDS = (
    "id",
    "conversation",
    "uploaded_by",
    "message",
    "name",
    "size",
    "status",
    "reason",
    "kind",
    "media_type",
    "pages",
    "width",
    "height",
    "prepared_path",
    "prepared_size",
    "tokens",
    "claude_file_id",
    "created_at",
)

# Conservative stand-ins for `Attachment.tokens` when the check did not record it:
# an image at the API's ~w*h/750 (about 1,600 at most after resizing), a PDF page
# as text plus the page's image (the API bills both: checks.PDF_PAGE_TOKENS), text
# at three bytes a token.
_TOKENS_PER_PDF_PAGE = PDF_PAGE_TOKENS
_IMAGE_TOKENS_AT_MOST = 1_600
# json.dumps (ASCII out) writes a character in at most 6 bytes for each UTF-8 byte
# it takes: \u0001 for a 1-byte control character, \uXXXX (\ud83d\ude00 for a
# 4-byte one) for the rest. A text of n bytes is at most 6n + 2 in the request.
_JSON_ESCAPE_FACTOR = 6


class AttachmentRefused(Exception):
    """A send the person can correct; `message` is shown to them as is."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


# One message for every id that is not a ready-to-send file of this person in this
# conversation: another user's, another conversation's, a deleted one, a made-up
# one. Telling them apart would tell a prober which ids exist.
NOT_FOUND = AttachmentRefused(
    "attachment_not_found", gettext_lazy("One of the files is not in this conversation.")
)


def conversation_attachments(conversation_id: uuid.UUID) -> list[Attachment]:
    """Every attachment of the conversation, sent or not, in the order they were
    uploaded: one statement per send, whatever the history's length.

    Read without a lock: a send links its files with a guarded UPDATE that
    says whether they were still as read (`attachments_link`), so it never
    waits behind a worker checking another file of the conversation."""
    return rows_select(
        Attachment, _FIELDS, where={"conversation_id": conversation_id}, order_by="created_at"
    )


def attachments_link(*, files: Sequence[Attachment], message_id: uuid.UUID, author_id: int) -> None:
    """Make `files` the message's, if each is still as the checks read it (this
    person's, in this conversation, unsent, ready); else AttachmentRefused, and
    the caller's transaction stores nothing. The UPDATE locks the rows it
    changes until the send commits: two sends cannot both take a file."""
    if not files:
        return
    linked = rows_update(
        Attachment,
        {"message_id": message_id, "updated_at": timezone.now()},
        where={
            "id": [a.id for a in files],
            "conversation_id": files[0].conversation_id,
            "uploaded_by_id": author_id,
            "message_id": None,
            "status": Attachment.Status.READY,
        },
    )
    if linked != len(files):
        raise AttachmentRefused(
            "attachment_changed",
            gettext("One of the files changed while it was being sent. Try again."),
        )
    for attachment in files:
        attachment.message_id = message_id


def attachments_by_message(attachments: Iterable[Attachment]) -> dict[uuid.UUID, list[Attachment]]:
    """Sent attachments grouped by their message, each list in upload order.

    The order is the stored one, never the order a client listed them in: the
    request's prefix must be byte-identical on every later turn, or the next call
    misses the prompt cache."""
    grouped: dict[uuid.UUID, list[Attachment]] = defaultdict(list)
    for attachment in sorted(attachments, key=_upload_order):
        if attachment.message_id is not None:
            grouped[attachment.message_id].append(attachment)
    return dict(grouped)


def _upload_order(attachment: Attachment) -> tuple:
    return (attachment.created_at, str(attachment.id))


def attachments_for_send(
    *, available: Sequence[Attachment], ids: Collection[uuid.UUID], author_id: int
) -> list[Attachment]:
    """The attachments a new message by `author_id` carries, in upload order, or
    AttachmentRefused: each id must be a file this person uploaded into this
    conversation (`available` is the conversation's), not sent yet, and ready."""
    if len(ids) > settings.ATTACHMENT_MAX_PER_MESSAGE:
        raise AttachmentRefused(
            "too_many_attachments",
            ngettext(
                "A message can carry at most %(count)s file.",
                "A message can carry at most %(count)s files.",
                settings.ATTACHMENT_MAX_PER_MESSAGE,
            )
            % {"count": settings.ATTACHMENT_MAX_PER_MESSAGE},
        )
    wanted = {uuid.UUID(str(i)) for i in ids}
    mine = {a.id: a for a in available if a.id in wanted and a.uploaded_by_id == author_id}
    if len(mine) != len(wanted):
        raise NOT_FOUND
    chosen = sorted(mine.values(), key=_upload_order)
    for attachment in chosen:
        if attachment.message_id is not None:
            raise AttachmentRefused(
                "attachment_sent",
                gettext(
                    "%(name)s was already sent with an earlier message. Attach it again "
                    "to send it once more."
                )
                % {"name": attachment.name},
            )
    for attachment in chosen:
        if attachment.status == Attachment.Status.REJECTED:
            raise AttachmentRefused(
                "attachment_rejected",
                (
                    gettext("%(name)s cannot be sent: %(reason)s Remove it to send the rest.")
                    % {"name": attachment.name, "reason": attachment.reason}
                    if attachment.reason
                    else gettext(
                        "%(name)s cannot be sent: it did not pass the checks. "
                        "Remove it to send the rest."
                    )
                    % {"name": attachment.name}
                ),
            )
    if any(a.status != Attachment.Status.READY or not a.prepared_path for a in chosen):
        raise AttachmentRefused(
            "attachment_checking", gettext("Wait for the files to finish checking.")
        )
    return chosen


def draft_attachments(
    *, available: Sequence[Attachment], ids: Collection[uuid.UUID], author_id: int
) -> list[Attachment]:
    """What the composer's estimate counts of a draft's files: the same rule as a
    send, but what does not qualify yet (checking, rejected, unknown) is left out
    rather than refused."""
    wanted = {uuid.UUID(str(i)) for i in ids}
    chosen = [
        a
        for a in available
        if a.id in wanted
        and a.uploaded_by_id == author_id
        and a.message_id is None
        and a.status == Attachment.Status.READY
        and a.prepared_path
    ]
    return sorted(chosen, key=_upload_order)[: settings.ATTACHMENT_MAX_PER_MESSAGE]


def _by_file_id(attachment: Attachment) -> bool:
    """Sent as a Files API reference instead of its bytes. Text files never are:
    the reference (section 6) lists file sources for PDFs and images, but a text
    document goes as a `text` source, which every provider takes (Bedrock and
    Vertex take no file sources at all), costs the same tokens, and is what lets
    the document carry its text to the token counter as it is."""
    return (
        bool(settings.CLAUDE_FILES_API and attachment.claude_file_id)
        and attachment.kind != Attachment.Kind.TEXT
        # A file uploaded while the site used the Anthropic API goes inline on
        # Bedrock or Vertex (they take base64 sources only).
        and files_api_available()
    )


def _inline_bytes(attachment: Attachment, *, text_at_most: bool = False) -> int:
    """What a file adds to the request body: base64 is 4 bytes for each 3; a text
    file its JSON string, escapes included (newlines, quotes, control and, as
    ASCII JSON, non-ASCII characters). With `text_at_most`, a bound that reads
    nothing (`_JSON_ESCAPE_FACTOR`)."""
    if _by_file_id(attachment):
        return 0
    if attachment.kind == Attachment.Kind.TEXT:
        if text_at_most:
            return _JSON_ESCAPE_FACTOR * attachment.prepared_size + 2
        return _text_json_bytes(attachment)
    return 4 * math.ceil(attachment.prepared_size / 3)


def _text_json_bytes(attachment: Attachment) -> int:
    """len(json.dumps(text)), read a chunk at a time (escapes are per character,
    so the chunks' lengths add up), so a text is never held whole to measure it."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    size = 2  # its quotes
    with storages["attachments"].open(attachment.prepared_path, "rb") as file:
        while chunk := file.read(1 << 20):
            size += len(json.dumps(decoder.decode(chunk))) - 2
    return size + len(json.dumps(decoder.decode(b"", final=True))) - 2


def request_limits_check(
    *, earlier: Iterable[Attachment], new: Sequence[Attachment], text_bytes: int
) -> None:
    """Refuse a send whose request would break the API's per-request limits.

    `earlier`: the attachments already in the history (they are sent again on
    every turn); `new`: this message's; `text_bytes`: the UTF-8 size of every
    text the request carries (system prompt, history, the new text)."""
    if not new:
        # A text-only message adds nothing these limits count: it is never the one refused.
        return
    every = [*earlier, *new]
    pages = sum(a.pages or 0 for a in every if a.kind == Attachment.Kind.PDF)
    if pages > settings.ATTACHMENT_MAX_PDF_PAGES:
        before = pages - sum(a.pages or 0 for a in new if a.kind == Attachment.Kind.PDF)
        raise AttachmentRefused(
            "attachment_limit",
            (
                gettext(
                    "Claude reads at most %(limit)s PDF pages in one conversation turn, and "
                    "these files would make it %(pages)s (%(before)s are already in this "
                    "conversation). Send fewer pages, or start a new conversation for these files."
                )
                if before
                else gettext(
                    "Claude reads at most %(limit)s PDF pages in one conversation turn, and "
                    "these files would make it %(pages)s. Send fewer pages, or start a new "
                    "conversation for these files."
                )
            )
            % {"limit": settings.ATTACHMENT_MAX_PDF_PAGES, "pages": pages, "before": before},
        )
    images = sum(1 for a in every if a.kind == Attachment.Kind.IMAGE)
    if images > API_MAX_IMAGES:
        raise AttachmentRefused(
            "attachment_limit",
            gettext(
                "Claude takes at most %(limit)s images in one conversation turn, and "
                "these would make it %(images)s. Send fewer images, or start a new conversation "
                "for these files."
            )
            % {"limit": API_MAX_IMAGES, "images": images},
        )
    limit = API_MAX_REQUEST_BYTES - REQUEST_BYTES_HEADROOM
    # Texts are read for their escapes only when the bound that reads nothing
    # could pass the limit: most sends read no file here.
    if text_bytes + sum(_inline_bytes(a, text_at_most=True) for a in every) <= limit:
        return
    size = text_bytes + sum(_inline_bytes(a) for a in every)
    if size > limit:
        # Files earlier in the conversation go with every turn: a new one leaves them behind.
        sizes = {
            "size": f"{size / 1_000_000:.1f}",
            "limit": API_MAX_REQUEST_BYTES // 1_000_000,
        }
        if any(_inline_bytes(a, text_at_most=True) for a in earlier):
            message = gettext(
                "With these files the request to Claude would be %(size)s MB; it takes at most "
                "%(limit)s MB, files and conversation together. Start a new conversation for "
                "these files, or send fewer or smaller ones."
            )
        else:
            message = gettext(
                "With these files the request to Claude would be %(size)s MB; it takes at most "
                "%(limit)s MB, files and conversation together. Send fewer or smaller files."
            )
        raise AttachmentRefused("attachment_limit", message % sizes)


def attachment_tokens(attachment: Attachment) -> int:
    """Input tokens the file costs in a request: as the check recorded, else a
    conservative estimate by kind (for the budget hold, which must not undercount)."""
    if attachment.tokens:
        return attachment.tokens
    if attachment.kind == Attachment.Kind.PDF:
        return _TOKENS_PER_PDF_PAGE * max(attachment.pages or 1, 1)
    if attachment.kind == Attachment.Kind.IMAGE:
        if attachment.width and attachment.height:
            return min(math.ceil(attachment.width * attachment.height / 750), _IMAGE_TOKENS_AT_MOST)
        return _IMAGE_TOKENS_AT_MOST
    return math.ceil(attachment.prepared_size / 3)


def attachment_block(attachment: Attachment) -> dict[str, Any]:
    """The file in the API's own shape: an image block, a PDF document, or a text
    document titled with its file name. Reads the prepared bytes from storage
    (unless it goes by its Files API id)."""
    if attachment.kind == Attachment.Kind.TEXT:
        return {
            "type": "document",
            "source": {
                "type": "text",
                "media_type": "text/plain",
                "data": _prepared(attachment).decode("utf-8"),
            },
            "title": attachment.name,
        }
    block_type = "image" if attachment.kind == Attachment.Kind.IMAGE else "document"
    if _by_file_id(attachment):
        return {
            "type": block_type,
            "source": {"type": "file", "file_id": attachment.claude_file_id},
        }
    media_type = attachment.media_type if block_type == "image" else "application/pdf"
    return {
        "type": block_type,
        "source": {
            "type": "base64",
            "media_type": media_type,
            "data": base64.b64encode(_prepared(attachment)).decode("ascii"),
        },
    }


def _prepared(attachment: Attachment) -> bytes:
    with storages["attachments"].open(attachment.prepared_path, "rb") as file:
        return file.read()
