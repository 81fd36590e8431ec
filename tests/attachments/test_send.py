"""Sending files to Claude: which ids a message may carry, the blocks the API
gets, the request's limits, the estimate and the budget hold.

The files are made here (real JPEG, PNG, PDF and text bytes, written to the
attachments storage) and their rows created ready, as the check would leave
them. Sends go through the real socket to the in-process fake Claude, wrapped
in a recorder of the request bodies it received.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image
from pypdf import PdfWriter

import claude.client
from claude.fake.app import fake_app_from_env
from claude.files import file_upload
from conversations import services
from conversations.attachments import blocks
from conversations.models import Attachment, Message
from tests.conftest import completed, receive_frames
from usage.models import ApiCall, BudgetReservation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]


# --- the files ---------------------------------------------------------------


def jpeg_bytes(size=(64, 48), color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG", quality=85)
    return out.getvalue()


def png_bytes(size=(40, 40), color=(10, 120, 200, 255)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, color).save(out, "PNG")
    return out.getvalue()


def pdf_bytes(pages: int = 2) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


KINDS = {
    "image/jpeg": ("image", jpeg_bytes, "photo.jpg"),
    "image/png": ("image", png_bytes, "diagram.png"),
    "application/pdf": ("pdf", pdf_bytes, "report.pdf"),
    "text/plain": ("text", lambda: "name,qty\nbolts,12\nécrous,30\n".encode(), "parts.csv"),
}


def make_attachment(
    conversation,
    user,
    media_type: str = "image/jpeg",
    *,
    status: str = Attachment.Status.READY,
    data: bytes | None = None,
    name: str | None = None,
    **fields,
) -> Attachment:
    """A file uploaded into `conversation` by `user`, as the check leaves it."""
    kind, make, default_name = KINDS[media_type]
    data = make() if data is None else data
    path = storages["attachments"].save(f"prepared/{uuid.uuid4().hex}", ContentFile(data))
    values = {
        "conversation": conversation,
        "uploaded_by": user,
        "name": name or default_name,
        "size": len(data),
        "status": status,
        "kind": kind if status == Attachment.Status.READY else "",
        "media_type": media_type,
        "prepared_path": path if status == Attachment.Status.READY else "",
        "prepared_size": len(data),
    }
    if kind == "pdf":
        values["pages"] = 2
    if kind == "image":
        values["width"], values["height"] = Image.open(io.BytesIO(data)).size
    values.update(fields)
    return Attachment.objects.create(**values)


# --- what the fake received --------------------------------------------------


class RequestRecorder:
    """The fake's ASGI app, keeping the JSON body of every request it is sent."""

    def __init__(self, app) -> None:
        self.app = app
        self.bodies: list[tuple[str, dict]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/messages"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        path = scope["path"]

        async def receive_recorded():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    self.bodies.append((path, json.loads(b"".join(chunks))))
            return message

        await self.app(scope, receive_recorded, send)

    def chats(self) -> list[dict]:
        return [body for path, body in self.bodies if path == "/v1/messages"]


@pytest.fixture
def recorder(monkeypatch):
    """The in-process fake Claude of this test, recording what it is sent (the
    client is built on first use, after this: `claude.client.fake_app`)."""
    wrapped = RequestRecorder(fake_app_from_env())
    monkeypatch.setattr(claude.client, "_fake_app", wrapped)
    return wrapped


def send_frame(text: str, attachments, client_id: str | None = None) -> dict:
    return {
        "type": "message.send",
        "text": text,
        "client_id": client_id or uuid.uuid4().hex,
        "attachments": [str(a.id) for a in attachments],
    }


def error_or_completed(frame: dict) -> bool:
    return frame["type"] in ("error", "message.completed")


def base64_of(attachment: Attachment) -> str:
    with storages["attachments"].open(attachment.prepared_path, "rb") as file:
        return base64.b64encode(file.read()).decode()


def without_cache_control(block: dict) -> dict:
    return {k: v for k, v in block.items() if k != "cache_control"}


@sync_to_async
def fresh(attachment: Attachment) -> Attachment:
    return Attachment.objects.get(id=attachment.id)


@sync_to_async
def chat_calls(conversation) -> list[ApiCall]:
    return list(
        ApiCall.objects.filter(conversation_uuid=conversation.id, purpose="chat").order_by(
            "created_at"
        )
    )


@sync_to_async
def message_count(conversation) -> int:
    return Message.objects.filter(conversation=conversation).count()


# --- sending -----------------------------------------------------------------


async def test_each_kind_goes_to_claude_in_the_api_shape_files_first_then_the_text(
    alice, make_conversation, socket_for, recorder
):
    """A JPEG, a PNG, a PDF and a CSV sent with a question reach Claude as two
    image blocks, a native PDF document and a text document titled with the file
    name, in upload order, then the text; the message lists them, every tab hears
    each one is sent, and the rows belong to the message."""
    conversation = await sync_to_async(make_conversation)()
    files = [
        await sync_to_async(make_attachment)(conversation, alice, media_type)
        for media_type in ("image/jpeg", "image/png", "application/pdf", "text/plain")
    ]
    socket, _ = await socket_for(alice, conversation.id)
    other_tab, _ = await socket_for(alice, conversation.id)

    # Listed in another order than uploaded: Claude gets them in upload order.
    await socket.send_json_to(send_frame("What is in these?", files[::-1]))
    frames = await receive_frames(socket, until=completed)

    [body] = recorder.chats()
    [turn] = body["messages"]
    assert turn["role"] == "user"
    jpeg, png, pdf, text = files
    assert turn["content"][:4] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                     "data": base64_of(jpeg)}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64_of(png)}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": base64_of(pdf)}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "name,qty\nbolts,12\nécrous,30\n"},
         "title": "parts.csv"},
    ]
    # The cache breakpoint stays on the last block: the text.
    assert turn["content"][4] == {
        "type": "text", "text": "What is in these?", "cache_control": {"type": "ephemeral"}
    }
    assert len(turn["content"]) == 5
    # The fake says what it read: the files reached it as files.
    assert "I read the attachments" in frames[-1]["text"]
    assert '"parts.csv"' in frames[-1]["text"]

    [user] = [f["message"] for f in frames if f["type"] == "message.created"
              and f["message"]["role"] == "user"]
    assert [a["id"] for a in user["attachments"]] == [str(f.id) for f in files]
    assert user["attachments"][0] | {"id": None} == {
        "id": None, "name": "photo.jpg", "size": jpeg.size, "status": "ready", "reason": "",
        "kind": "image", "media_type": "image/jpeg", "pages": None, "width": 64, "height": 48,
        "message_id": user["id"],
    }
    assert user["attachments"][2]["pages"] == 2
    updates = [f["attachment"] for f in frames if f["type"] == "attachment.updated"]
    assert sorted(a["id"] for a in updates) == sorted(str(f.id) for f in files)
    assert {a["message_id"] for a in updates} == {user["id"]}
    heard = await receive_frames(other_tab, until=completed)
    assert len([f for f in heard if f["type"] == "attachment.updated"]) == 4
    for attachment in files:
        assert str((await fresh(attachment)).message_id) == user["id"]


async def test_a_follow_up_reads_the_earlier_files_from_the_cache(
    alice, make_conversation, socket_for, recorder
):
    """The files stay in the history, byte for byte, before the cache breakpoint:
    a follow-up question about them reads the whole first turn, files included,
    from the prompt cache."""
    conversation = await sync_to_async(make_conversation)()
    pdf = await sync_to_async(make_attachment)(conversation, alice, "application/pdf")
    image = await sync_to_async(make_attachment)(conversation, alice, "image/jpeg")
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame("Summarise the report.", [pdf, image]))
    await receive_frames(socket, until=completed)
    await socket.send_json_to(send_frame("And the second page?", []))
    await receive_frames(socket, until=completed)

    first, follow_up = recorder.chats()
    turns = follow_up["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[0]["content"] == [without_cache_control(b) for b in first["messages"][0]["content"]]
    assert turns[0]["content"][0]["source"]["data"] == base64_of(pdf)
    assert turns[2]["content"] == [
        {"type": "text", "text": "And the second page?", "cache_control": {"type": "ephemeral"}}
    ]
    first_call, second_call = await chat_calls(conversation)
    written = first_call.cache_write_5m_tokens + first_call.cache_write_1h_tokens
    # The first turn's whole prompt was written to the cache, and read back whole:
    # the PDF's two pages included (the fake bills a page as its image, ~1,532 tokens).
    assert written > 2 * 1_500
    assert second_call.cache_read_tokens == written


async def test_files_with_no_text_are_the_whole_message(
    alice, make_conversation, socket_for, recorder
):
    """As on claude.ai, files can be sent without a word: Claude gets the file
    alone, and the conversation is titled with its name."""
    conversation = await sync_to_async(make_conversation)()
    image = await sync_to_async(make_attachment)(conversation, alice, name="whiteboard.jpg")
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame("   ", [image]))
    frames = await receive_frames(socket, until=completed)
    assert frames[-1]["status"] == "complete"

    [body] = recorder.chats()
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                     "data": base64_of(image)},
         "cache_control": {"type": "ephemeral"}},
    ]
    stored = await sync_to_async(Message.objects.get)(conversation=conversation, position=0)
    assert (stored.text, stored.content) == ("", [])
    await sync_to_async(conversation.refresh_from_db)()
    assert conversation.title == "whiteboard.jpg"


async def test_blank_text_and_no_files_is_still_refused(alice, make_conversation, socket_for):
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame("  ", []))
    frame = await socket.receive_json_from(timeout=5)
    assert (frame["type"], frame["code"]) == ("error", "empty_message")


async def test_a_resend_returns_the_stored_message_and_links_nothing_again(
    alice, make_conversation, socket_for, recorder
):
    """The same client_id again (a reconnect's resend) answers with the stored
    pair, its files listed, and changes no file."""
    conversation = await sync_to_async(make_conversation)()
    image = await sync_to_async(make_attachment)(conversation, alice)
    socket, _ = await socket_for(alice, conversation.id)
    frame = send_frame("Look", [image], client_id="same-1")
    await socket.send_json_to(frame)
    await receive_frames(socket, until=completed)
    sent = await fresh(image)

    await socket.send_json_to(frame)
    again = await receive_frames(
        socket,
        until=lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant",
    )
    assert await socket.receive_nothing(timeout=0.2)
    created = [f["message"] for f in again if f["type"] == "message.created"]
    assert created[0]["client_id"] == "same-1"
    assert [a["id"] for a in created[0]["attachments"]] == [str(image.id)]
    assert not [f for f in again if f["type"] == "attachment.updated"]
    after = await fresh(image)
    assert (after.message_id, after.updated_at) == (sent.message_id, sent.updated_at)
    assert len(recorder.chats()) == 1 and await message_count(conversation) == 2


async def test_with_the_files_api_a_file_goes_by_its_id_and_a_text_file_as_text(
    alice, make_conversation, socket_for, recorder, settings
):
    """With CLAUDE_FILES_API on, an uploaded image or PDF is referenced by its
    file_id (its bytes count nothing against the request's 32 MB); a text file
    still goes as a text document."""
    settings.CLAUDE_FILES_API = True
    conversation = await sync_to_async(make_conversation)()
    uploaded = {}
    for media_type, (_, make, name) in KINDS.items():
        uploaded[media_type] = await file_upload(make(), filename=name, media_type=media_type)
    # 25 MB each as recorded: inline, two would be far past 32 MB.
    image = await sync_to_async(make_attachment)(
        conversation, alice, claude_file_id=uploaded["image/jpeg"], prepared_size=25_000_000
    )
    pdf = await sync_to_async(make_attachment)(
        conversation, alice, "application/pdf", claude_file_id=uploaded["application/pdf"],
        prepared_size=25_000_000,
    )
    text = await sync_to_async(make_attachment)(
        conversation, alice, "text/plain", claude_file_id=uploaded["text/plain"]
    )
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame("Compare", [image, pdf, text]))
    frames = await receive_frames(socket, until=error_or_completed)
    assert frames[-1]["type"] == "message.completed", frames[-1]
    assert frames[-1]["status"] == "complete", frames[-1]

    content = recorder.chats()[0]["messages"][0]["content"]
    assert content[:3] == [
        {"type": "image", "source": {"type": "file", "file_id": uploaded["image/jpeg"]}},
        {"type": "document", "source": {"type": "file", "file_id": uploaded["application/pdf"]}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "name,qty\nbolts,12\nécrous,30\n"},
         "title": "parts.csv"},
    ]


# --- refusals ----------------------------------------------------------------


async def refused(socket, frame: dict) -> dict:
    await socket.send_json_to(frame)
    answer = await socket.receive_json_from(timeout=5)
    assert answer["type"] == "error", answer
    return answer


NOT_FOUND = {"type": "error", "code": "attachment_not_found",
             "message": "One of the files is not in this conversation."}


async def test_an_id_that_is_not_this_persons_file_here_is_refused_alike(
    alice, bob, make_conversation, socket_for, recorder
):
    """A made-up id, bob's file, and alice's own file from her other conversation
    are all refused with the same words, which say nothing of whether it exists;
    nothing is stored, nothing is sent, and the files stay unsent."""
    conversation = await sync_to_async(make_conversation)()
    other = await sync_to_async(make_conversation)()
    bobs_conversation = await sync_to_async(make_conversation)(bob)
    bobs_file = await sync_to_async(make_attachment)(bobs_conversation, bob)
    alices_elsewhere = await sync_to_async(make_attachment)(other, alice)
    mine = await sync_to_async(make_attachment)(conversation, alice)
    made_up = Attachment(id=uuid.uuid4())
    socket, _ = await socket_for(alice, conversation.id)

    for foreign in (made_up, bobs_file, alices_elsewhere):
        answer = await refused(socket, send_frame("hi", [mine, foreign], client_id="c1"))
        assert answer == {**NOT_FOUND, "client_id": "c1"}

    # And the other way: alice's file id in bob's own conversation.
    bobs_socket, _ = await socket_for(bob, bobs_conversation.id)
    answer = await refused(bobs_socket, send_frame("mine now", [mine], client_id="c2"))
    assert answer == {**NOT_FOUND, "client_id": "c2"}

    assert await message_count(conversation) == 0 and await message_count(bobs_conversation) == 0
    assert recorder.chats() == []
    for attachment in (bobs_file, alices_elsewhere, mine):
        assert (await fresh(attachment)).message_id is None


async def test_a_file_still_checking_or_rejected_or_already_sent_is_refused(
    alice, make_conversation, socket_for
):
    conversation = await sync_to_async(make_conversation)()
    checking = await sync_to_async(make_attachment)(
        conversation, alice, status=Attachment.Status.CHECKING
    )
    rejected = await sync_to_async(make_attachment)(
        conversation, alice, "application/pdf", status=Attachment.Status.REJECTED,
        name="scan.pdf", reason="This PDF has 812 pages; the limit is 100.",
    )
    ready = await sync_to_async(make_attachment)(conversation, alice)
    socket, _ = await socket_for(alice, conversation.id)

    answer = await refused(socket, send_frame("hi", [ready, checking]))
    assert (answer["code"], answer["message"]) == (
        "attachment_checking", "Wait for the files to finish checking."
    )
    answer = await refused(socket, send_frame("hi", [rejected, ready]))
    assert answer["code"] == "attachment_rejected"
    assert "scan.pdf" in answer["message"]
    assert "This PDF has 812 pages; the limit is 100." in answer["message"]
    assert await message_count(conversation) == 0

    await socket.send_json_to(send_frame("first", [ready]))
    await receive_frames(socket, until=completed)
    answer = await refused(socket, send_frame("again", [ready]))
    assert answer["code"] == "attachment_sent" and "photo.jpg" in answer["message"]
    assert await message_count(conversation) == 2


@pytest.mark.parametrize(
    "attachments",
    [
        ["not-a-uuid"],
        "one-id",
        ["0b8e6b0e-44b5-4a4f-8d8e-4a0f7bb7d0a1"] * 2,
        [str(uuid.uuid4()) for _ in range(11)],
    ],
    ids=["not-an-id", "not-a-list", "twice", "eleven"],
)
async def test_a_malformed_attachments_field_is_a_bad_frame(
    alice, make_conversation, socket_for, attachments
):
    conversation = await sync_to_async(make_conversation)()
    socket, _ = await socket_for(alice, conversation.id)
    frame = {"type": "message.send", "text": "hi", "client_id": "c", "attachments": attachments}
    answer = await refused(socket, frame)
    assert answer["code"] == "bad_frame" and "attachments" in answer["message"]


async def test_pdf_pages_over_the_request_limit_history_included_are_refused(
    alice, make_conversation, socket_for
):
    """PDF pages count over the whole request: 60 pages already in the
    conversation and 50 more is past the API's 100, and the person is told to
    start a new conversation; 40 more fits."""
    conversation = await sync_to_async(make_conversation)()
    earlier = await sync_to_async(make_attachment)(conversation, alice, "application/pdf", pages=60)
    more = await sync_to_async(make_attachment)(conversation, alice, "application/pdf", pages=50)
    fits = await sync_to_async(make_attachment)(conversation, alice, "application/pdf", pages=40)
    socket, _ = await socket_for(alice, conversation.id)
    await socket.send_json_to(send_frame("read", [earlier]))
    await receive_frames(socket, until=completed)

    answer = await refused(socket, send_frame("and this", [more]))
    assert answer["code"] == "attachment_limit"
    assert "100 PDF pages" in answer["message"] and "110" in answer["message"]
    assert "start a new conversation" in answer["message"]
    await socket.send_json_to(send_frame("and this", [fits]))
    frames = await receive_frames(socket, until=error_or_completed)
    assert frames[-1]["type"] == "message.completed"


async def test_a_request_over_32_mb_after_base64_or_over_the_image_count_is_refused(
    alice, make_conversation, socket_for, monkeypatch
):
    """Inline files count 4/3 of their size: two of 12.5 MB are 33 MB of base64,
    past the API's 32 MB. And past the API's image count (made 2 here), refused."""
    conversation = await sync_to_async(make_conversation)()
    big = [
        await sync_to_async(make_attachment)(conversation, alice, prepared_size=12_500_000)
        for _ in range(2)
    ]
    socket, _ = await socket_for(alice, conversation.id)
    answer = await refused(socket, send_frame("two big ones", big))
    assert answer["code"] == "attachment_limit"
    assert "32 MB" in answer["message"] and "fewer or smaller" in answer["message"]

    monkeypatch.setattr(blocks, "API_MAX_IMAGES", 2)
    small = [await sync_to_async(make_attachment)(conversation, alice) for _ in range(3)]
    answer = await refused(socket, send_frame("three", small))
    assert answer["code"] == "attachment_limit" and "at most 2 images" in answer["message"]
    assert await message_count(conversation) == 0


@pytest.mark.django_db
def test_a_texts_json_escapes_count_in_the_request_size(alice, make_conversation, monkeypatch):
    """A text goes as a JSON string: 100,000 quotes are 200,000 bytes of request,
    not 100,000. With room for 150,000, the quotes are refused, the same size of
    plain letters is not."""
    conversation = make_conversation()
    monkeypatch.setattr(blocks, "API_MAX_REQUEST_BYTES", blocks.REQUEST_BYTES_HEADROOM + 150_000)
    quotes = make_attachment(conversation, alice, "text/plain", data=b'"' * 100_000)
    letters = make_attachment(conversation, alice, "text/plain", data=b"a" * 100_000)
    with pytest.raises(blocks.AttachmentRefused) as refusal:
        blocks.request_limits_check(earlier=[], new=[quotes], text_bytes=0)
    assert refusal.value.code == "attachment_limit"
    assert "would be 0.2 MB" in refusal.value.message
    blocks.request_limits_check(earlier=[], new=[letters], text_bytes=0)


# --- the history, the hold and the estimate -----------------------------------


def _history_with_files(conversation, user, turns: int) -> None:
    """`turns` answered exchanges, each question carrying an image."""
    for i in range(turns):
        question = Message.objects.create(
            conversation=conversation, position=2 * i, role="user", status="complete",
            text=f"q{i}", content=[{"type": "text", "text": f"q{i}"}],
        )
        Message.objects.create(
            conversation=conversation, position=2 * i + 1, role="assistant",
            status="complete", text=f"a{i}",
        )
        make_attachment(conversation, user, message=question)


@pytest.mark.django_db
def test_the_history_files_load_in_one_query_whatever_its_length(alice, make_conversation):
    """A send reads the files of the whole history at once: eight earlier
    questions with a file each cost the same queries as one, and each turn
    carries its own file."""
    queries = []
    for turns in (1, 8):
        conversation = make_conversation()
        _history_with_files(conversation, alice, turns)
        with CaptureQueriesContext(connection) as captured:
            result = services.message_send(conversation=conversation, author=alice, text="next")
        queries.append(len(captured))
        messages = result.job.request.messages
        assert [m["role"] for m in messages] == ["user", "assistant"] * turns + ["user"]
        for turn in messages[:-1:2]:
            assert [b["type"] for b in turn["content"]] == ["image", "text"]
    assert queries[0] == queries[1]


@pytest.mark.django_db
def test_the_budget_hold_counts_the_new_files_tokens(alice, make_conversation):
    """The worst case held for a call includes what the new message's files cost
    (`Attachment.tokens`): 200,000 tokens of PDF hold more than the same text alone."""
    plain, with_pdf = make_conversation(), make_conversation()
    pdf = make_attachment(with_pdf, alice, "application/pdf", tokens=200_000)
    first = services.message_send(conversation=plain, author=alice, text="Summarise it")
    second = services.message_send(
        conversation=with_pdf, author=alice, text="Summarise it", attachment_ids=[pdf.id]
    )
    held = {
        r.message_id: r.amount_usd
        for r in BudgetReservation.objects.filter(
            message_id__in=[first.assistant_message.id, second.assistant_message.id]
        )
    }
    # A hold prices the prompt as 5-minute cache writes: $2.50 a million on Sonnet 5.5.
    extra = held[second.assistant_message.id] - held[first.assistant_message.id]
    assert extra == pytest.approx(Decimal("0.5"), abs=Decimal("0.001"))


@pytest.mark.django_db
def test_the_estimate_counts_the_drafts_ready_files(client, alice, bob, make_conversation):
    """The composer's estimate includes the draft's files, given as the field
    repeated or as a JSON list; files a send would refuse (checking, or someone
    else's) count nothing; a draft of files only is estimated too."""
    conversation = make_conversation()
    image = make_attachment(conversation, alice, data=jpeg_bytes((1000, 1000)))
    pdf = make_attachment(conversation, alice, "application/pdf")
    checking = make_attachment(conversation, alice, status=Attachment.Status.CHECKING)
    bobs = make_attachment(make_conversation(bob), bob)
    client.force_login(alice)
    url = reverse("conversation_estimate", args=[conversation.id])

    def tokens(data) -> int:
        response = client.post(url, data)
        assert response.status_code == 200, response.content
        return response.json()["input_tokens"]

    text_only = tokens({"text": "What is this?"})
    repeated = tokens({"text": "What is this?", "attachments": [str(image.id), str(pdf.id)]})
    as_json = tokens({"text": "What is this?",
                      "attachments": json.dumps([str(image.id), str(pdf.id)])})
    # The fake counts as the API does (docs/fake-claude.md): a 1000x1000 image is
    # 1,334 tokens, a PDF page at least the 1,500 or so of its page image.
    assert repeated == as_json >= text_only + 1_334 + 2 * 1_500
    assert tokens({"text": "What is this?", "attachments": [str(checking.id), str(bobs.id)]}) == (
        text_only
    )
    # Files alone: the image and the message's own 4 tokens.
    assert tokens({"text": "", "attachments": [str(image.id)]}) == 1_334 + 4
    assert client.post(url, {"text": "", "attachments": ["nope"]}).status_code == 400
    assert client.post(url, {"text": ""}).status_code == 400


@pytest.mark.django_db
def test_the_page_lists_each_messages_files_in_one_query(
    client, alice, make_conversation, django_assert_max_num_queries
):
    """The conversation page has each user message's files (for its chips and
    thumbnails) from one query, however many messages carry files."""
    conversation = make_conversation()
    _history_with_files(conversation, alice, 20)
    client.force_login(alice)
    url = reverse("conversation_detail", args=[conversation.id])
    # session, user, conversation, messages, their API calls, their files, the sidebar
    # (the person's teams, their conversations, those shared with them)
    with django_assert_max_num_queries(9):
        response = client.get(url)
    questions = [m for m in response.context["messages_list"] if m.role == "user"]
    assert len(questions) == 20
    assert all(len(m.attachment_list) == 1 for m in questions)
    assert questions[0].attachment_list[0].name == "photo.jpg"


@pytest.mark.django_db
def test_a_file_that_changes_between_the_checks_and_the_link_undoes_the_send(
    alice, make_conversation, monkeypatch
):
    """A file taken by another send (or deleted) after this send read it: the
    guarded link finds it changed, and nothing of this send is stored."""
    conversation = make_conversation()
    image = make_attachment(conversation, alice)
    elsewhere = make_conversation()
    other = Message.objects.create(conversation=elsewhere, position=0, role="user", text="x")
    checked = blocks.attachments_for_send

    def checked_then_taken(**kwargs):
        files = checked(**kwargs)
        Attachment.objects.filter(id=image.id).update(message=other)
        return files

    monkeypatch.setattr(blocks, "attachments_for_send", checked_then_taken)
    with pytest.raises(services.ChatInputError) as refused_send:
        services.message_send(
            conversation=conversation, author=alice, text="hi", attachment_ids=[image.id]
        )
    assert refused_send.value.code == "attachment_changed"
    assert not conversation.messages.exists()
    assert not BudgetReservation.objects.exists()


@pytest.mark.django_db
def test_a_retry_sends_the_files_again_and_holds_their_cost(alice, make_conversation):
    """Retrying a reply that failed before Claude reported anything sends the
    question's files again, and its hold counts them (no call's usage covers them)."""
    conversation = make_conversation()
    pdf = make_attachment(conversation, alice, "application/pdf", tokens=200_000)
    sent = services.message_send(
        conversation=conversation, author=alice, text="Read it", attachment_ids=[pdf.id]
    )
    first_hold = BudgetReservation.objects.get(message_id=sent.assistant_message.id).amount_usd
    Message.objects.filter(id=sent.assistant_message.id).update(
        status="error", error_code="overloaded"
    )
    _, reply, job = services.message_retry(
        conversation=conversation, message_id=sent.assistant_message.id
    )
    [question] = job.request.messages
    assert [b["type"] for b in question["content"]] == ["document", "text"]
    assert question["content"][0]["source"]["data"] == base64_of(pdf)
    retry_hold = BudgetReservation.objects.get(message_id=reply.id).amount_usd
    assert retry_hold == pytest.approx(first_hold, abs=Decimal("0.001"))
