"""Image and document blocks: validated and measured as the API does.

Each image or document block of the messages is read once (from its base64
data or from the Files store) to check it the way the API checks it and to
learn what it costs: an image's size, a PDF's pages and their text, a text
document's length. The result is remembered by content (the base64 string's
hash, or the file id: stored files never change), so a conversation that
resends a 30 MB PDF every turn decodes and parses it once.

Error messages follow the API's where they are known (its wording as seen in
public bug reports); where they are not, they follow its `loc: message` style.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import PIL.Image
import pypdf

from .files import FileStore, is_file_id
from .tokens import estimate_tokens, image_tokens, pdf_page_tokens

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_IMAGE_SIDE = 8000
# With more than this many images in a request, the API's side limit drops.
MANY_IMAGES = 20
MANY_IMAGES_MAX_SIDE = 2000
MAX_PDF_PAGES = 100
# Sources the fake does not fetch (it is offline): a flat estimate each.
URL_IMAGE_TOKENS = image_tokens(1568, 1568)
URL_DOCUMENT_TOKENS = 1_500

_MEMO_SIZE = 128


class MediaError(ValueError):
    """A block the API refuses (400 invalid_request_error, this message)."""


@dataclass(frozen=True)
class Attachment:
    """What Claude "read" in one image or document block."""

    kind: str  # "image", "pdf" or "text"
    tokens: int
    width: int = 0
    height: int = 0
    pages: int = 0
    title: str = ""

    def describe(self) -> str:
        """How the fake's reply mentions it."""
        if self.kind == "image":
            if not self.width:
                return "an image (not fetched)"
            return f"an image of {self.width}×{self.height} px"
        if self.kind == "pdf":
            pages = f"{self.pages} page{'s' if self.pages != 1 else ''}" if self.pages else "pages"
            titled = f' titled "{self.title}"' if self.title else ""
            return f"a PDF of {pages}{titled}"
        return f'the text document "{self.title}"' if self.title else "a text document"


def _sniff_image(data: bytes) -> str | None:
    """The image type the bytes are, from their signature (what the API compares)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _decode_base64(data: object, loc: str) -> bytes:
    if not isinstance(data, str):
        raise MediaError(f"{loc}.data: Input should be a valid string")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(f"{loc}: invalid base64 data") from None


def _image(data: bytes, declared: str | None, loc: str) -> Attachment:
    actual = _sniff_image(data)
    if actual is None:
        raise MediaError("Could not process image")
    if declared is not None and declared != actual:
        raise MediaError(
            f"{loc}: The image was specified using the {declared} media type, but the image "
            f"appears to be a {actual} image"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except PIL.Image.DecompressionBombError:
        # Over Pillow's bomb limit (~179 MP) a side is necessarily over 8000 px.
        raise MediaError(
            f"{loc}.data: At least one of the image dimensions exceed max allowed size: "
            f"{MAX_IMAGE_SIDE} pixels"
        ) from None
    except Exception:
        raise MediaError("Could not process image") from None
    if max(width, height) > MAX_IMAGE_SIDE:
        raise MediaError(
            f"{loc}.data: At least one of the image dimensions exceed max allowed size: "
            f"{MAX_IMAGE_SIDE} pixels"
        )
    return Attachment("image", image_tokens(width, height), width=width, height=height)


def _pdf(data: bytes, loc: str) -> Attachment:
    if not data.startswith(b"%PDF-"):
        raise MediaError(f"{loc}.data: The PDF specified was not valid.")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise MediaError(f"{loc}.data: The PDF specified is password protected.")
        tokens = 0
        for page in reader.pages:
            box = page.mediabox
            try:
                text = page.extract_text() or ""
            except Exception:
                text = ""  # a page whose text cannot be read is still seen as an image
            tokens += pdf_page_tokens(float(box.width), float(box.height), text)
        pages = len(reader.pages)
    except MediaError:
        raise
    except Exception:
        raise MediaError(f"{loc}.data: The PDF specified was not valid.") from None
    if pages == 0:
        raise MediaError(f"{loc}.data: The PDF specified was not valid.")
    return Attachment("pdf", tokens, pages=pages)


def _text(text: str, title: str, context: str) -> Attachment:
    tokens = max(1, estimate_tokens(text)) + estimate_tokens(title) + estimate_tokens(context)
    return Attachment("text", tokens, title=title)


def _tag_error(loc: str, kind: object, tags: tuple[str, ...]) -> MediaError:
    expected = ", ".join(f"'{t}'" for t in tags)
    return MediaError(
        f"{loc}: Input tag '{kind}' found using 'type' does not match any of the expected "
        f"tags: {expected}"
    )


class MediaReader:
    """Reads the image and document blocks of a request (see the module doc)."""

    def __init__(self, store: FileStore) -> None:
        self.store = store
        self._memo: OrderedDict[tuple[str, ...], Attachment] = OrderedDict()

    def _remember(self, key: tuple[str, ...], read: Callable[[], Attachment]) -> Attachment:
        found = self._memo.get(key)
        if found is not None:
            self._memo.move_to_end(key)
            return found
        found = read()
        self._memo[key] = found
        if len(self._memo) > _MEMO_SIZE:
            self._memo.popitem(last=False)
        return found

    def _stored(self, source: dict[str, Any], loc: str) -> tuple[str, dict[str, Any]]:
        file_id = source.get("file_id")
        if not isinstance(file_id, str):
            raise MediaError(f"{loc}.file_id: Field required")
        metadata = self.store.get(file_id) if is_file_id(file_id) else None
        if metadata is None:
            raise MediaError(f"{loc}.file_id: File not found: {file_id}")
        return file_id, metadata

    def _read_stored(self, file_id: str, loc: str) -> bytes:
        data = self.store.read(file_id)
        if data is None:
            raise MediaError(f"{loc}.file_id: File not found: {file_id}")
        return data

    def image(self, block: dict[str, Any], loc: str) -> Attachment:
        source = block["source"]
        kind = source.get("type")
        if kind == "base64":
            media_type = source.get("media_type")
            if media_type not in IMAGE_MEDIA_TYPES:
                raise MediaError(
                    f"{loc}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
                    "'image/gif' or 'image/webp'"
                )
            data = source.get("data")
            key = ("image", str(media_type), hashlib.sha256(str(data).encode()).hexdigest())
            where = f"{loc}.source.base64"
            return self._remember(
                key, lambda: _image(_decode_base64(data, where), media_type, where)
            )
        if kind == "file":
            where = f"{loc}.source.file"
            file_id, metadata = self._stored(source, where)
            if not str(metadata["mime_type"]).startswith("image/"):
                raise MediaError(
                    f"{where}: File type {metadata['mime_type']} is not supported for image blocks"
                )
            return self._remember(
                ("file", file_id),
                lambda: _image(self._read_stored(file_id, where), None, where),
            )
        if kind == "url":
            return Attachment("image", URL_IMAGE_TOKENS)
        raise _tag_error(f"{loc}.source", kind, ("base64", "file", "url"))

    def document(self, block: dict[str, Any], loc: str) -> Attachment | None:
        """A document's attachment; None for `content` sources (counted as their blocks)."""
        source = block["source"]
        kind = source.get("type")
        title = block.get("title") if isinstance(block.get("title"), str) else ""
        context = block.get("context") if isinstance(block.get("context"), str) else ""
        if kind == "base64":
            if source.get("media_type") != "application/pdf":
                raise MediaError(
                    f"{loc}.source.base64.media_type: Input should be 'application/pdf'"
                )
            data = source.get("data")
            where = f"{loc.rsplit('.', 1)[0]}.pdf.source.base64"
            key = ("pdf", hashlib.sha256(str(data).encode()).hexdigest())
            found = self._remember(key, lambda: _pdf(_decode_base64(data, where), where))
        elif kind == "file":
            where = f"{loc}.source.file"
            file_id, metadata = self._stored(source, where)
            mime_type = str(metadata["mime_type"])
            if mime_type == "application/pdf":
                pdf_loc = f"{loc.rsplit('.', 1)[0]}.pdf.source.file"
                found = self._remember(
                    ("file", file_id), lambda: _pdf(self._read_stored(file_id, where), pdf_loc)
                )
            elif mime_type.startswith("text/"):
                data = self._read_stored(file_id, where)
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise MediaError(f"{where}: The text file is not valid UTF-8") from None
                found = _text(text, title, context)
            else:
                raise MediaError(
                    f"{where}: File type {mime_type} is not supported for document blocks"
                )
        elif kind == "text":
            if source.get("media_type") != "text/plain":
                raise MediaError(f"{loc}.source.text.media_type: Input should be 'text/plain'")
            if not isinstance(source.get("data"), str):
                raise MediaError(f"{loc}.source.text.data: Input should be a valid string")
            return _text(source["data"], title, context)
        elif kind == "content":
            return None
        elif kind == "url":
            found = Attachment("pdf", URL_DOCUMENT_TOKENS)
        else:
            raise _tag_error(f"{loc}.source", kind, ("base64", "content", "file", "text", "url"))
        if found.kind == "pdf" and title:
            # The title is the block's, not the file's: the memo holds the file alone.
            found = dataclasses.replace(
                found, title=title, tokens=found.tokens + estimate_tokens(title)
            )
        return found

    def read(self, messages: list[dict[str, Any]]) -> dict[tuple[int, int], Attachment]:
        """Every image and document block of validated messages, by (message, block).

        Raises MediaError for the first block the API would refuse, and when the
        request's PDFs have more than 100 pages in all or its many images are too big.
        """
        found: dict[tuple[int, int], Attachment] = {}
        pages = 0
        images: list[tuple[str, Attachment]] = []
        for i, message in enumerate(messages):
            content = message["content"]
            if isinstance(content, str):
                continue
            for j, block in enumerate(content):
                kind = block.get("type")
                loc = f"messages.{i}.content.{j}.{kind}"
                if kind == "image":
                    attachment = self.image(block, loc)
                    images.append((loc, attachment))
                elif kind == "document":
                    attachment_or_none = self.document(block, loc)
                    if attachment_or_none is None:
                        continue
                    attachment = attachment_or_none
                    pages += attachment.pages
                    if pages > MAX_PDF_PAGES:
                        source = block["source"].get("type")
                        raise MediaError(
                            f"messages.{i}.content.{j}.pdf.source.{source}.data: A maximum of "
                            f"{MAX_PDF_PAGES} PDF pages may be provided."
                        )
                else:
                    continue
                found[(i, j)] = attachment
        if len(images) > MANY_IMAGES:
            for loc, image in images:
                if max(image.width, image.height) > MANY_IMAGES_MAX_SIDE:
                    raise MediaError(
                        f"{loc}.source.base64.data: At least one of the image dimensions exceed "
                        f"max allowed size for many-image requests: {MANY_IMAGES_MAX_SIDE} pixels"
                    )
        return found
