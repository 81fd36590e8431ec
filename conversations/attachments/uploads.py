"""The upload request's side of attachments: read the body with a bounded
memory, clean the name, enforce the size and the person's quota, store the
bytes under a random name, record the row as checking, and tell the
conversation's sockets and the check's worker after commit. Also what the file
views send back (headers) and the removal of an unsent upload.

The check itself (type from the bytes, the limits on content, the prepared
file) is the worker's (`conversations.attachments.pipeline`); nothing here
reads the bytes beyond counting them.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import (
    FileUploadHandler,
    MemoryFileUploadHandler,
    StopUpload,
    TemporaryFileUploadHandler,
)
from django.db import transaction
from django.db.models import Sum
from django.http import FileResponse, HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils import translation
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext
from PIL import Image, UnidentifiedImageError

from accounts.models import User
from conversations.attachments.relay import attachment_watch_after_commit
from conversations.models import Attachment, Conversation
from conversations.streaming.frames import attachment_deleted, attachment_updated
from conversations.streaming.publisher import broadcast_after_commit
from conversations.tasks import attachment_check_task

# A multipart body carries more than the file: the boundaries, each part's
# headers (the file name may be 255 characters, percent-encoded three times
# over) and the CSRF field. A body past the limit by more than this cannot hold
# a file within it; one within it is measured exactly while it streams.
MULTIPART_OVERHEAD_BYTES = 64 * 1024

# What a browser may show in place. Everything else is sent as a download.
# SVG is not here and never will be: it is a document that runs scripts.
INLINE_MEDIA_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf"}
)
# Text a browser would render as a page, were it ever given this type.
_ACTIVE_TEXT_TYPES = frozenset({"text/html", "text/xml", "text/xsl", "text/javascript"})
THUMBNAIL_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

# The name a file is shown with when nothing is left of the one it came with.
FALLBACK_NAME = "file"
MAX_NAME_CHARS = 255
# A longer "extension" is a part of the name, not a type to keep through a trim.
_MAX_KEPT_EXTENSION_CHARS = 16
# Invisible characters that reorder text: "invoice\u202efdp.exe" shows as
# "invoiceexe.pdf". Control characters (category Cc) go as well.
_BIDI_CONTROLS = frozenset(
    "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_REMOVED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})

# Names in the attachments storage: a folder for what people uploaded, never
# their file name (it would collide, leak, or be a path).
ORIGINALS_FOLDER = "originals"


class AttachmentRefused(Exception):
    """An upload or removal refused for a reason the person can act on.

    `code` is stable (the browser and other checks match it), `message` is
    shown as is, `http_status` is what the view answers."""

    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        self.code = code
        self.message = message
        self.http_status = http_status
        super().__init__(message)

    def as_json(self) -> dict[str, str]:
        return {"error": self.message, "code": self.code}


def _size_words(size: int) -> str:
    # filesizeformat keeps the number and unit together with a no-break space.
    return filesizeformat(size).replace("\xa0", " ")


def attachment_request_max_bytes() -> int:
    """The largest upload request body: the file limit plus the multipart framing.
    Nothing else on the site takes a bigger body (the web process refuses any
    past it: `chatsite.web`)."""
    return settings.ATTACHMENT_MAX_BYTES + MULTIPART_OVERHEAD_BYTES


def attachment_too_large(size: int | None = None) -> AttachmentRefused:
    limit = _size_words(settings.ATTACHMENT_MAX_BYTES)
    if size is None:
        message = gettext("This file is over the %(limit)s limit.") % {"limit": limit}
    else:
        message = gettext("This file is %(size)s; the limit is %(limit)s.") % {
            "size": _size_words(size),
            "limit": limit,
        }
    return AttachmentRefused("file_too_large", message, 413)


# --- Reading the request ---------------------------------------------------------


class UploadLimitHandler(FileUploadHandler):
    """First in the request's upload handlers: counts the file bytes as they
    stream and stops the upload once they pass `max_bytes`, whatever the
    Content-Length said (it may be absent or a lie). The handlers after it
    (Django's memory one up to FILE_UPLOAD_MAX_MEMORY_SIZE, then the temporary
    file one) store each chunk, so memory holds one chunk at a time.

    Stopping resets the parse (`connection_reset`): nothing more of the body is
    read, and the files so far are closed (a temporary file is deleted)."""

    def __init__(self, request: HttpRequest | None = None, *, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > self.max_bytes:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        # The next handler makes the file; this one only measures.
        return None


def attachment_upload_read(request: HttpRequest) -> UploadedFile:
    """The one file of an upload request (multipart field `file`), read with
    bounded memory; `AttachmentRefused` for a body over the limit (413) or a
    request without exactly one named file (400).

    Must run before anything reads `request.POST` or `request.FILES` (the CSRF
    check does: the view runs it after this, see `conversations.views`)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > attachment_request_max_bytes():
        # Refused on the header alone: the body is never parsed.
        raise attachment_too_large(declared)
    if not request.content_type.startswith("multipart/form-data"):
        raise AttachmentRefused(
            "not_multipart", gettext("Send the file as multipart/form-data in the field `file`.")
        )
    limit = UploadLimitHandler(request, max_bytes=settings.ATTACHMENT_MAX_BYTES)
    request.upload_handlers = [
        limit,
        MemoryFileUploadHandler(request),
        TemporaryFileUploadHandler(request),
    ]
    try:
        files = request.FILES.getlist("file")
    except Exception as exc:  # a malformed multipart body (MultiPartParserError, too many parts)
        raise AttachmentRefused(
            "bad_upload", gettext("The upload could not be read; try again.")
        ) from exc
    if limit.exceeded:
        raise attachment_too_large()
    if not files:
        raise AttachmentRefused(
            "missing_file",
            gettext("No file was sent: the field `file` is missing or has no file name."),
        )
    if len(files) > 1:
        raise AttachmentRefused("one_file_only", gettext("Send one file per request."))
    return files[0]


# --- Names -----------------------------------------------------------------------


def attachment_name_clean(raw: str) -> str:
    """The name a file is shown and downloaded with: its last path part only
    (`/` and `\\` both separate), without control or text-reordering characters,
    trimmed of spaces, at most 255 characters keeping the extension, "file" if
    nothing is left. Never used as a storage name."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        ch
        for ch in name
        if unicodedata.category(ch) not in _REMOVED_CATEGORIES and ch not in _BIDI_CONTROLS
    )
    name = name.strip()
    if name in {"", ".", ".."}:
        return FALLBACK_NAME
    if len(name) > MAX_NAME_CHARS:
        root, extension = os.path.splitext(name)
        if not root or len(extension) > _MAX_KEPT_EXTENSION_CHARS:
            root, extension = name, ""
        name = root[: MAX_NAME_CHARS - len(extension)].rstrip() + extension
    return name


# --- The service -----------------------------------------------------------------


def attachments_storage() -> Storage:
    return storages["attachments"]


def attachment_quota_used(*, user: User) -> int:
    """Bytes of the person's uploads still stored (every status: a rejected or
    unsent file holds its space until it is removed or swept)."""
    return Attachment.objects.filter(uploaded_by=user).aggregate(total=Sum("size"))["total"] or 0


def _quota_check(*, user: User, size: int) -> None:
    quota = settings.ATTACHMENT_QUOTA_BYTES
    used = attachment_quota_used(user=user)
    if used + size <= quota:
        return
    if used >= quota:
        message = gettext(
            "Your files use %(used)s of %(quota)s; "
            "delete some conversations with files to make room."
        )
    else:
        message = gettext(
            "Your files use %(used)s of %(quota)s and this one is "
            "%(size)s; delete some conversations with files to make room."
        )
    message %= {"used": _size_words(used), "quota": _size_words(quota), "size": _size_words(size)}
    raise AttachmentRefused("quota_exceeded", message, 413)


def attachment_upload(
    *, conversation: Conversation, user: User, uploaded_file: UploadedFile
) -> Attachment:
    """Store an uploaded file in the conversation as checking; after commit, the
    conversation's sockets get `attachment.updated` and the check is enqueued,
    in the request's language (a rejection's reason is stored in it).

    `conversation` was authorised by the caller (`selectors.conversation_for_user`);
    only its owner may add files. Raises `AttachmentRefused`."""
    if conversation.owner_id != user.pk:
        raise AttachmentRefused(
            "not_owner", gettext("Only the conversation's owner can add files to it."), 403
        )
    size = uploaded_file.size or 0
    if size > settings.ATTACHMENT_MAX_BYTES:
        raise attachment_too_large(size)
    name = attachment_name_clean(uploaded_file.name or "")
    # Refuse before storing anything when the quota is plainly full; checked
    # again under the person's row lock below, where it counts.
    _quota_check(user=user, size=size)

    storage = attachments_storage()
    stored_name = storage.save(f"{ORIGINALS_FOLDER}/{secrets.token_hex(16)}", uploaded_file)
    try:
        with transaction.atomic():
            # Two uploads of one person at once must not both fit in the last gigabyte.
            User.objects.select_for_update().filter(pk=user.pk).values_list("pk").first()
            _quota_check(user=user, size=size)
            attachment = Attachment.objects.create(
                conversation=conversation,
                uploaded_by=user,
                name=name,
                size=size,
                status=Attachment.Status.CHECKING,
                original_path=stored_name,
            )
            broadcast_after_commit(conversation.id, attachment_updated(attachment))
            attachment_id, language = str(attachment.id), translation.get_language()
            transaction.on_commit(lambda: attachment_check_task.delay(attachment_id, language))
            attachment_watch_after_commit(attachment.id)
    except BaseException:
        # No row points at the file: remove it now rather than leave it to a sweep.
        storage.delete(stored_name)
        raise
    return attachment


def attachment_discard(*, attachment: Attachment, user: User) -> None:
    """Remove an attachment that was never sent (the composer's × on a chip):
    only by the person who uploaded it. Its files go after commit, and the
    conversation's sockets hear `attachment.deleted`.

    `attachment` was authorised by the caller (`selectors.attachment_for_user`).
    The row is locked first: a send taking it at the same time either wins
    (then this refuses) or waits and finds it gone."""
    if attachment.uploaded_by_id != user.pk:
        raise AttachmentRefused(
            "not_uploader", gettext("Only the person who uploaded this file can remove it."), 403
        )
    with transaction.atomic():
        locked = Attachment.objects.select_for_update().filter(id=attachment.id).first()
        if locked is None:
            return  # removed already: removing twice is removing once
        if locked.message_id is not None:
            raise AttachmentRefused(
                "already_sent",
                gettext(
                    "This file was sent with a message; it goes when the conversation is deleted."
                ),
                409,
            )
        paths = [
            p for p in (locked.original_path, locked.prepared_path, locked.thumbnail_path) if p
        ]
        locked.delete()
        transaction.on_commit(lambda: _files_delete(paths))
        # The person's other tabs show the chip too: a send from one of them would fail on it.
        broadcast_after_commit(locked.conversation_id, attachment_deleted(attachment.id))


def _files_delete(paths: list[str]) -> None:
    storage = attachments_storage()
    for path in paths:
        storage.delete(path)


# --- Serving ---------------------------------------------------------------------


def attachment_served_type(media_type: str) -> str:
    """The Content-Type a stored file is sent with: its sniffed type when it is
    one of the accepted kinds, UTF-8 for text (the check refuses anything else),
    and a plain download type for anything a browser could run."""
    media_type = (media_type or "").split(";", 1)[0].strip().lower()
    if media_type in INLINE_MEDIA_TYPES:
        return media_type
    if media_type.startswith("text/") and media_type not in _ACTIVE_TEXT_TYPES:
        return f"{media_type}; charset=utf-8"
    return "application/octet-stream"


def _image_type(handle: Any) -> str:
    """The type of a thumbnail from its header (Pillow reads only that much)."""
    try:
        with Image.open(handle) as image:
            return Image.MIME.get(image.format or "", "")
    except (UnidentifiedImageError, OSError):
        return ""


def _served(response: FileResponse) -> FileResponse:
    # The file is data, never a page: no type guessing, no scripts, no plugins,
    # no same-origin access even when a browser shows it in place. PDFs too:
    # Chromium's PDF viewer still draws a sandboxed PDF (the e2e test opens one).
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    # Private to the person's browser; an attachment's prepared file never changes.
    patch_cache_control(response, private=True, max_age=3600)
    return response


def attachment_file_response(*, attachment: Attachment) -> FileResponse | None:
    """The prepared file of a ready attachment, streamed from storage; None when
    there is nothing to serve (not ready, or its file is gone)."""
    if attachment.status != Attachment.Status.READY or not attachment.prepared_path:
        return None
    content_type = attachment_served_type(attachment.media_type)
    inline = content_type in INLINE_MEDIA_TYPES
    try:
        handle = attachments_storage().open(attachment.prepared_path, "rb")
    except FileNotFoundError:
        return None
    response = FileResponse(
        handle,
        content_type=content_type,
        as_attachment=not inline,
        filename=attachment.name,
    )
    return _served(response)


def attachment_thumbnail_response(*, attachment: Attachment) -> FileResponse | None:
    """The thumbnail of a ready attachment, streamed from storage; None when it
    has none."""
    if attachment.status != Attachment.Status.READY or not attachment.thumbnail_path:
        return None
    try:
        handle = attachments_storage().open(attachment.thumbnail_path, "rb")
    except FileNotFoundError:
        return None
    content_type = _image_type(handle)
    if content_type not in THUMBNAIL_MEDIA_TYPES:
        handle.close()
        return None
    handle.seek(0)
    stem = os.path.splitext(attachment.name)[0] or FALLBACK_NAME
    extension = content_type.split("/", 1)[1].replace("jpeg", "jpg")
    response = FileResponse(
        handle,
        content_type=content_type,
        as_attachment=False,
        filename=f"{stem[: MAX_NAME_CHARS - 20]}-thumbnail.{extension}",
    )
    return _served(response)
