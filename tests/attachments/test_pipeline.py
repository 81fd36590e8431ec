"""The worker's pipeline over real rows and the attachments storage."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from conversations.attachments import pipeline
from conversations.models import Attachment
from tests.attachments.conftest import all_stored_names
from tests.attachments.corpus import HTML, jpeg_with_gps, pdf_bytes
from tests.conftest import receive_frames

pytestmark = pytest.mark.django_db


def test_a_jpeg_ends_ready_with_its_prepared_file_and_thumbnail(upload):
    attachment = upload("holiday.jpg", jpeg_with_gps((3000, 2000)))
    assert pipeline.attachment_check(attachment_id=str(attachment.id)) == "ready"
    attachment.refresh_from_db()
    assert (attachment.status, attachment.reason, attachment.kind) == ("ready", "", "image")
    assert (attachment.media_type, attachment.width, attachment.height) == (
        "image/jpeg",
        1568,
        1045,
    )
    assert attachment.check_attempts == 1 and attachment.check_started_at is not None
    storage = pipeline.attachment_storage()
    names = {attachment.original_path, attachment.prepared_path, attachment.thumbnail_path}
    assert len(names) == 3 and all(storage.exists(name) for name in names)
    assert "holiday" not in attachment.prepared_path + attachment.thumbnail_path
    assert storage.size(attachment.prepared_path) == attachment.prepared_size
    assert attachment.tokens == -(-1568 * 1045 // 750)


def test_running_twice_changes_nothing(upload):
    attachment = upload("slides.pdf", pdf_bytes(3))
    assert pipeline.attachment_check(attachment_id=str(attachment.id)) == "ready"
    first = Attachment.objects.values().get(id=attachment.id)
    files = all_stored_names()
    assert pipeline.attachment_check(attachment_id=str(attachment.id)) == "ready"
    assert Attachment.objects.values().get(id=attachment.id) == first
    assert all_stored_names() == files
    assert (first["pages"], first["prepared_path"]) == (3, attachment.original_path)


def test_a_bad_file_is_rejected_with_its_reason(upload):
    attachment = upload("cat.png", HTML)
    assert pipeline.attachment_check(attachment_id=str(attachment.id)) == "rejected"
    attachment.refresh_from_db()
    assert attachment.reason == "This file is named .png but it is not a PNG image."
    assert (attachment.prepared_path, attachment.thumbnail_path) == ("", "")


def test_a_deleted_attachment_is_a_no_op(upload):
    attachment = upload("notes.txt", b"hello\n")
    attachment_id = str(attachment.id)
    attachment.delete()
    assert pipeline.attachment_check(attachment_id=attachment_id) == "missing"
    assert pipeline.attachment_check(attachment_id="not-a-uuid") == "missing"


def test_deleted_while_checking_leaves_no_files(
    upload, monkeypatch, django_capture_on_commit_callbacks
):
    attachment = upload("big.jpg", jpeg_with_gps((2000, 2000)))
    real_check = pipeline.checks.file_check_isolated

    def check_then_delete(*args, **kwargs):
        result = real_check(*args, **kwargs)
        Attachment.objects.filter(id=attachment.id).delete()
        return result

    monkeypatch.setattr(pipeline.checks, "file_check_isolated", check_then_delete)
    before = all_stored_names() - {attachment.original_path}
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.attachment_check(attachment_id=str(attachment.id)) == "missing"
    assert all_stored_names() == before, "neither the original nor what the check wrote is left"


def test_an_unexpected_failure_is_retried_then_rejected_plainly(upload, monkeypatch, settings):
    settings.ATTACHMENT_CHECK_MAX_ATTEMPTS = 2
    attachment = upload("notes.txt", b"hello\n")

    def broken(*args, **kwargs):
        raise pipeline.checks.CheckCrashed("the check exited with -9")

    monkeypatch.setattr(pipeline.checks, "file_check_isolated", broken)
    with pytest.raises(pipeline.checks.CheckCrashed):
        pipeline.attachment_check(attachment_id=str(attachment.id))
    attachment.refresh_from_db()
    assert (attachment.status, attachment.check_attempts) == ("checking", 1)
    assert pipeline.attachment_check(attachment_id=str(attachment.id)) == "rejected"
    attachment.refresh_from_db()
    assert (attachment.reason, attachment.check_attempts) == (pipeline.CHECK_FAILED_REASON, 2)


def test_the_sweep_restarts_stuck_checks_and_rejects_exhausted_ones(
    upload, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from conversations import tasks

    enqueued: list[str] = []
    monkeypatch.setattr(tasks.attachment_check_task, "delay", enqueued.append)
    long_ago = timezone.now() - dt.timedelta(seconds=settings.ATTACHMENT_CHECK_STALE_SECONDS + 5)
    died = upload("a.txt", b"a")
    exhausted = upload("b.txt", b"b")
    never_started = upload("c.txt", b"c")
    fresh = upload("d.txt", b"d")
    done = upload("e.txt", b"e")
    Attachment.objects.filter(id=died.id).update(check_started_at=long_ago, check_attempts=1)
    Attachment.objects.filter(id=exhausted.id).update(
        check_started_at=long_ago, check_attempts=settings.ATTACHMENT_CHECK_MAX_ATTEMPTS
    )
    Attachment.objects.filter(id=never_started.id).update(created_at=long_ago)
    Attachment.objects.filter(id=fresh.id).update(check_started_at=timezone.now())
    Attachment.objects.filter(id=done.id).update(status="ready", check_started_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.attachments_sweep() == 3
    assert sorted(enqueued) == sorted([str(died.id), str(never_started.id)])
    exhausted.refresh_from_db()
    assert (exhausted.status, exhausted.reason) == ("rejected", pipeline.CHECK_FAILED_REASON)
    # A restarted check is not enqueued again by the next sweep while it waits.
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.attachments_sweep() == 0
    assert enqueued == []


def test_uploads_never_sent_are_removed_with_their_files(
    upload, settings, alice, django_capture_on_commit_callbacks
):
    from conversations import services

    old = timezone.now() - dt.timedelta(seconds=settings.ATTACHMENT_UNSENT_KEEP_SECONDS + 60)
    unsent = upload("old.jpg", jpeg_with_gps((800, 600)))
    pipeline.attachment_check(attachment_id=str(unsent.id))
    unsent.refresh_from_db()
    sent = upload("sent.txt", b"kept\n")
    recent = upload("recent.txt", b"kept too\n")
    message = services.message_send(
        conversation=sent.conversation, author=alice, text="hi", client_id="c1"
    ).user_message
    Attachment.objects.filter(id=sent.id).update(message=message, created_at=old)
    Attachment.objects.filter(id=unsent.id).update(created_at=old)
    unsent_files = set(pipeline.attachment_file_names(unsent))
    assert len(unsent_files) == 3 and unsent_files <= all_stored_names()

    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.attachments_unsent_remove() == 1
    assert set(Attachment.objects.values_list("id", flat=True)) == {sent.id, recent.id}
    assert not unsent_files & all_stored_names()
    assert {sent.original_path, recent.original_path} <= all_stored_names()


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
def test_a_draft_being_sent_while_the_cleanup_runs_keeps_its_file(upload, settings, alice):
    """A day-old draft that a send is linking (its row locked, not yet committed)
    when the hourly cleanup runs: the cleanup leaves it, and the message keeps
    its file. On PostgreSQL the cleanup must skip the locked row, not wait on it
    and delete it once the send commits."""
    import threading

    from django.db import connection, transaction

    from conversations import services
    from conversations.attachments import blocks

    draft = upload("old.txt", b"kept\n")
    pipeline.attachment_check(attachment_id=str(draft.id))
    old = timezone.now() - dt.timedelta(seconds=settings.ATTACHMENT_UNSENT_KEEP_SECONDS + 60)
    Attachment.objects.filter(id=draft.id).update(created_at=old)
    message = services.message_send(
        conversation=draft.conversation, author=alice, text="hi", client_id="c1"
    ).user_message
    draft.refresh_from_db()
    linked, release = threading.Event(), threading.Event()

    def send() -> None:
        try:
            with transaction.atomic():
                blocks.attachments_link(files=[draft], message_id=message.id, author_id=alice.pk)
                linked.set()
                release.wait(10)
        finally:
            connection.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert linked.wait(10)
        # The send commits a moment after the cleanup started, whatever it does.
        threading.Timer(1.0, release.set).start()
        removed = pipeline.attachments_unsent_remove()
    finally:
        release.set()
        sender.join()
    assert removed == 0
    kept = Attachment.objects.get(id=draft.id)
    assert kept.message_id == message.id
    assert pipeline.attachment_storage().exists(kept.original_path)


def test_deleting_a_conversation_deletes_its_files(
    upload, make_conversation, django_capture_on_commit_callbacks
):
    from conversations import services

    conversation = make_conversation()
    other = upload("other.txt", b"other\n")
    mine = [
        upload("photo.jpg", jpeg_with_gps((900, 900)), conversation=conversation),
        upload("notes.md", b"# notes\n", conversation=conversation),
    ]
    for attachment in mine:
        pipeline.attachment_check(attachment_id=str(attachment.id))
        attachment.refresh_from_db()
    files = {name for attachment in mine for name in pipeline.attachment_file_names(attachment)}
    assert len(files) == 4 and files <= all_stored_names()
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_delete(conversation=conversation)
    assert not files & all_stored_names()
    assert other.original_path in all_stored_names()


def test_a_rolled_back_delete_keeps_the_files(upload, django_capture_on_commit_callbacks):
    from django.db import transaction

    attachment = upload("notes.txt", b"hello\n")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            attachment.delete()
            raise RuntimeError("rolled back")
    assert callbacks == []
    assert attachment.original_path in all_stored_names()


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
async def test_the_conversation_socket_hears_attachment_updated(alice, upload, socket_for):
    attachment = await sync_to_async(upload)("photo.jpg", jpeg_with_gps((1200, 900)))
    socket, connected = await socket_for(alice, attachment.conversation_id)
    assert connected
    status = await sync_to_async(pipeline.attachment_check)(attachment_id=str(attachment.id))
    assert status == "ready"
    frames = await receive_frames(socket, until=lambda f: f["type"] == "attachment.updated")
    payload = frames[-1]["attachment"]
    assert payload["id"] == str(attachment.id)
    assert (payload["status"], payload["kind"], payload["width"], payload["height"]) == (
        "ready",
        "image",
        1200,
        900,
    )


def test_with_the_files_api_a_prepared_file_is_uploaded_once(upload, settings):
    from claude import files

    settings.CLAUDE_FILES_API = True
    assert files.files_api_available()
    attachment = upload("photo.jpg", jpeg_with_gps((2000, 1500)))
    pipeline.attachment_check(attachment_id=str(attachment.id))
    attachment.refresh_from_db()
    assert attachment.status == "ready" and attachment.claude_file_id
    first_id = attachment.claude_file_id
    pipeline.attachment_check(attachment_id=str(attachment.id))
    attachment.refresh_from_db()
    assert attachment.claude_file_id == first_id
