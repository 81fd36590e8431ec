"""The upload service and what bounds the request: names, size, quota, storage,
the after-commit hand-offs, and the memory an upload costs."""

from __future__ import annotations

import io
import tracemalloc

import pytest
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.http.multipartparser import MultiPartParser
from django.test import Client

from conversations.attachments.uploads import (
    AttachmentRefused,
    UploadLimitHandler,
    attachment_name_clean,
    attachment_upload,
)
from conversations.models import Attachment
from tests.attachments.conftest import multipart, stored_names

pytestmark = pytest.mark.django_db


# --- Names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\win.ini", "win.ini"),
        ("/abs/path/notes.md", "notes.md"),
        ("C:\\Users\\alice\\photo.jpg", "photo.jpg"),
        ("re\x07port\x1b[31m\x00.txt", "report[31m.txt"),
        ("line\nbreak\r.csv", "linebreak.csv"),
        # Shown as "invoiceexe.pdf" by a browser were the override kept.
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("   spaced out.txt  ", "spaced out.txt"),
        ("", "file"),
        ("..", "file"),
        ("dir/", "file"),
        ("\x01\x02\x03", "file"),
        ("café.txt", "café.txt"),
        ("cafe\u0301.txt", "café.txt"),  # one form of é, whatever the OS sent
    ],
)
def test_names_are_cleaned_to_what_can_be_shown(raw, shown):
    assert attachment_name_clean(raw) == shown


def test_a_long_name_is_trimmed_to_255_keeping_its_extension():
    name = attachment_name_clean("x" * 500 + ".pdf")
    assert len(name) == 255 and name.endswith("xx.pdf")


def test_a_long_name_with_an_absurd_extension_is_cut_plainly():
    name = attachment_name_clean("a." + "b" * 500)
    assert len(name) == 255 and name.startswith("a.bbb")


# --- The service ------------------------------------------------------------------


def upload(conversation, user, name="notes.txt", data=b"some notes\n"):
    return attachment_upload(
        conversation=conversation, user=user, uploaded_file=SimpleUploadedFile(name, data)
    )


def test_upload_stores_the_bytes_under_a_random_name_and_records_checking(
    alice, make_conversation, enqueued, django_capture_on_commit_callbacks
):
    conversation = make_conversation()
    with django_capture_on_commit_callbacks(execute=True):
        attachment = upload(conversation, alice, name="Quarterly plan.txt", data=b"plan\n")
    stored = Attachment.objects.get()
    assert (stored.id, stored.name, stored.size, stored.status) == (
        attachment.id,
        "Quarterly plan.txt",
        5,
        "checking",
    )
    assert stored.conversation_id == conversation.id and stored.uploaded_by_id == alice.pk
    assert stored.original_path.startswith("originals/")
    assert "plan" not in stored.original_path.lower()
    with storages["attachments"].open(stored.original_path) as handle:
        assert handle.read() == b"plan\n"
    assert enqueued == [(str(attachment.id), "en")]


def test_two_uploads_of_one_name_are_two_files(alice, make_conversation, enqueued):
    conversation = make_conversation()
    first = upload(conversation, alice, data=b"one")
    second = upload(conversation, alice, data=b"two")
    assert first.original_path != second.original_path
    assert len(stored_names()) == 2


def test_the_check_is_enqueued_after_commit_and_never_on_rollback(
    alice, make_conversation, enqueued, django_capture_on_commit_callbacks
):
    conversation = make_conversation()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                upload(conversation, alice)
                # Nothing went out while the transaction was open.
                assert enqueued == []
                raise RuntimeError("the request failed after the upload")
    assert callbacks == [] and enqueued == []
    assert not Attachment.objects.exists()


def test_a_failed_insert_leaves_no_file_behind(alice, make_conversation, enqueued, monkeypatch):
    conversation = make_conversation()

    def broken_create(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Attachment.objects, "create", broken_create)
    with pytest.raises(RuntimeError):
        upload(conversation, alice)
    assert stored_names() == [] and enqueued == []


def test_only_the_owner_uploads_into_a_conversation(bob, make_conversation, enqueued):
    """The view's 404 keeps others out today; the service refuses too, for a
    conversation someone may see without owning it (team sharing)."""
    conversation = make_conversation()
    with pytest.raises(AttachmentRefused) as refused:
        upload(conversation, bob)
    assert (refused.value.code, refused.value.http_status) == ("not_owner", 403)
    assert not Attachment.objects.exists() and stored_names() == []


def test_a_file_over_the_limit_is_refused_before_it_is_stored(
    alice, make_conversation, enqueued, settings
):
    settings.ATTACHMENT_MAX_BYTES = 10
    with pytest.raises(AttachmentRefused) as refused:
        upload(make_conversation(), alice, data=b"x" * 11)
    assert refused.value.code == "file_too_large" and refused.value.http_status == 413
    assert refused.value.message == "This file is 11 bytes; the limit is 10 bytes."
    assert stored_names() == []


def test_the_quota_counts_every_stored_upload_of_the_person(
    alice, bob, make_conversation, enqueued, settings
):
    settings.ATTACHMENT_QUOTA_BYTES = 1024**3
    conversation = make_conversation()
    Attachment.objects.create(
        conversation=conversation, uploaded_by=alice, name="big.pdf", size=1024**3 - 5
    )
    # Bob's files are his own: they do not count against alice.
    Attachment.objects.create(
        conversation=make_conversation(bob), uploaded_by=bob, name="b.pdf", size=10
    )
    upload(conversation, alice, data=b"12345")  # exactly full
    with pytest.raises(AttachmentRefused) as refused:
        upload(conversation, alice, data=b"1")
    assert (refused.value.code, refused.value.http_status) == ("quota_exceeded", 413)
    assert refused.value.message == (
        "Your files use 1.0 GB of 1.0 GB; delete some conversations with files to make room."
    )
    assert Attachment.objects.filter(uploaded_by=alice).count() == 2
    assert len(stored_names()) == 1


def test_the_quota_message_names_the_file_that_does_not_fit(
    alice, make_conversation, enqueued, settings
):
    settings.ATTACHMENT_QUOTA_BYTES = 1024**3
    conversation = make_conversation()
    Attachment.objects.create(
        conversation=conversation, uploaded_by=alice, name="big.pdf", size=1000 * 1024**2
    )
    with pytest.raises(AttachmentRefused) as refused:
        attachment_upload(
            conversation=conversation,
            user=alice,
            uploaded_file=SimpleUploadedFile("more.pdf", b"x" * (30 * 1024**2)),
        )
    assert refused.value.message == (
        "Your files use 1000.0 MB of 1.0 GB and this one is 30.0 MB; "
        "delete some conversations with files to make room."
    )


# --- The upload handler: bounded whatever the request claims ------------------------


class CountingStream(io.BytesIO):
    """A request body that records how much of it was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def parse(body: bytes, content_type: str, *, declared: int | None, max_bytes: int):
    """Parse a body as Django does for an ASGI request (whose stream is not
    capped at its Content-Length) with the upload's handlers."""
    from django.core.files.uploadhandler import (
        MemoryFileUploadHandler,
        TemporaryFileUploadHandler,
    )

    meta = {"CONTENT_TYPE": content_type}
    if declared is not None:
        meta["CONTENT_LENGTH"] = str(declared)
    limit = UploadLimitHandler(max_bytes=max_bytes)
    stream = CountingStream(body)
    parser = MultiPartParser(
        meta, stream, [limit, MemoryFileUploadHandler(), TemporaryFileUploadHandler()]
    )
    _, files = parser.parse()
    return limit, files, stream


@pytest.mark.parametrize("declared", ["honest", "lying"])
def test_the_handler_stops_reading_once_the_file_passes_the_limit(declared):
    """A 40 MB file against a 1 MB limit: the parse stops a chunk past the
    limit, keeps no file, and reads nothing more of the body, whether the
    Content-Length was honest or claimed a few bytes."""
    body, content_type = multipart("big.bin", b"\0" * (40 * 1024 * 1024))
    length = len(body) if declared == "honest" else 1000
    limit, files, stream = parse(body, content_type, declared=length, max_bytes=1024 * 1024)
    assert limit.exceeded and not files
    assert stream.bytes_read < 2 * 1024 * 1024


def test_the_handler_lets_a_file_at_the_limit_through():
    body, content_type = multipart("exact.bin", b"y" * 4096)
    limit, files, _ = parse(body, content_type, declared=len(body), max_bytes=4096)
    assert not limit.exceeded
    assert files["file"].size == 4096 and files["file"].read() == b"y" * 4096


def test_a_refused_upload_leaves_no_temporary_file(tmp_path, settings):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    body, content_type = multipart("big.bin", b"\0" * (8 * 1024 * 1024))
    limit, files, _ = parse(body, content_type, declared=len(body), max_bytes=5 * 1024 * 1024)
    assert limit.exceeded and not files
    assert list(tmp_path.iterdir()) == []


# --- Memory ---------------------------------------------------------------------------


def test_a_30_mb_upload_costs_the_web_process_a_bounded_amount_of_memory(
    alice, make_conversation, enqueued, settings, tmp_path
):
    """A full-size (30 MB) upload through the view allocates well under a MB at
    its peak (measured: 227 KiB): the body streams through 64 KiB chunks to a
    temporary file, which then moves into storage. The body is read from a file,
    as a server hands it over, so nothing of the test holds it in memory either."""
    assert settings.ATTACHMENT_MAX_BYTES == 30 * 1024 * 1024
    conversation = make_conversation()
    body, content_type = multipart("scan.pdf", b"%PDF" + b"\x01" * (30 * 1024 * 1024 - 4))
    body_file = tmp_path / "body"
    body_file.write_bytes(body)
    del body
    client = Client()
    client.force_login(alice)
    # A first request imports what the view needs (about 2 MB of modules).
    warm_up, warm_up_type = multipart("small.txt", b"hi")
    client.post(f"/c/{conversation.id}/attachments/", data=warm_up, content_type=warm_up_type)
    with body_file.open("rb") as wsgi_input:
        tracemalloc.start()
        try:
            response = client.generic(
                "POST",
                f"/c/{conversation.id}/attachments/",
                **{
                    "wsgi.input": wsgi_input,
                    "CONTENT_LENGTH": str(body_file.stat().st_size),
                    "CONTENT_TYPE": content_type,
                },
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 202, response.content
    assert Attachment.objects.get(name="scan.pdf").size == 30 * 1024 * 1024
    print(f"\npeak Python allocations during a 30 MB upload: {peak / 1024:.0f} KiB")
    assert peak < 1024 * 1024


def test_the_web_process_leaves_multipart_parsing_to_django():
    """daphne's requests do not parse an upload's body a second time (Twisted's
    own form parser cost 360 MB for a 30 MB upload)."""
    from types import SimpleNamespace

    import daphne.http_protocol
    from twisted.web.test.requesthelper import DummyChannel

    from chatsite.web import _request_bodies_left_to_django

    original = daphne.http_protocol.WebRequest
    channel = DummyChannel()
    channel.factory = SimpleNamespace(server=SimpleNamespace(protocol_connected=lambda p: None))
    try:
        assert original(channel)._parsePOSTFormSubmission is True
        _request_bodies_left_to_django()
        request = daphne.http_protocol.WebRequest(channel)
        assert request._parsePOSTFormSubmission is False
    finally:
        daphne.http_protocol.WebRequest = original
