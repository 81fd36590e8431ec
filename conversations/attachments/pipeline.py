"""The worker's side of uploads: check one file, sweep stuck checks, remove old
uploads never sent, and delete the stored files of deleted attachments.

`attachment_check` runs in three short steps, so no transaction is held open
while a file is read or decoded:

1. start: under a row lock, count the attempt and note when it began (the sweep
   reads both); an attachment already ready or rejected, or gone, is left alone;
2. check: the upload is copied from storage to a temporary folder and checked
   in a child process (`checks.file_check_isolated`); what it prepared is
   written to storage under random names (and, with CLAUDE_FILES_API, uploaded
   once to the Files API);
3. finish: under the row lock again, ready or rejected, and the conversation's
   sockets hear `attachment.updated` after commit. If another run finished first
   (a redelivered task) or the row was deleted meanwhile, this run's files are
   deleted and nothing else changes.

A rejection's reason is stored in the language that is active when it is
found: the task runs the check under the uploader's
(`conversations.tasks.attachment_check_task`).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from conversations.attachments import checks
from conversations.models import Attachment
from conversations.streaming.frames import attachment_deleted, attachment_updated
from conversations.streaming.publisher import broadcast_after_commit

logger = logging.getLogger(__name__)

# Translated where it is stored, in the language then active.
CHECK_FAILED_REASON = gettext_noop("We could not check this file; try uploading it again.")
# A check that takes longer than this is given up (and retried): no file within
# the limits takes more than a few seconds.
CHECK_TIMEOUT_SECONDS = 120.0


def attachment_storage():
    return storages["attachments"]


def attachment_check(*, attachment_id: str) -> str:
    """Check and prepare one upload; return its status afterwards, or "missing".

    A failure that is not the file's fault (storage, the child process) is raised
    for the task to retry, until the attempt that reaches
    ATTACHMENT_CHECK_MAX_ATTEMPTS, which rejects the file with a plain reason.
    """
    started = _check_start(attachment_id)
    if isinstance(started, str):
        return started
    attachment = started
    try:
        outcome = _check_run(attachment)
    except Exception:
        if attachment.check_attempts < settings.ATTACHMENT_CHECK_MAX_ATTEMPTS:
            raise
        logger.exception("Checking attachment %s failed on its last attempt", attachment_id)
        outcome = checks.Rejected(checks.Reason(CHECK_FAILED_REASON)), {}
    return _check_finish(attachment_id, *outcome)


def _check_start(attachment_id: str) -> Attachment | str:
    with transaction.atomic():
        attachment = (
            Attachment.objects.select_for_update().filter(id=attachment_id).first()
            if _is_uuid(attachment_id)
            else None
        )
        if attachment is None:
            return "missing"
        if attachment.status != Attachment.Status.CHECKING:
            return attachment.status  # done already: running again changes nothing
        attachment.check_attempts += 1
        attachment.check_started_at = timezone.now()
        attachment.save(update_fields=["check_attempts", "check_started_at", "updated_at"])
    return attachment


def _check_run(attachment: Attachment) -> tuple[checks.CheckResult, dict[str, str]]:
    """Returns the result and the storage names (and Files API id) it wrote."""
    storage = attachment_storage()
    limits = checks.Limits.from_settings(settings)
    written: dict[str, str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="attachment-"))
    try:
        original = workdir / "original"
        with storage.open(attachment.original_path, "rb") as source, original.open("wb") as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
        result = checks.file_check_isolated(
            original,
            name=attachment.name,
            limits=limits,
            workdir=workdir,
            timeout=CHECK_TIMEOUT_SECONDS,
        )
        if isinstance(result, checks.Rejected):
            return result, written
        try:
            if result.prepared_path is not None:
                written["prepared_path"] = _storage_put(storage, result.prepared_path, "prepared")
            if result.thumbnail_path is not None:
                written["thumbnail_path"] = _storage_put(
                    storage, result.thumbnail_path, "thumbnails"
                )
            if settings.CLAUDE_FILES_API and not attachment.claude_file_id:
                file_id = _files_api_upload(
                    result.prepared_path or original,
                    filename=attachment.name,
                    media_type=result.media_type,
                )
                if file_id:
                    written["claude_file_id"] = file_id
        except Exception:
            attachment_files_delete(
                _names(written), claude_file_id=written.get("claude_file_id", "")
            )
            raise
        return result, written
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _check_finish(attachment_id: str, result: checks.CheckResult, written: dict[str, str]) -> str:
    with transaction.atomic():
        attachment = Attachment.objects.select_for_update().filter(id=attachment_id).first()
        if attachment is None or attachment.status != Attachment.Status.CHECKING:
            # Deleted meanwhile, or another run (a redelivered task) finished first.
            names, file_id = _names(written), written.get("claude_file_id", "")
            transaction.on_commit(lambda: attachment_files_delete(names, claude_file_id=file_id))
            return attachment.status if attachment is not None else "missing"
        if isinstance(result, checks.Rejected):
            attachment.status = Attachment.Status.REJECTED
            attachment.reason = result.reason.text()
        else:
            attachment.status = Attachment.Status.READY
            attachment.reason = ""
            attachment.kind = result.kind
            attachment.media_type = result.media_type
            attachment.width = result.width
            attachment.height = result.height
            attachment.pages = result.pages
            # PDFs and text are sent as uploaded: the prepared file is the original.
            attachment.prepared_path = written.get("prepared_path", attachment.original_path)
            attachment.thumbnail_path = written.get("thumbnail_path", "")
            attachment.prepared_size = result.prepared_size
            attachment.tokens = result.tokens
            attachment.claude_file_id = written.get("claude_file_id", attachment.claude_file_id)
        attachment.save()
        broadcast_after_commit(attachment.conversation_id, attachment_updated(attachment))
    return attachment.status


def _storage_put(storage, path: Path, folder: str) -> str:
    """Save under a random name (never the uploaded one) in `folder` (beside the
    upload's `originals/`); return the name stored."""
    with path.open("rb") as file:
        return storage.save(f"{folder}/{uuid.uuid4().hex}{path.suffix}", File(file))


def _names(written: dict[str, str]) -> list[str]:
    return [written[key] for key in ("prepared_path", "thumbnail_path") if key in written]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


# --- The Files API (claude.files, when the gateway has it) -----------------------------


def _files_api():
    """The gateway's Files API functions, or None where it has none."""
    try:
        from claude import files
    except ImportError:  # a gateway without the Files API: the bytes go inline
        return None
    return files if files.files_api_available() else None


def _files_api_upload(path: Path, *, filename: str, media_type: str) -> str:
    files = _files_api()
    if files is None:
        return ""
    return async_to_sync(files.file_upload)(
        path.read_bytes(), filename=filename, media_type=media_type
    )


# --- Files of deleted rows ---------------------------------------------------------------


def attachment_file_names(attachment: Attachment) -> list[str]:
    """Every storage name the attachment holds (the prepared file may be the original)."""
    names = (attachment.original_path, attachment.prepared_path, attachment.thumbnail_path)
    return list(dict.fromkeys(name for name in names if name))


def attachment_files_delete(names: Iterable[str], *, claude_file_id: str = "") -> None:
    """Delete stored files (and a Files API copy); a failure is logged, never raised:
    the row is gone already, and a missing file is what we wanted."""
    storage = attachment_storage()
    for name in names:
        try:
            storage.delete(name)
        except Exception:
            logger.exception("Deleting the attachment file %s failed", name)
    if claude_file_id:
        files = _files_api()
        if files is not None and hasattr(files, "file_delete"):
            try:
                async_to_sync(files.file_delete)(claude_file_id)
            except Exception:
                logger.exception("Deleting the Files API file %s failed", claude_file_id)


# --- Periodic work -------------------------------------------------------------------------


def attachments_sweep() -> int:
    """Checks stuck in checking (their worker died, or the enqueue after the upload
    was lost): started again, or rejected once they had all their attempts.
    Returns how many it touched.

    The sweep has no request, and the row keeps no language: what it rejects is
    said in LANGUAGE_CODE, and what it starts again is checked in it (the task's
    default). A column for the uploader's language would serve only this rare
    path (a dead worker, a lost enqueue), and is not worth a migration."""
    from conversations.tasks import attachment_check_task

    stale_before = timezone.now() - dt.timedelta(seconds=settings.ATTACHMENT_CHECK_STALE_SECONDS)
    stuck = Attachment.objects.filter(status=Attachment.Status.CHECKING).filter(
        Q(check_started_at__lt=stale_before)
        | Q(check_started_at__isnull=True, created_at__lt=stale_before)
    )
    touched = 0
    for attachment_id in stuck.values_list("id", flat=True)[:500]:
        with transaction.atomic():
            attachment = (
                Attachment.objects.select_for_update(skip_locked=True)
                .filter(id=attachment_id, status=Attachment.Status.CHECKING)
                .filter(
                    Q(check_started_at__lt=stale_before)
                    | Q(check_started_at__isnull=True, created_at__lt=stale_before)
                )
                .first()
            )
            if attachment is None:
                continue  # finished, or being checked, since the query above
            touched += 1
            if attachment.check_attempts >= settings.ATTACHMENT_CHECK_MAX_ATTEMPTS:
                attachment.status = Attachment.Status.REJECTED
                with translation.override(settings.LANGUAGE_CODE):
                    attachment.reason = gettext(CHECK_FAILED_REASON)
                attachment.save(update_fields=["status", "reason", "updated_at"])
                broadcast_after_commit(attachment.conversation_id, attachment_updated(attachment))
                continue
            # Counted as started now, so the next sweep does not enqueue it again
            # while it waits in the queue; the worker counts the attempt.
            attachment.check_started_at = timezone.now()
            attachment.save(update_fields=["check_started_at", "updated_at"])
            key = str(attachment.id)
            # No language: the task checks it in LANGUAGE_CODE (the docstring says why).
            transaction.on_commit(lambda key=key: attachment_check_task.delay(key))
    return touched


def attachments_unsent_remove() -> int:
    """Delete uploads never sent with a message, older than ATTACHMENT_UNSENT_KEEP_SECONDS
    (their files go after commit: `conversations.signals`). Returns how many.

    The rows are chosen and locked by one statement, and deleted in the same
    transaction: a send that links one of them first holds its row lock, so it is
    skipped; a send that comes after waits, then finds it gone and says so. Chosen
    in one statement and deleted in another, a draft linked in between went with
    its file."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.ATTACHMENT_UNSENT_KEEP_SECONDS)
    with transaction.atomic():
        conversation_of = dict(
            Attachment.objects.select_for_update(skip_locked=True)
            .filter(message__isnull=True, created_at__lt=cutoff)
            .values_list("id", "conversation_id")[:1000]
        )
        if not conversation_of:
            return 0
        _, per_model = Attachment.objects.filter(id__in=conversation_of).delete()
        _removals_announce(conversation_of)
    return per_model.get(Attachment._meta.label, 0)


def _removals_announce(conversation_of: dict[uuid.UUID, uuid.UUID]) -> None:
    """`attachment.deleted`, after commit, to the conversation of each of these
    attachments that is gone now; one sent meanwhile (so kept) is not announced."""
    kept = set(Attachment.objects.filter(id__in=conversation_of).values_list("id", flat=True))
    for attachment_id, conversation_id in conversation_of.items():
        if attachment_id not in kept:
            broadcast_after_commit(conversation_id, attachment_deleted(attachment_id))
