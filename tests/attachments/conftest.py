"""Attachments: the upload's world.

alice owns the conversation files go into; bob (her teammate) and carol
(another team) may not see it, so they must get 404 for everything in it.
The check's task is never run here (the pipeline's tests run it on a real
worker): `enqueued` records what the upload handed to the broker.
"""

from __future__ import annotations

import io
import secrets
import uuid

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from PIL import Image

from conversations.models import Attachment

# Small enough to upload often, big enough to span many 64 KiB parser chunks.
TEST_MAX_BYTES = 1024 * 1024


@pytest.fixture(autouse=True)
def attachments_folder(settings, tmp_path):
    """Each test stores its files in a folder of its own, so it sees only them."""
    settings.STORAGES = {
        **settings.STORAGES,
        "attachments": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "attachments"), "base_url": None},
        },
    }
    return tmp_path / "attachments"


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple]:
    """What was handed to `attachment_check_task.delay`, in order: (id, language)."""
    from conversations.tasks import attachment_check_task

    calls: list[tuple] = []
    monkeypatch.setattr(attachment_check_task, "delay", lambda *args: calls.append(args))
    return calls


@pytest.fixture
def small_limit(settings):
    settings.ATTACHMENT_MAX_BYTES = TEST_MAX_BYTES
    return TEST_MAX_BYTES


def multipart(
    filename: str | None,
    data: bytes = b"hello\n",
    *,
    field: str = "file",
    extra: dict[str, str] | None = None,
    files: int = 1,
) -> tuple[bytes, str]:
    """A multipart/form-data body as a browser sends it, built by hand so the file
    name arrives exactly as given (Django's test client strips paths from it)."""
    boundary = f"----teamchat{secrets.token_hex(8)}"
    parts = []
    for key, value in (extra or {}).items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        )
    for _ in range(files):
        disposition = f'form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        parts.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def png_bytes(width: int = 40, height: int = 30) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def upload(alice, make_conversation):
    """Store bytes as the upload request does (a random name in the attachments
    storage, a row in checking), without enqueueing the check."""

    def make(name: str, data: bytes, *, conversation=None, user=None) -> Attachment:
        conversation = conversation or make_conversation()
        stored = storages["attachments"].save(f"originals/{uuid.uuid4().hex}", ContentFile(data))
        return Attachment.objects.create(
            conversation=conversation,
            uploaded_by=user or alice,
            name=name,
            size=len(data),
            original_path=stored,
        )

    return make


def all_stored_names() -> set[str]:
    """Every file name in the attachments storage, in all its folders."""
    storage = storages["attachments"]
    names: set[str] = set()
    folders = [""]
    while folders:
        folder = folders.pop()
        try:
            subfolders, files = storage.listdir(folder)
        except FileNotFoundError:
            continue
        names.update(f"{folder}/{name}" if folder else name for name in files)
        folders.extend(f"{folder}/{sub}" if folder else sub for sub in subfolders)
    return names


def stored_names(folder: str = "originals") -> list[str]:
    storage = storages["attachments"]
    if not storage.exists(folder):
        return []
    return storage.listdir(folder)[1]


def attachment_ready(
    conversation,
    *,
    name: str = "diagram.png",
    media_type: str = "image/png",
    kind: str = "image",
    data: bytes | None = None,
    thumbnail: bytes | None = None,
    status: str = Attachment.Status.READY,
    uploaded_by=None,
) -> Attachment:
    """An attachment as the worker leaves it: its prepared file (and thumbnail) in storage."""
    storage = storages["attachments"]
    data = png_bytes() if data is None else data
    prepared = storage.save(f"prepared/{uuid.uuid4().hex}", ContentFile(data))
    thumbnail_path = (
        storage.save(f"thumbnails/{uuid.uuid4().hex}", ContentFile(thumbnail))
        if thumbnail is not None
        else ""
    )
    return Attachment.objects.create(
        conversation=conversation,
        uploaded_by=uploaded_by or conversation.owner,
        name=name,
        size=len(data),
        status=status,
        kind=kind,
        media_type=media_type,
        width=40 if kind == "image" else None,
        height=30 if kind == "image" else None,
        original_path=prepared,
        prepared_path=prepared,
        prepared_size=len(data),
        thumbnail_path=thumbnail_path,
    )
