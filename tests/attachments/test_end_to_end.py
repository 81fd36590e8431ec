"""Each accepted type, end to end: uploaded through the HTTP endpoint (session
and CSRF token, as a browser sends it), checked by a real Celery worker process
over a real broker, ready by `GET /attachments/<id>/`, sent over the real
websocket, received by the fake Claude as the API's own block, acknowledged in
the streamed reply, and read back from the prompt cache by a follow-up.

One worker serves the whole module (it takes a few seconds to start). Its
`attachment.updated` frames do not reach this process's in-memory channel layer
on the SQLite pass, so the test asks the status endpoint, as a chip does.
"""

from __future__ import annotations

import base64
import io
import math
import time
import uuid
from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.test import Client
from PIL import Image, PngImagePlugin

import claude.client
from claude.fake.app import fake_app_from_env
from tests.attachments import workers
from tests.attachments.corpus import jpeg_with_gps, pdf_bytes
from tests.attachments.test_send import RequestRecorder
from tests.conftest import assistant_id, completed, receive_frames, streamed_text
from tests.integration.servers import site_env
from usage.models import ApiCall

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]

# Big enough to be resized (the long edge to 1568 px), and for the prompt to
# pass the model's cache minimum (1,024 tokens on Sonnet) on the file alone.
IMAGE_SIZE = (2000, 1500)
PREPARED_SIZE = (1568, 1176)


# --- the files ---------------------------------------------------------------


def image_bytes(pil_format: str) -> bytes:
    """A picture with metadata the check must strip (GPS in the JPEG's EXIF, an
    author in the PNG's text chunk, EXIF in the WebP)."""
    if pil_format == "JPEG":
        return jpeg_with_gps(IMAGE_SIZE)
    image = Image.new("RGB", IMAGE_SIZE, (20, 120, 220))
    image.paste((250, 250, 0), (0, 0, IMAGE_SIZE[0] // 2, IMAGE_SIZE[1] // 4))
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    if pil_format == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Author", "Alice Example, 12 Rue de Rivoli")
        image.save(out, "PNG", pnginfo=info)
    elif pil_format == "WEBP":
        image.save(out, "WEBP", exif=exif, quality=80)
    else:
        image.save(out, pil_format)
    return out.getvalue()


def text_of(lines: int, line: str) -> bytes:
    return "".join(line.format(n=n) for n in range(lines)).encode()


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    kind: str
    media_type: str
    # The least the fake bills for the file (docs/fake-claude.md, "Token estimate").
    min_tokens: int
    pil_format: str = ""

    @property
    def text(self) -> str:
        return self.data.decode()


CSV = text_of(300, "{n},bolts M{n},12,écrous\n")
MARKDOWN = text_of(150, "## Step {n}\n\nTighten bolt {n} to *12 Nm*.\n\n")
PLAIN = text_of(200, "Line {n} of the maintenance log: all clear.\n")
SOURCE = text_of(150, "def part_{n}(qty):\n    return qty * {n}\n\n\n")

CASES = [
    # An image costs about w*h/750 after the API's downscale to 1.15 MP: ~1,532.
    Case("photo.jpg", image_bytes("JPEG"), "image", "image/jpeg", 1_500, "JPEG"),
    Case("diagram.png", image_bytes("PNG"), "image", "image/png", 1_500, "PNG"),
    Case("loop.gif", image_bytes("GIF"), "image", "image/gif", 1_500, "GIF"),
    Case("shot.webp", image_bytes("WEBP"), "image", "image/webp", 1_500, "WEBP"),
    # A letter page is billed as its image at 1568 px on the long edge: 1,532.
    Case("report.pdf", pdf_bytes(1), "pdf", "application/pdf", 1_500),
    # Text at four characters a token.
    Case("log.txt", PLAIN, "text", "text/plain", math.ceil(len(PLAIN.decode()) / 4)),
    Case("steps.md", MARKDOWN, "text", "text/markdown", math.ceil(len(MARKDOWN.decode()) / 4)),
    Case("parts.csv", CSV, "text", "text/csv", math.ceil(len(CSV.decode()) / 4)),
    Case("parts.py", SOURCE, "text", "text/plain", math.ceil(len(SOURCE.decode()) / 4)),
]


# --- the worker and the site -------------------------------------------------


@pytest.fixture(scope="module")
def shared_var(tmp_path_factory):
    """The var folder this process and the worker share: attachments, broker."""
    return tmp_path_factory.mktemp("end-to-end-var")


@pytest.fixture(scope="module")
def worker(django_db_setup, shared_var):
    """One real worker for the module, on the test database and its own queue."""
    queue = f"attachments-e2e-{uuid.uuid4().hex[:8]}"
    original = workers.broker_use(shared_var, queue)
    env = site_env(
        DATABASE_URL=workers.database_url(),
        CHAT_VAR_DIR=str(shared_var),
        CHANNEL_LAYER_PREFIX=f"e2e{uuid.uuid4().hex[:8]}",
    )
    log_path = shared_var / "worker.log"
    process = workers.worker_start(queue=queue, env=env, log_path=log_path)
    try:
        workers.worker_wait_ready(process, log_path)
        yield process
    finally:
        workers.worker_kill(process)
        workers.broker_restore(original)


@pytest.fixture(autouse=True)
def attachments_folder(settings, shared_var):
    """The storage the worker uses (its CHAT_VAR_DIR's attachments folder)."""
    location = shared_var / "attachments"
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location), "base_url": None},
        },
    }
    return location


@pytest.fixture
def recorder(monkeypatch):
    wrapped = RequestRecorder(fake_app_from_env())
    monkeypatch.setattr(claude.client, "_fake_app", wrapped)
    return wrapped


class Browser:
    """A signed-in browser session over Django's test client, CSRF enforced."""

    def __init__(self, user, conversation) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.client.force_login(user)
        self.client.get(f"/c/{conversation.id}/")  # the page sets the CSRF cookie
        self.token = self.client.cookies[django_settings.CSRF_COOKIE_NAME].value

    def upload(self, conversation, name: str, data: bytes):
        upload = io.BytesIO(data)
        upload.name = name
        return self.client.post(
            f"/c/{conversation.id}/attachments/", {"file": upload}, HTTP_X_CSRFTOKEN=self.token
        )

    def state_when_checked(self, attachment_id: str, *, timeout: float = 30) -> dict:
        """Ask `GET /attachments/<id>/` until the check has ended, as a chip does."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.client.get(f"/attachments/{attachment_id}/").json()
            if state["status"] != "checking":
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"still checking after {timeout:.0f} s: {state}")
            time.sleep(0.1)

    def file(self, attachment_id: str) -> bytes:
        response = self.client.get(f"/attachments/{attachment_id}/file")
        assert response.status_code == 200
        return b"".join(response.streaming_content)


@sync_to_async
def chat_calls(conversation) -> list[ApiCall]:
    return list(
        ApiCall.objects.filter(conversation_uuid=conversation.id, purpose="chat").order_by(
            "created_at"
        )
    )


def send_frame(text: str, attachment_ids: list[str]) -> dict:
    return {
        "type": "message.send",
        "text": text,
        "client_id": uuid.uuid4().hex,
        "attachments": attachment_ids,
    }


def expected_block(case: Case, prepared: bytes) -> dict:
    """The block the API documents for the file."""
    if case.kind == "image":
        return {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": case.media_type,
                "data": base64.b64encode(prepared).decode(),
            },
        }
    if case.kind == "pdf":
        return {
            "type": "document",
            "source": {
                "type": "base64",
                "media_type": "application/pdf",
                "data": base64.b64encode(prepared).decode(),
            },
        }
    return {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": case.text},
        "title": case.name,
    }


def acknowledgement(case: Case) -> str:
    """How the fake's reply names what it read (docs/fake-claude.md)."""
    if case.kind == "image":
        return "an image of {}×{} px".format(*PREPARED_SIZE)
    if case.kind == "pdf":
        return "a PDF of 1 page"
    return f'the text document "{case.name}"'


# --- the test ----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_file_goes_from_upload_to_claude_and_a_follow_up_reads_it_from_the_cache(
    case, worker, alice, make_conversation, socket_for, recorder
):
    conversation = await sync_to_async(make_conversation)()
    browser = await sync_to_async(Browser)(alice, conversation)

    answer = await sync_to_async(browser.upload)(conversation, case.name, case.data)
    assert answer.status_code == 202, answer.content
    uploaded = answer.json()
    attachment_id = uploaded["id"]
    assert uploaded == {
        "id": attachment_id, "name": case.name, "size": len(case.data), "status": "checking"
    }

    state = await sync_to_async(browser.state_when_checked)(attachment_id)
    assert (state["status"], state["reason"], state["kind"], state["media_type"]) == (
        "ready", "", case.kind, case.media_type
    )
    prepared = await sync_to_async(browser.file)(attachment_id)
    if case.kind == "image":
        assert (state["width"], state["height"]) == PREPARED_SIZE
        # Re-encoded: resized, the same format, its metadata gone.
        assert prepared != case.data
        with Image.open(io.BytesIO(prepared)) as image:
            assert (image.format, image.size) == (case.pil_format, PREPARED_SIZE)
            assert not image.getexif()
            assert "Author" not in image.info
    elif case.kind == "pdf":
        assert state["pages"] == 1
    else:
        assert prepared == case.data

    socket, connected = await socket_for(alice, conversation.id)
    assert connected
    question = "What is in this file?"
    await socket.send_json_to(send_frame(question, [attachment_id]))
    frames = await receive_frames(socket, until=completed, timeout=20)
    assert frames[-1]["status"] == "complete", frames[-1]

    # Claude got the file as the API's block, before the question.
    [first] = recorder.chats()
    [turn] = first["messages"]
    assert turn["role"] == "user"
    assert turn["content"] == [
        expected_block(case, prepared),
        {"type": "text", "text": question, "cache_control": {"type": "ephemeral"}},
    ]
    # The fake read it as that kind of file, and the reply the person saw says so.
    reply = streamed_text(frames, assistant_id(frames))
    assert reply.startswith("**I read the attachments:** "), reply[:200]
    assert acknowledgement(case) in reply.split("\n", 1)[0]

    await socket.send_json_to(send_frame("And in one sentence?", []))
    follow_up_frames = await receive_frames(socket, until=completed, timeout=20)
    assert follow_up_frames[-1]["status"] == "complete"
    follow_up = recorder.chats()[1]
    # The first turn goes again byte for byte (its breakpoint moved to the new question).
    assert follow_up["messages"][0]["content"] == [
        {k: v for k, v in block.items() if k != "cache_control"} for block in turn["content"]
    ]
    first_call, second_call = await chat_calls(conversation)
    written = first_call.cache_write_5m_tokens + first_call.cache_write_1h_tokens
    assert first_call.cache_read_tokens == 0
    # The whole first turn, the file included, is read from the cache.
    assert second_call.cache_read_tokens == written
    assert second_call.cache_read_tokens >= case.min_tokens


def test_the_module_s_fixture_text_files_are_long_enough_to_be_cached():
    """Each text file alone passes the model's cache minimum, or nothing would be
    cached and the follow-up assertion would fail for the wrong reason."""
    assert all(c.min_tokens > 1_024 for c in CASES), [(c.name, c.min_tokens) for c in CASES]

