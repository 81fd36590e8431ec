"""The attachment endpoints over HTTP (docs/uploads.md): what each answers, who
may reach it, the file's headers, and what an upload tells open sockets."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core.files.storage import storages
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client

from conversations.attachments.uploads import INLINE_MEDIA_TYPES, attachment_served_type
from conversations.models import Attachment, Message
from tests.attachments.conftest import (
    attachment_ready,
    multipart,
    png_bytes,
    stored_names,
)
from tests.conftest import ORIGIN, session_cookie_for

pytestmark = pytest.mark.django_db


def upload_url(conversation) -> str:
    return f"/c/{conversation.id}/attachments/"


def post_file(client: Client, conversation, filename: str | None = "notes.txt", data=b"hi\n", **kw):
    body, content_type = multipart(filename, data, **kw)
    return client.post(upload_url(conversation), data=body, content_type=content_type)


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


# --- POST /c/<id>/attachments/ ---------------------------------------------------------


def test_upload_answers_202_with_the_attachment_as_checking(
    alice_client, alice, make_conversation, enqueued, django_capture_on_commit_callbacks
):
    conversation = make_conversation()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_file(alice_client, conversation, "notes.txt", b"first notes\n")
    assert response.status_code == 202
    stored = Attachment.objects.get()
    assert response.json() == {
        "id": str(stored.id),
        "name": "notes.txt",
        "size": 12,
        "status": "checking",
    }
    assert (stored.conversation_id, stored.uploaded_by_id, stored.message_id) == (
        conversation.id,
        alice.pk,
        None,
    )
    with storages["attachments"].open(stored.original_path) as handle:
        assert handle.read() == b"first notes\n"
    # Checked in the language of the upload's request (its reason is said in it).
    assert enqueued == [(str(stored.id), "en")]


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("../../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("bell\x07and\x1bescape\x7f.txt", "bellandescape.txt"),
        ("n" * 500 + ".txt", "n" * 251 + ".txt"),
    ],
    ids=["dot-dot-slash", "backslashes", "control-characters", "500-characters"],
)
def test_upload_cleans_the_file_name(alice_client, make_conversation, enqueued, sent, shown):
    response = post_file(alice_client, make_conversation(), sent)
    assert response.status_code == 202
    assert response.json()["name"] == shown
    stored = Attachment.objects.get()
    assert stored.name == shown
    # The stored file is under a random name in its own folder, whatever was sent.
    assert stored.original_path.startswith("originals/")
    assert ".." not in stored.original_path and "passwd" not in stored.original_path
    assert stored_names() == [stored.original_path.split("/", 1)[1]]


def test_a_name_that_is_only_a_path_is_refused_as_no_file(
    alice_client, make_conversation, enqueued
):
    """Django's parser drops a part whose name is empty after taking its last
    path part (`../`): the upload has no file, and says so."""
    response = post_file(alice_client, make_conversation(), "../")
    assert response.status_code == 400
    assert response.json()["code"] == "missing_file"


@pytest.mark.parametrize(
    ("body_kw", "code"),
    [
        ({"field": "document"}, "missing_file"),
        ({"filename": None}, "missing_file"),
        ({"filename": ""}, "missing_file"),
        ({"files": 2}, "one_file_only"),
    ],
    ids=["other-field", "no-filename", "empty-filename", "two-files"],
)
def test_upload_without_exactly_one_named_file_is_400(
    alice_client, make_conversation, enqueued, body_kw, code
):
    kw = dict(body_kw)
    filename = kw.pop("filename", "notes.txt")
    response = post_file(alice_client, make_conversation(), filename, **kw)
    assert response.status_code == 400
    assert response.json()["code"] == code and response.json()["error"]
    assert not Attachment.objects.exists() and stored_names() == [] and enqueued == []


def test_upload_that_is_not_multipart_is_400(alice_client, make_conversation, enqueued):
    response = alice_client.post(
        upload_url(make_conversation()), data=b"raw bytes", content_type="application/pdf"
    )
    assert response.status_code == 400 and response.json()["code"] == "not_multipart"


def test_upload_is_post_only(alice_client, make_conversation):
    assert alice_client.get(upload_url(make_conversation())).status_code == 405


def test_oversized_body_is_413_from_its_content_length_without_reading_it(
    alice_client, make_conversation, enqueued, small_limit
):
    class Unreadable(io.RawIOBase):
        def read(self, size=-1):
            raise AssertionError("the body was read")

    response = alice_client.generic(
        "POST",
        upload_url(make_conversation()),
        **{
            "wsgi.input": Unreadable(),
            "CONTENT_LENGTH": str(40 * 1024 * 1024),
            "CONTENT_TYPE": "multipart/form-data; boundary=x",
        },
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": "This file is 40.0 MB; the limit is 1.0 MB.",
        "code": "file_too_large",
    }
    assert not Attachment.objects.exists() and enqueued == []


def test_file_over_the_limit_by_a_byte_is_413(
    alice_client, make_conversation, enqueued, small_limit
):
    """Its Content-Length is within the multipart allowance: the streaming limit refuses it."""
    response = post_file(alice_client, make_conversation(), "big.bin", b"x" * (small_limit + 1))
    assert response.status_code == 413
    assert response.json() == {
        "error": "This file is over the 1.0 MB limit.",
        "code": "file_too_large",
    }
    assert not Attachment.objects.exists() and stored_names() == [] and enqueued == []


def test_file_at_the_limit_is_accepted(alice_client, make_conversation, enqueued, small_limit):
    response = post_file(alice_client, make_conversation(), "exact.bin", b"x" * small_limit)
    assert response.status_code == 202 and response.json()["size"] == small_limit


def test_quota_exceeded_is_413_with_a_clear_message(
    alice_client, alice, make_conversation, enqueued, settings
):
    settings.ATTACHMENT_QUOTA_BYTES = 1024**3
    conversation = make_conversation()
    Attachment.objects.create(
        conversation=conversation, uploaded_by=alice, name="archive.pdf", size=1024**3
    )
    response = post_file(alice_client, conversation, "one-more.txt", b"x")
    assert response.status_code == 413
    assert response.json() == {
        "error": "Your files use 1.0 GB of 1.0 GB; delete some conversations with files to make room.",
        "code": "quota_exceeded",
    }
    assert Attachment.objects.count() == 1 and stored_names() == [] and enqueued == []


def test_upload_needs_the_csrf_token(alice, make_conversation, enqueued):
    conversation = make_conversation()
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert post_file(client, conversation).status_code == 403
    assert not Attachment.objects.exists() and stored_names() == []

    client.get(f"/c/{conversation.id}/")  # the page sets the CSRF cookie
    token = client.cookies[django_settings.CSRF_COOKIE_NAME].value
    body, content_type = multipart("notes.txt", b"hi", extra={"csrfmiddlewaretoken": token})
    response = client.post(upload_url(conversation), data=body, content_type=content_type)
    assert response.status_code == 202
    body, content_type = multipart("notes.txt", b"hi")
    response = client.post(
        upload_url(conversation), data=body, content_type=content_type, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 202


# --- GET /attachments/<id>/ ----------------------------------------------------------


def test_status_answers_the_attachment_payload(alice_client, make_conversation):
    attachment = attachment_ready(make_conversation())
    response = alice_client.get(f"/attachments/{attachment.id}/")
    assert response.status_code == 200
    assert response.json() == {
        "id": str(attachment.id),
        "name": "diagram.png",
        "size": attachment.size,
        "status": "ready",
        "reason": "",
        "kind": "image",
        "media_type": "image/png",
        "pages": None,
        "width": 40,
        "height": 30,
        "message_id": None,
    }
    assert "private" in response["Cache-Control"] and "no-cache" in response["Cache-Control"]


def test_status_of_a_rejected_file_says_why(alice_client, alice, make_conversation):
    attachment = Attachment.objects.create(
        conversation=make_conversation(),
        uploaded_by=alice,
        name="book.pdf",
        status=Attachment.Status.REJECTED,
        reason="This PDF has 812 pages; the limit is 100.",
    )
    data = alice_client.get(f"/attachments/{attachment.id}/").json()
    assert (data["status"], data["reason"]) == (
        "rejected",
        "This PDF has 812 pages; the limit is 100.",
    )


def test_unknown_attachment_is_404(alice_client):
    missing = uuid.uuid4()
    for path in ("/", "/file", "/thumbnail"):
        assert alice_client.get(f"/attachments/{missing}{path}").status_code == 404
    assert alice_client.get("/attachments/not-a-uuid/").status_code == 404


# --- GET /attachments/<id>/file and /thumbnail ----------------------------------------


def test_file_is_served_inline_for_an_image_with_safe_headers(alice_client, make_conversation):
    data = png_bytes()
    attachment = attachment_ready(make_conversation(), name="diagram.png", data=data)
    response = alice_client.get(f"/attachments/{attachment.id}/file")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'inline; filename="diagram.png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["Content-Length"] == str(len(data))
    assert "private" in response["Cache-Control"]


def test_a_pdf_is_served_inline(alice_client, make_conversation):
    attachment = attachment_ready(
        make_conversation(),
        name="spec.pdf",
        media_type="application/pdf",
        kind="pdf",
        data=b"%PDF-1.7 ...",
    )
    response = alice_client.get(f"/attachments/{attachment.id}/file")
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="spec.pdf"'


def test_a_text_file_is_a_download_in_utf8(alice_client, make_conversation):
    attachment = attachment_ready(
        make_conversation(),
        name="main.py",
        media_type="text/x-python",
        kind="text",
        data=b"print('hi')\n",
    )
    response = alice_client.get(f"/attachments/{attachment.id}/file")
    assert response["Content-Type"] == "text/x-python; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="main.py"'
    assert response["Content-Security-Policy"] == "sandbox"


def test_a_non_ascii_name_is_encoded_per_rfc_5987(alice_client, make_conversation):
    attachment = attachment_ready(make_conversation(), name="Привет «мир».png")
    disposition = alice_client.get(f"/attachments/{attachment.id}/file")["Content-Disposition"]
    assert disposition == (
        "inline; filename*=utf-8''%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82%20"
        "%C2%AB%D0%BC%D0%B8%D1%80%C2%BB.png"
    )


def test_a_name_with_quotes_cannot_break_out_of_the_header(alice_client, make_conversation):
    attachment = attachment_ready(make_conversation(), name='a"; filename="evil.html.png')
    disposition = alice_client.get(f"/attachments/{attachment.id}/file")["Content-Disposition"]
    assert disposition == 'inline; filename="a\\"; filename=\\"evil.html.png"'


@pytest.mark.parametrize(
    "media_type", ["image/svg+xml", "text/html", "application/xhtml+xml", "application/zip", ""]
)
def test_active_or_unknown_types_are_never_shown_in_place(
    alice_client, make_conversation, media_type
):
    """SVG is not an accepted type, and the file view would not show it in place were
    a row ever to say so: it is sent as a download of plain bytes."""
    assert "image/svg+xml" not in INLINE_MEDIA_TYPES
    assert attachment_served_type(media_type) == "application/octet-stream"
    attachment = attachment_ready(
        make_conversation(), name="x.svg", media_type=media_type, kind="image", data=b"<svg/>"
    )
    response = alice_client.get(f"/attachments/{attachment.id}/file")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")


@pytest.mark.parametrize("status", ["checking", "rejected"])
def test_file_of_an_attachment_not_ready_is_404(alice_client, make_conversation, status):
    attachment = attachment_ready(make_conversation(), status=status, thumbnail=png_bytes(8, 6))
    assert alice_client.get(f"/attachments/{attachment.id}/file").status_code == 404
    assert alice_client.get(f"/attachments/{attachment.id}/thumbnail").status_code == 404


def test_file_whose_stored_copy_is_gone_is_404(alice_client, make_conversation):
    attachment = attachment_ready(make_conversation())
    storages["attachments"].delete(attachment.prepared_path)
    assert alice_client.get(f"/attachments/{attachment.id}/file").status_code == 404


def test_thumbnail_is_served_inline_as_an_image(alice_client, make_conversation):
    thumbnail = png_bytes(8, 6)
    attachment = attachment_ready(make_conversation(), name="photo.jpg", thumbnail=thumbnail)
    response = alice_client.get(f"/attachments/{attachment.id}/thumbnail")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == thumbnail
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'inline; filename="photo-thumbnail.png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"


def test_no_thumbnail_is_404(alice_client, make_conversation):
    attachment = attachment_ready(
        make_conversation(), name="a.txt", media_type="text/plain", kind="text", data=b"a"
    )
    assert alice_client.get(f"/attachments/{attachment.id}/thumbnail").status_code == 404


def test_a_thumbnail_that_is_not_an_image_is_404(alice_client, make_conversation):
    attachment = attachment_ready(make_conversation(), thumbnail=b"<html>not an image</html>")
    assert alice_client.get(f"/attachments/{attachment.id}/thumbnail").status_code == 404


# --- DELETE /attachments/<id>/ --------------------------------------------------------


def test_the_uploader_removes_an_unsent_attachment_and_its_files(
    alice_client, make_conversation, django_capture_on_commit_callbacks
):
    attachment = attachment_ready(make_conversation(), thumbnail=png_bytes(8, 6))
    storage = storages["attachments"]
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.delete(f"/attachments/{attachment.id}/")
    assert response.status_code == 200
    assert response.json() == {"id": str(attachment.id), "deleted": True}
    assert not Attachment.objects.exists()
    assert not storage.exists(attachment.prepared_path)
    assert not storage.exists(attachment.thumbnail_path)
    # Removing twice is removing once.
    assert alice_client.delete(f"/attachments/{attachment.id}/").status_code == 404


def test_a_sent_attachment_cannot_be_removed_from_the_composer(alice_client, make_conversation):
    conversation = make_conversation()
    attachment = attachment_ready(conversation)
    message = Message.objects.create(conversation=conversation, position=0, role="user", text="x")
    Attachment.objects.filter(id=attachment.id).update(message=message)
    response = alice_client.delete(f"/attachments/{attachment.id}/")
    assert response.status_code == 409 and response.json()["code"] == "already_sent"
    assert Attachment.objects.filter(id=attachment.id).exists()
    assert storages["attachments"].exists(attachment.prepared_path)


def test_removal_needs_the_csrf_token(alice, make_conversation):
    attachment = attachment_ready(make_conversation())
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.delete(f"/attachments/{attachment.id}/").status_code == 403
    assert Attachment.objects.filter(id=attachment.id).exists()


def test_status_url_takes_only_get_and_delete(alice_client, make_conversation):
    attachment = attachment_ready(make_conversation())
    assert alice_client.post(f"/attachments/{attachment.id}/").status_code == 405
    assert alice_client.post(f"/attachments/{attachment.id}/file").status_code == 405


# --- Who may reach what ---------------------------------------------------------------


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_someone_who_may_not_see_the_conversation_gets_404_everywhere(
    world, make_conversation, enqueued, who
):
    """Bob (alice's teammate) and carol (another team) get the answer an unknown
    id gets: for the status, the file, the thumbnail, the removal and an upload."""
    conversation = make_conversation()
    attachment = attachment_ready(conversation, thumbnail=png_bytes(8, 6))
    client = Client()
    client.force_login(world[who])
    for path in ("/", "/file", "/thumbnail"):
        response = client.get(f"/attachments/{attachment.id}{path}")
        assert response.status_code == 404, path
        assert b"diagram" not in response.content
    assert client.delete(f"/attachments/{attachment.id}/").status_code == 404
    assert post_file(client, conversation).status_code == 404
    assert list(Attachment.objects.all()) == [attachment]
    assert storages["attachments"].exists(attachment.prepared_path)
    assert enqueued == []


def test_the_uploader_loses_access_with_the_conversation(alice, bob, make_conversation):
    """Whoever may see the conversation may see its files, and nobody else:
    given to bob, alice's own upload is bob's to see, and 404 to her."""
    conversation = make_conversation()
    attachment = attachment_ready(conversation)
    conversation.owner = bob
    conversation.save()
    alice_client = Client()
    alice_client.force_login(alice)
    bob_client = Client()
    bob_client.force_login(bob)
    assert alice_client.get(f"/attachments/{attachment.id}/file").status_code == 404
    assert bob_client.get(f"/attachments/{attachment.id}/file").status_code == 200
    # Seeing it is not owning it: only its uploader takes it out of the composer.
    response = bob_client.delete(f"/attachments/{attachment.id}/")
    assert response.status_code == 403 and response.json()["code"] == "not_uploader"


def test_anonymous_is_sent_to_sign_in_from_every_endpoint(client, make_conversation, enqueued):
    conversation = make_conversation()
    attachment = attachment_ready(conversation)
    responses = [
        post_file(client, conversation),
        client.get(f"/attachments/{attachment.id}/"),
        client.get(f"/attachments/{attachment.id}/file"),
        client.get(f"/attachments/{attachment.id}/thumbnail"),
        client.delete(f"/attachments/{attachment.id}/"),
    ]
    for response in responses:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    assert list(Attachment.objects.all()) == [attachment] and enqueued == []


def test_anonymous_oversized_upload_is_sent_to_sign_in_not_measured(client, make_conversation):
    response = client.generic(
        "POST",
        upload_url(make_conversation()),
        **{"CONTENT_LENGTH": str(10**9), "CONTENT_TYPE": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 302


# --- Through the ASGI stack, as daphne serves it --------------------------------------


async def asgi_post(path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]):
    """One HTTP request through `chatsite.asgi.application`, its body in chunks
    (as a chunked or slow upload arrives); (status, headers, body)."""
    from chatsite.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }
    communicator = ApplicationCommunicator(application, scope)
    for index, chunk in enumerate(chunks):
        await communicator.send_input(
            {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        )
    start = await communicator.receive_output(timeout=20)
    body = b""
    while True:
        message = await communicator.receive_output(timeout=20)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(timeout=5)
    return start["status"], dict(start["headers"]), body


def in_chunks(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def signed_in_headers(user, *, csrf: bool = True) -> list[tuple[bytes, bytes]]:
    cookie = await sync_to_async(session_cookie_for)(user)
    headers = [(b"origin", ORIGIN.encode())]
    if csrf:
        secret = _get_new_csrf_string()
        cookie += f"; {django_settings.CSRF_COOKIE_NAME}={secret}"
        headers.append((b"x-csrftoken", secret.encode()))
    headers.append((b"cookie", cookie.encode()))
    return headers


@pytest.mark.django_db(transaction=True)
async def test_asgi_upload_with_csrf_is_202(alice, make_conversation, enqueued):
    conversation = await sync_to_async(make_conversation)()
    body, content_type = multipart("notes.txt", b"over asgi\n")
    headers = await signed_in_headers(alice)
    headers += [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    status, _, answer = await asgi_post(upload_url(conversation), in_chunks(body), headers)
    assert status == 202, answer
    stored = await sync_to_async(Attachment.objects.get)()
    assert json.loads(answer) == {
        "id": str(stored.id),
        "name": "notes.txt",
        "size": 10,
        "status": "checking",
    }
    assert enqueued == [(str(stored.id), "en")]


@pytest.mark.django_db(transaction=True)
async def test_asgi_upload_without_csrf_is_403(alice, make_conversation, enqueued):
    conversation = await sync_to_async(make_conversation)()
    body, content_type = multipart("notes.txt", b"x")
    headers = await signed_in_headers(alice, csrf=False)
    headers += [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    status, _, _ = await asgi_post(upload_url(conversation), in_chunks(body), headers)
    assert status == 403
    assert not await sync_to_async(Attachment.objects.exists)()


@pytest.mark.django_db(transaction=True)
async def test_asgi_upload_whose_content_length_lies_is_413_while_streaming(
    alice, make_conversation, enqueued, small_limit
):
    """The body claims 2,000 bytes and carries 5 MB: the ASGI request's stream is
    not cut at the claimed length, so the streaming limit is what refuses it."""
    conversation = await sync_to_async(make_conversation)()
    body, content_type = multipart("big.bin", b"\0" * (5 * small_limit))
    headers = await signed_in_headers(alice)
    headers += [(b"content-type", content_type.encode()), (b"content-length", b"2000")]
    status, _, answer = await asgi_post(upload_url(conversation), in_chunks(body), headers)
    assert status == 413
    assert json.loads(answer) == {
        "error": "This file is over the 1.0 MB limit.",
        "code": "file_too_large",
    }
    assert not await sync_to_async(Attachment.objects.exists)()
    assert stored_names() == [] and enqueued == []


class RecordingBody:
    """The `receive` of one request whose body is `chunks`: records how many body
    chunks the application pulled, and then says the client is waiting."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0
        self.pulled_bytes = 0

    async def __call__(self):
        if self.pulled < len(self.chunks):
            chunk = self.chunks[self.pulled]
            self.pulled += 1
            self.pulled_bytes += len(chunk)
            return {
                "type": "http.request",
                "body": chunk,
                "more_body": self.pulled < len(self.chunks),
            }
        await asyncio.Event().wait()  # the client sent everything: wait until cancelled


async def asgi_call(path: str, body: RecordingBody, headers: list[tuple[bytes, bytes]]):
    """One POST through `chatsite.asgi.application`, as daphne calls it; (status,
    headers, body of the answer)."""
    from chatsite.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    await asyncio.wait_for(application(scope, body, send), 20)
    start = next(m for m in sent if m["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), answer


TEN_GB = str(10 * 1024**3).encode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cookie", [None, "sessionid=not-a-session", "expired"])
async def test_asgi_anonymous_upload_is_sent_to_sign_in_before_its_body_is_read(
    alice, make_conversation, enqueued, cookie
):
    """No cookie, a made-up session, a session ended by signing out: 302 to sign
    in (as the view answers), and not one body chunk pulled, whatever its size."""
    conversation = await sync_to_async(make_conversation)()
    headers = [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", TEN_GB)]
    if cookie == "expired":
        signed_in = await signed_in_headers(alice, csrf=False)
        headers += [h for h in signed_in if h[0] == b"cookie"]
        await sync_to_async(Session.objects.all().delete)()  # signed out everywhere
    elif cookie:
        headers.append((b"cookie", cookie.encode()))
    body = RecordingBody(in_chunks(b"\0" * (4 * 64 * 1024)))
    status, answer_headers, _ = await asgi_call(upload_url(conversation), body, headers)
    assert status == 302
    assert (
        answer_headers[b"location"].decode() == f"/accounts/login/?next={upload_url(conversation)}"
    )
    assert body.pulled == 0
    assert not await sync_to_async(Attachment.objects.exists)() and enqueued == []


@pytest.mark.django_db(transaction=True)
async def test_asgi_upload_over_the_limit_by_its_length_is_413_before_its_body_is_read(
    alice, make_conversation, enqueued, small_limit
):
    conversation = await sync_to_async(make_conversation)()
    headers = await signed_in_headers(alice)
    headers += [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", TEN_GB)]
    body = RecordingBody(in_chunks(b"\0" * (4 * 64 * 1024)))
    status, _, answer = await asgi_call(upload_url(conversation), body, headers)
    assert status == 413
    assert json.loads(answer) == {
        "error": "This file is 10.0 GB; the limit is 1.0 MB.",
        "code": "file_too_large",
    }
    assert body.pulled == 0
    assert not await sync_to_async(Attachment.objects.exists)() and enqueued == []


@pytest.mark.django_db(transaction=True)
async def test_asgi_upload_without_a_length_is_411_before_its_body_is_read(
    alice, make_conversation, enqueued, small_limit
):
    """A chunked body (no Content-Length) could be endless: refused with a reason
    before any of it is read; browsers always send the length with a file."""
    conversation = await sync_to_async(make_conversation)()
    body_bytes, content_type = multipart("big.bin", b"\0" * (3 * small_limit))
    headers = await signed_in_headers(alice)
    headers += [(b"content-type", content_type.encode())]
    body = RecordingBody(in_chunks(body_bytes))
    status, _, answer = await asgi_call(upload_url(conversation), body, headers)
    assert status == 411
    assert json.loads(answer) == {
        "error": "The upload must say its size (a Content-Length header); "
        "a browser sends one with every file.",
        "code": "length_required",
    }
    assert body.pulled == 0
    assert stored_names() == [] and enqueued == []


@pytest.mark.django_db(transaction=True)
async def test_asgi_upload_whose_body_passes_the_limit_stops_being_read_there(
    alice, make_conversation, enqueued, small_limit
):
    """The body claims 2,000 bytes and carries 5 MB: it is read only up to the
    limit (plus a chunk), then refused with 413."""
    conversation = await sync_to_async(make_conversation)()
    body_bytes, content_type = multipart("big.bin", b"\0" * (5 * small_limit))
    headers = await signed_in_headers(alice)
    headers += [(b"content-type", content_type.encode()), (b"content-length", b"2000")]
    body = RecordingBody(in_chunks(body_bytes))
    status, _, answer = await asgi_call(upload_url(conversation), body, headers)
    assert status == 413 and json.loads(answer)["code"] == "file_too_large"
    assert body.pulled_bytes <= small_limit + 64 * 1024 + 64 * 1024
    assert body.pulled < len(body.chunks)
    assert stored_names() == [] and enqueued == []


# --- The chip on every tab -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
async def test_upload_reaches_every_open_socket_of_the_conversation(
    alice, bob, make_conversation, socket_for, enqueued
):
    """Each of alice's tabs on the conversation gets one `attachment.updated` as
    checking; bob's socket on his own conversation hears nothing."""
    conversation = await sync_to_async(make_conversation)()
    bobs = await sync_to_async(make_conversation)(bob)
    tab_one, connected_one = await socket_for(alice, conversation.id)
    tab_two, connected_two = await socket_for(alice, conversation.id)
    elsewhere, connected_elsewhere = await socket_for(bob, bobs.id)
    assert connected_one and connected_two and connected_elsewhere

    client = Client()
    await sync_to_async(client.force_login)(alice)
    response = await sync_to_async(post_file)(client, conversation, "plan.txt", b"the plan\n")
    assert response.status_code == 202
    attachment_id = response.json()["id"]

    for tab in (tab_one, tab_two):
        frame = json.loads(await tab.receive_from(timeout=5))
        assert frame["type"] == "attachment.updated"
        assert frame["attachment"] == {
            "id": attachment_id,
            "name": "plan.txt",
            "size": 9,
            "status": "checking",
            "reason": "",
            "kind": "",
            "media_type": "",
            "pages": None,
            "width": None,
            "height": None,
            "message_id": None,
        }
        assert await tab.receive_nothing(timeout=0.2)
    assert await elsewhere.receive_nothing(timeout=0.2)
    assert enqueued == [(attachment_id, "en")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
async def test_a_removal_reaches_every_open_socket_of_the_conversation(
    alice, bob, make_conversation, socket_for, enqueued
):
    """alice removes a chip in one tab: both her tabs get `attachment.deleted`
    (the other drops its chip rather than send a file that is gone); bob's socket
    on his own conversation hears nothing, and a refused removal sends nothing."""
    conversation = await sync_to_async(make_conversation)()
    bobs = await sync_to_async(make_conversation)(bob)
    attachment = await sync_to_async(attachment_ready)(conversation)
    tab_one, connected_one = await socket_for(alice, conversation.id)
    tab_two, connected_two = await socket_for(alice, conversation.id)
    elsewhere, connected_elsewhere = await socket_for(bob, bobs.id)
    assert connected_one and connected_two and connected_elsewhere

    client = Client()
    await sync_to_async(client.force_login)(alice)
    response = await sync_to_async(client.delete)(f"/attachments/{attachment.id}/")
    assert response.status_code == 200

    for tab in (tab_one, tab_two):
        frame = json.loads(await tab.receive_from(timeout=5))
        assert frame == {"type": "attachment.deleted", "attachment_id": str(attachment.id)}
        assert await tab.receive_nothing(timeout=0.2)
    assert await elsewhere.receive_nothing(timeout=0.2)

    again = await sync_to_async(client.delete)(f"/attachments/{attachment.id}/")
    assert again.status_code == 404
    assert await tab_one.receive_nothing(timeout=0.3)
