"""The fake's Files API store: uploaded files on disk, shared by every process.

The site runs one in-process fake per process, but a Celery worker uploads a
file and a web process then sends a message that references it, so the store
cannot live in memory. Each file is two entries in one folder:
`<id>.bin` (the bytes) and `<id>.json` (its FileMetadata). Both are written to
a temporary name and renamed into place, the metadata last, so another process
sees a file completely or not at all; deleting removes the metadata first.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import mimetypes
import os
import random
import re
import string
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The API's limits (its errors page; the SDK's `upload` docstring).
MAX_UPLOAD_BYTES = 500 * 1024 * 1024
MIN_EXPIRES_IN_SECONDS = 3600
MAX_EXPIRES_IN_SECONDS = 7_776_000
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 1000
MAX_LIST_IDS = 100

_ID_ALPHABET = string.ascii_letters + string.digits
# "file_011CNha8iCJcU1wXNR6q4V8w": the API's shape. Anything else is not an id
# of ours, which also keeps a crafted id from naming a path outside the folder.
_FILE_ID = re.compile(r"file_[A-Za-z0-9]{24}")


class FileInputError(ValueError):
    """An upload or list request the API would refuse with 400."""


def _timestamp(seconds: float) -> str:
    """RFC 3339 with microseconds, as the API writes `created_at`."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_file_id(value: object) -> bool:
    return isinstance(value, str) and _FILE_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class UploadedPart:
    filename: str
    content_type: str
    data: bytes


def parse_upload(content_type: str, body: bytes) -> tuple[UploadedPart, int | None]:
    """The `file` part and `expires_in_seconds` of a multipart/form-data upload.

    The standard library's MIME parser reads the form (the fake adds no
    dependency for it); it keeps binary parts byte for byte.
    """
    if not content_type.lower().startswith("multipart/form-data"):
        raise FileInputError("Content-Type must be multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise FileInputError("file: Field required")
    upload: UploadedPart | None = None
    expires: int | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if name == "file":
            filename = os.path.basename(str(part.get_filename() or "").replace("\\", "/"))
            upload = UploadedPart(filename, part.get_content_type(), payload)
        elif name == "expires_in_seconds":
            text = payload.decode("utf-8", "replace").strip()
            if not text.lstrip("-").isdigit():
                raise FileInputError("expires_in_seconds: Input should be a valid integer")
            expires = int(text)
    if upload is None:
        raise FileInputError("file: Field required")
    if expires is not None and expires < MIN_EXPIRES_IN_SECONDS:
        raise FileInputError(
            f"expires_in_seconds: Input should be greater than or equal to {MIN_EXPIRES_IN_SECONDS}"
        )
    if expires is not None and expires > MAX_EXPIRES_IN_SECONDS:
        raise FileInputError(
            f"expires_in_seconds: Input should be less than or equal to {MAX_EXPIRES_IN_SECONDS}"
        )
    return upload, expires


def _mime_type(part: UploadedPart) -> str:
    """The part's own content type; otherwise a guess from its name, as the API does."""
    if part.content_type and part.content_type != "application/octet-stream":
        return part.content_type
    guessed = mimetypes.guess_type(part.filename)[0] if part.filename else None
    return guessed or part.content_type or "application/octet-stream"


def _page_cursor(entry: dict[str, Any]) -> str:
    raw = f"{entry['created_at']}|{entry['id']}".encode()
    return "page_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_position(cursor: str) -> tuple[str, str]:
    if not cursor.startswith("page_"):
        raise FileInputError("page: Invalid page cursor")
    token = cursor[5:]
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        created_at, file_id = raw.split("|", 1)
    except ValueError:
        raise FileInputError("page: Invalid page cursor") from None
    return created_at, file_id


class FileStore:
    """Files on disk under `root` (created on first upload).

    Without a root the store gets a private temporary folder on first use, so a
    test's fake sees only its own files and leaves nothing behind.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root = Path(root) if root is not None else None
        self._temporary: tempfile.TemporaryDirectory[str] | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="fake-claude-files-")
            self._root = Path(self._temporary.name)
        return self._root

    def _paths(self, file_id: str) -> tuple[Path, Path]:
        return self.root / f"{file_id}.json", self.root / f"{file_id}.bin"

    @staticmethod
    def _write_atomically(path: Path, data: bytes) -> None:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def add(self, part: UploadedPart, expires_in_seconds: int | None) -> dict[str, Any]:
        """Store an upload; returns its FileMetadata."""
        self.root.mkdir(parents=True, exist_ok=True)
        file_id = "file_011C" + "".join(random.choices(_ID_ALPHABET, k=20))
        mime_type = _mime_type(part)
        filename = part.filename
        if not filename:
            filename = "unnamed" + (mimetypes.guess_extension(mime_type) or "")
        now = time.time()
        metadata = {
            "id": file_id,
            "type": "file",
            "filename": filename,
            "mime_type": mime_type,
            "size_bytes": len(part.data),
            "created_at": _timestamp(now),
            "downloadable": False,
            "expires_at": (
                _timestamp(now + expires_in_seconds) if expires_in_seconds is not None else None
            ),
        }
        meta_path, data_path = self._paths(file_id)
        self._write_atomically(data_path, part.data)
        self._write_atomically(meta_path, json.dumps(metadata).encode())
        return metadata

    def get(self, file_id: str) -> dict[str, Any] | None:
        """The FileMetadata of a stored file, or None."""
        if not is_file_id(file_id) or self._root is None:
            return None
        meta_path, _ = self._paths(file_id)
        try:
            return json.loads(meta_path.read_bytes())
        except FileNotFoundError:
            return None

    def read(self, file_id: str) -> bytes | None:
        """The bytes of a stored file, or None (deleted, perhaps by another process)."""
        if self.get(file_id) is None:
            return None
        try:
            return self._paths(file_id)[1].read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, file_id: str) -> bool:
        """Remove a file; False if there was none."""
        if self.get(file_id) is None:
            return False
        meta_path, data_path = self._paths(file_id)
        try:
            meta_path.unlink()
        except FileNotFoundError:
            return False
        data_path.unlink(missing_ok=True)
        return True

    def _all(self) -> list[dict[str, Any]]:
        if self._root is None or not self._root.is_dir():
            return []
        entries = []
        for path in self._root.glob("file_*.json"):
            try:
                entries.append(json.loads(path.read_bytes()))
            except (FileNotFoundError, ValueError):
                continue  # deleted or being written by another process
        # Newest first, as the API lists; the id breaks ties within a microsecond.
        entries.sort(key=lambda e: (e["created_at"], e["id"]), reverse=True)
        return entries

    def page(self, limit: int | None, cursor: str | None, ids: list[str] | None) -> dict[str, Any]:
        """One page of `GET /v1/files`: `{"data": [...], "next_page": "page_…" | null}`."""
        if ids:
            if limit is not None or cursor is not None:
                raise FileInputError("ids: cannot be combined with page or limit")
            if len(set(ids)) > MAX_LIST_IDS:
                raise FileInputError(f"ids: at most {MAX_LIST_IDS} ids may be given")
            wanted = set(ids)
            return {"data": [e for e in self._all() if e["id"] in wanted], "next_page": None}
        if limit is None:
            limit = DEFAULT_LIST_LIMIT
        if limit < 1:
            raise FileInputError("limit: Input should be greater than or equal to 1")
        if limit > MAX_LIST_LIMIT:
            raise FileInputError(f"limit: Input should be less than or equal to {MAX_LIST_LIMIT}")
        entries = self._all()
        if cursor is not None:
            position = _cursor_position(cursor)
            entries = [e for e in entries if (e["created_at"], e["id"]) < position]
        data = entries[:limit]
        next_page = _page_cursor(data[-1]) if len(entries) > limit else None
        return {"data": data, "next_page": next_page}
