"""Checks and preparation of one uploaded file on disk: no models, no settings module.

`file_check(path, name=..., limits=..., workdir=...)` returns `Prepared` or
`Rejected(reason)`. Like paperless-ngx's consumer, it is a chain of small named
steps over one candidate; a step that finds the file unfit raises `_Reject`
with a reason in plain words, which ends the chain. A reason is a `Reason`: the
English sentence marked for translation and the values it names, which the
worker says in the uploader's language (`Reason.text`):

    size -> real type (from the bytes) -> the name's extension agrees ->
    image: header limits -> decodes whole -> re-encoded, resized, thumbnail
    pdf:   opens -> not encrypted -> page limit -> every page object resolves
    text:  UTF-8 without NUL -> token limit

`file_check_isolated` runs the same in a fresh interpreter (`python -m
conversations.attachments.checks`), which is what the worker calls: Pillow keeps
a decoded image in memory whole (4 bytes a pixel, 256 MB for 8000 x 8000), and a
worker that has loaded Django is already ~150 MB; the child starts at ~15 MB,
gives all of its memory back when it exits, can be timed out, and a decoder
that crashes on a hostile file takes only the child with it. The child runs
under resource limits (address space, CPU seconds): a file that needs more is
rejected in plain words, and the worker is never the one that runs out.

The child has no Django, so nothing is translated in it: it sends back the
`Reason` (sentence and values) as JSON, and the worker, which runs the check
under the uploader's language (`conversations.tasks.attachment_check_task`),
turns it into words. No language needs to reach the child.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import puremagic

logger = logging.getLogger(__name__)

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
PDF_TYPE = "application/pdf"

# Extensions and the real type each must have.
_IMAGE_EXTENSIONS = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
}
# Text goes to Claude as a text document: plain text, Markdown, CSV and source code.
_TEXT_TYPES = {"md": "text/markdown", "markdown": "text/markdown", "csv": "text/csv"}
TEXT_EXTENSIONS = frozenset(
    """txt text log md markdown rst adoc org csv tsv json jsonl ndjson yaml yml toml ini cfg conf
    env properties xml html htm css scss sass less js mjs cjs jsx ts tsx vue svelte py pyi ipynb
    rb php pl pm lua r jl go rs c h cc cpp cxx hpp hh m mm java kt kts scala groovy gradle cs fs
    vb swift dart ex exs erl hrl hs ml mli clj cljs el lisp scm sql sh bash zsh fish ps1 bat cmd
    tex bib diff patch proto graphql gql tf hcl dockerfile makefile cmake mk nix zig v sv vhd
    asm s f90 sol""".split()
)
# Bytes read per step when reading text; a file is at most the size limit anyway.
_CHUNK = 1 << 20


# The API's limit on one request's body, everything included (blocks.py applies
# it to a whole send); base64 makes an inline file 4/3 of its size.
API_MAX_REQUEST_BYTES = 32_000_000
# What the JSON around the blocks, the roles and the escapes in texts may add.
REQUEST_BYTES_HEADROOM = 256 * 1024


@dataclass(frozen=True)
class Limits:
    """The limits a check applies (from settings: ATTACHMENT_*)."""

    max_bytes: int = 30 * 1024 * 1024
    max_pdf_pages: int = 100
    max_image_side: int = 8000
    max_image_pixels: int = 8000 * 8000
    image_long_edge: int = 1568
    thumbnail_px: int = 320
    # The largest prepared image or PDF a request can carry inline (base64), or
    # None when files go by Files API id and the request limit does not apply.
    max_inline_bytes: int | None = (API_MAX_REQUEST_BYTES - REQUEST_BYTES_HEADROOM) * 3 // 4
    # A text file's estimated tokens (TEXT_BYTES_PER_TOKEN) at most.
    max_text_tokens: int = 180_000
    # The checking child's address space (RLIMIT_AS; ATTACHMENT_CHECK_MEMORY_BYTES
    # says why this much).
    check_memory_bytes: int = 1536 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            max_bytes=settings.ATTACHMENT_MAX_BYTES,
            max_pdf_pages=settings.ATTACHMENT_MAX_PDF_PAGES,
            max_image_side=settings.ATTACHMENT_MAX_IMAGE_SIDE,
            max_image_pixels=settings.ATTACHMENT_MAX_IMAGE_PIXELS,
            image_long_edge=settings.ATTACHMENT_IMAGE_LONG_EDGE,
            thumbnail_px=settings.ATTACHMENT_THUMBNAIL_PX,
            max_inline_bytes=None
            if settings.CLAUDE_FILES_API
            else (API_MAX_REQUEST_BYTES - REQUEST_BYTES_HEADROOM) * 3 // 4,
            max_text_tokens=settings.ATTACHMENT_MAX_TEXT_TOKENS,
            check_memory_bytes=settings.ATTACHMENT_CHECK_MEMORY_BYTES,
        )


@dataclass(frozen=True)
class Prepared:
    """A file fit to send. `prepared_path` is None when the upload itself is what
    Claude gets (PDFs and text); an image's is its re-encoded copy."""

    kind: str  # "image" | "pdf" | "text"
    media_type: str  # of what Claude is sent
    width: int | None
    height: int | None
    pages: int | None
    prepared_path: Path | None
    thumbnail_path: Path | None
    prepared_size: int
    tokens: int


@dataclass(frozen=True)
class Reason:
    """Why a file is rejected, to be said in its uploader's language.

    Found in a child process without Django (the module's docstring says why),
    so it is not translated where it is found: it holds the English sentence
    (gettext's msgid), for a sentence about a count its plural form and the
    count, and the values the sentence names (numbers stay numbers, so each
    language writes them its own way). `text()` says it in the active language.

    The constructors are named after gettext's functions, and take the
    sentences as literals, so that makemessages (xgettext, which looks for
    `gettext(` and `ngettext(`) finds them as it finds every other message."""

    message: str
    params: dict[str, str | int | float] = field(default_factory=dict)
    plural: str = ""
    count: int | None = None
    # The values shown with the language's thousands separator: token counts run
    # to millions; a page count or an image's side (at most 4 digits) reads as well
    # without one.
    grouped: tuple[str, ...] = ()

    @classmethod
    def gettext(cls, message: str, **params: str | int | float) -> Reason:
        return cls(message, params)

    @classmethod
    def ngettext(
        cls,
        singular: str,
        plural: str,
        count: int,
        *,
        grouped: tuple[str, ...] = (),
        **params: str | int | float,
    ) -> Reason:
        return cls(singular, params, plural, count, grouped)

    def text(self) -> str:
        """The sentence in the active language, its numbers in that language's
        format. Needs Django's translation: the worker calls it, never the child."""
        from django.utils.formats import number_format
        from django.utils.translation import gettext, ngettext

        if self.plural:
            sentence = ngettext(self.message, self.plural, self.count)
        else:
            sentence = gettext(self.message)
        if not self.params:
            return sentence
        return sentence % {
            name: value
            if isinstance(value, str)
            else number_format(value, force_grouping=name in self.grouped)
            for name, value in self.params.items()
        }


@dataclass(frozen=True)
class Rejected:
    reason: Reason


CheckResult = Prepared | Rejected


class _Reject(Exception):
    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.message)
        self.reason = reason


@dataclass
class _Candidate:
    """What the steps learn about the file as the chain goes."""

    path: Path
    name: str
    limits: Limits
    workdir: Path
    size: int = 0
    extension: str = ""
    real_type: str = ""
    kind: str = ""
    media_type: str = ""
    width: int | None = None
    height: int | None = None
    pages: int | None = None
    prepared_path: Path | None = None
    thumbnail_path: Path | None = None
    tokens: int = 0
    notes: list[str] = field(default_factory=list)


def file_check(path: Path, *, name: str, limits: Limits, workdir: Path) -> CheckResult:
    """Check the file at `path` (uploaded as `name`); write any prepared file and
    thumbnail into `workdir`. Never raises for a bad file, only for a broken host."""
    candidate = _Candidate(path=Path(path), name=name, limits=limits, workdir=Path(workdir))
    try:
        for step in _COMMON_STEPS:
            step(candidate)
        for step in _KIND_STEPS[candidate.kind]:
            step(candidate)
        prepared = candidate.prepared_path or candidate.path
        _inline_size_check(candidate, prepared.stat().st_size)
    except _Reject as rejected:
        return Rejected(rejected.reason)
    return Prepared(
        kind=candidate.kind,
        media_type=candidate.media_type,
        width=candidate.width,
        height=candidate.height,
        pages=candidate.pages,
        prepared_path=candidate.prepared_path,
        thumbnail_path=candidate.thumbnail_path,
        prepared_size=prepared.stat().st_size,
        tokens=candidate.tokens,
    )


def _inline_size_check(c: _Candidate, prepared_size: int) -> None:
    """A file that passes every other limit but could never be sent: base64 would
    take it past the API's request limit (text goes as text, not base64)."""
    if c.limits.max_inline_bytes is None or c.kind == "text":
        return
    if prepared_size > c.limits.max_inline_bytes:
        raise _Reject(
            Reason.gettext(
                "This file is %(size)s MB; Claude takes at most %(limit)s MB in one "
                "message here (its %(request_limit)s MB request limit, after encoding). "
                "Split it, or send a smaller copy.",
                size=_megabytes(prepared_size),
                limit=_megabytes(c.limits.max_inline_bytes),
                request_limit=API_MAX_REQUEST_BYTES // 1_000_000,
            )
        )


# --- Common steps -------------------------------------------------------------


def _size_check(c: _Candidate) -> None:
    c.size = c.path.stat().st_size
    if c.size == 0:
        raise _Reject(Reason.gettext("This file is empty."))
    if c.size > c.limits.max_bytes:
        raise _Reject(
            Reason.gettext(
                "This file is %(size)s MB; the limit is %(limit)s MB.",
                size=_megabytes(c.size),
                limit=_megabytes(c.limits.max_bytes),
            )
        )


def _type_sniff(c: _Candidate) -> None:
    """The real type from the bytes (puremagic's signatures), never from the name."""
    try:
        matches = puremagic.magic_file(str(c.path))
    except puremagic.PureError:
        matches = []
    c.real_type = matches[0].mime_type if matches else ""
    c.extension = _extension(c.name)


def _kind_decide(c: _Candidate) -> None:
    """The name's extension must agree with the real type."""
    ext = c.extension
    if ext in _IMAGE_EXTENSIONS:
        expected = _IMAGE_EXTENSIONS[ext]
        if c.real_type != expected:
            raise _Reject(_not_this_image(ext, expected))
        c.kind, c.media_type = "image", expected
    elif ext == "pdf":
        if c.real_type != PDF_TYPE:
            raise _Reject(Reason.gettext("This file is named .pdf but it is not a PDF."))
        c.kind, c.media_type = "pdf", PDF_TYPE
    elif ext in TEXT_EXTENSIONS:
        c.kind, c.media_type = "text", _TEXT_TYPES.get(ext, "text/plain")
    elif ext:
        raise _Reject(
            Reason.gettext(
                "Files of this type (.%(extension)s) cannot be attached; attach images "
                "(JPEG, PNG, GIF or WebP), PDFs, or text files.",
                extension=ext,
            )
        )
    # No extension (a pasted image, a Makefile): the bytes decide.
    elif c.real_type in IMAGE_TYPES:
        c.kind, c.media_type = "image", c.real_type
    elif c.real_type == PDF_TYPE:
        c.kind, c.media_type = "pdf", PDF_TYPE
    else:
        c.kind, c.media_type = "text", "text/plain"


def _not_this_image(ext: str, expected: str) -> Reason:
    # A sentence for each type: a language may need to inflect the type's name.
    return {
        "image/jpeg": Reason.gettext(
            "This file is named .%(extension)s but it is not a JPEG image.", extension=ext
        ),
        "image/png": Reason.gettext(
            "This file is named .%(extension)s but it is not a PNG image.", extension=ext
        ),
        "image/gif": Reason.gettext(
            "This file is named .%(extension)s but it is not a GIF image.", extension=ext
        ),
        "image/webp": Reason.gettext(
            "This file is named .%(extension)s but it is not a WebP image.", extension=ext
        ),
    }[expected]


# --- Images ---------------------------------------------------------------------


def _image_open(c: _Candidate):
    """Open for reading the header only. Pillow's decompression-bomb guard is set
    to the pixel limit and its warning made an error, so an image past the limit
    is refused here, before any pixel is decoded."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = c.limits.max_image_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(c.path, formats=[_PIL_FORMATS[c.media_type]])
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise _Reject(
                Reason.gettext(
                    "This image is too large to open safely: it has more than "
                    "%(millions)s million pixels.",
                    millions=_plain_number(c.limits.max_image_pixels / 1e6),
                )
            ) from None
        except (OSError, SyntaxError, ValueError):
            raise _Reject(_damaged(c)) from None


_PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}


def _image_header_limits(c: _Candidate) -> None:
    with _image_open(c) as image:
        width, height = image.size
    side = c.limits.max_image_side
    if width > side or height > side:
        raise _Reject(
            Reason.gettext(
                "This image is %(width)s × %(height)s pixels; the limit is %(side)s pixels "
                "on a side.",
                width=width,
                height=height,
                side=side,
            )
        )


def _image_verify(c: _Candidate) -> None:
    """Every chunk present and intact (`verify`), then every pixel decodes (`load`):
    a PNG header followed by an HTML page passes the sniff and fails here."""
    try:
        with _image_open(c) as image:
            image.verify()
    except (_Reject, MemoryError):  # out of memory is the check's limit, not damage
        raise
    except Exception:
        raise _Reject(_damaged(c)) from None


def _image_prepare(c: _Candidate) -> None:
    """Decode once, resize to the long edge, apply the EXIF orientation, re-encode
    without metadata (EXIF with its GPS position, XMP, comments, ICC), in its own
    format; then a WebP thumbnail."""
    from PIL import Image

    long_edge = c.limits.image_long_edge
    try:
        with _image_open(c) as image:
            # An animated GIF or WebP: its first frame only (the API reads no more
            # of one either).
            image.seek(0)
            orientation = image.getexif().get(_ORIENTATION, 1)
            width, height = image.size
            scale = min(1.0, long_edge / max(width, height))
            if c.media_type == "image/jpeg":
                # JPEG decodes at 1/2, 1/4 or 1/8 scale for almost nothing: ask for
                # the smallest that is still at least the target size.
                image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            image.load()
            frame = _image_normal_mode(image, c.media_type)
    except (_Reject, MemoryError):  # out of memory is the check's limit, not damage
        raise
    except Exception:
        raise _Reject(_damaged(c)) from None
    del image
    # Resized before it is turned: the long-edge limit does not care which way up
    # it is, and turning the full-size image would copy all of it.
    frame = _resized(frame, long_edge)
    for method in _turns().get(orientation, ()):
        frame = frame.transpose(method)
    frame.info.clear()  # nothing of the upload's metadata reaches the saved file

    c.width, c.height = frame.size
    c.tokens = math.ceil(c.width * c.height / 750)  # the API's own estimate for images
    out_ext = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
    c.prepared_path = c.workdir / f"prepared.{out_ext[c.media_type]}"
    _image_save(frame, c.prepared_path, c.media_type)

    thumbnail = frame.convert("RGBA") if frame.mode not in ("RGB", "RGBA") else frame.copy()
    thumbnail.thumbnail((c.limits.thumbnail_px, c.limits.thumbnail_px), Image.Resampling.LANCZOS)
    c.thumbnail_path = c.workdir / "thumbnail.webp"
    thumbnail.save(c.thumbnail_path, "WEBP", quality=80, method=4)


# EXIF orientation -> the turns that put the picture upright (what
# `ImageOps.exif_transpose` does, which needs the EXIF on the image it turns).
_ORIENTATION = 0x0112


def _turns() -> dict[int, tuple]:
    from PIL.Image import Transpose as T

    return {
        2: (T.FLIP_LEFT_RIGHT,),
        3: (T.ROTATE_180,),
        4: (T.FLIP_TOP_BOTTOM,),
        5: (T.TRANSPOSE,),
        6: (T.ROTATE_270,),
        7: (T.TRANSVERSE,),
        8: (T.ROTATE_90,),
    }


def _image_normal_mode(image, media_type: str):
    """A mode its format can be saved in and resized well (palette images are
    resized in RGBA, then saved as their format likes)."""
    if media_type == "image/jpeg":
        return image.convert("RGB") if image.mode != "RGB" else image
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image  # no copy: at 8000 x 8000 one is 256 MB
    has_alpha = image.mode in ("P", "PA", "La") and (
        "transparency" in image.info or image.mode.endswith("A")
    )
    return image.convert("RGBA" if has_alpha or image.mode in ("PA", "La") else "RGB")


def _resized(image, long_edge: int):
    from PIL import Image

    width, height = image.size
    if max(width, height) <= long_edge:
        return image
    scale = long_edge / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # The largest integer `reduce` first (a box filter: each output pixel is the mean
    # of its block, so no aliasing), then one small Lanczos pass to the exact size.
    # A reduce to within 2x (Pillow's `thumbnail`) would hold a 4000 x 4000 copy
    # (64 MB) beside an 8000 x 8000 original; this holds 1600 x 1600 (10 MB).
    factor = int(1 / scale)
    if factor >= 2:
        image = image.reduce(factor)
    return image.resize(size, Image.Resampling.LANCZOS)


def _image_save(image, path: Path, media_type: str) -> None:
    if media_type == "image/jpeg":
        image.save(path, "JPEG", quality=88, optimize=True)
    elif media_type == "image/png":
        image.save(path, "PNG", compress_level=6)
    elif media_type == "image/gif":
        image.save(path, "GIF")
    else:
        image.save(path, "WEBP", quality=88, method=4)


# --- PDFs -------------------------------------------------------------------------

# What one PDF page costs at most, priced from its page count alone (no content
# stream is decoded: a stream of 70 MB of spaces compresses to 68 KB, so decoding
# to guess its text is how a 7 MB upload takes gigabytes). The API's guide puts a
# page's text at 1,500 to 3,000 tokens and bills the page's image on top; an
# image is at most ~1,600 tokens once scaled to its size limits. The worst case
# of both, so the budget hold never undercounts a page.
PDF_PAGE_TEXT_TOKENS_AT_MOST = 3_000
PDF_PAGE_IMAGE_TOKENS = 1_600
PDF_PAGE_TOKENS = PDF_PAGE_TEXT_TOKENS_AT_MOST + PDF_PAGE_IMAGE_TOKENS


def _pdf_read(c: _Candidate) -> None:
    """Opens, is not encrypted, within the page limit, and every page object
    resolves (a truncated file fails here, or on its missing end marker). Page
    contents are never decoded: Claude reads the file itself."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its repair notes are not errors here
    damaged = Reason.gettext(
        "This PDF is damaged or incomplete; save it again and upload it again."
    )
    with c.path.open("rb") as file:
        file.seek(max(0, c.size - 1024))
        # pypdf's strict mode asks for the same; without it pypdf "repairs" a cut-off
        # file into whatever pages it could find.
        if b"%%EOF" not in file.read():
            raise _Reject(damaged)
    try:
        reader = PdfReader(c.path, strict=False)
        if reader.is_encrypted:
            raise _Reject(
                Reason.gettext(
                    "This PDF is protected with a password; remove the protection and "
                    "upload it again."
                )
            )
        pages = len(reader.pages)
        if pages == 0:
            raise _Reject(damaged)
        if pages > c.limits.max_pdf_pages:
            raise _Reject(
                Reason.ngettext(
                    "This PDF has %(pages)s page; the limit is %(limit)s.",
                    "This PDF has %(pages)s pages; the limit is %(limit)s.",
                    pages,
                    pages=pages,
                    limit=c.limits.max_pdf_pages,
                )
            )
        for page in reader.pages:
            page.mediabox  # noqa: B018 -- resolves the page's dictionary, decodes nothing
    except _Reject:
        raise
    except (PdfReadError, OSError, ValueError, KeyError, TypeError, AttributeError):
        raise _Reject(damaged) from None
    c.pages = pages
    c.tokens = pages * PDF_PAGE_TOKENS


# --- Text -------------------------------------------------------------------------


# Text is priced at 3 UTF-8 bytes a token, not 4 characters: the composer's
# estimator counts 3 characters a token (usage.estimates.CHARS_PER_TOKEN), and
# bytes are never fewer than characters, so non-Latin text (3 bytes a CJK
# character, often a token or more each) is not undercounted either.
TEXT_BYTES_PER_TOKEN = 3


def _text_read(c: _Candidate) -> None:
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with c.path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                if b"\x00" in chunk:
                    raise _Reject(_not_text(c))
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        if c.real_type and c.real_type not in ("text/plain", "text/html", "text/xml"):
            raise _Reject(_not_text(c)) from None
        raise _Reject(
            Reason.gettext("This text file is not in UTF-8; save it as UTF-8 and upload it again.")
        ) from None
    c.tokens = math.ceil(c.size / TEXT_BYTES_PER_TOKEN)
    if c.tokens > c.limits.max_text_tokens:
        # Rounded up to thousands: "about" a number, never below the limit it passed.
        about = math.ceil(c.tokens / 1000) * 1000
        raise _Reject(
            Reason.ngettext(
                "This text file is about %(tokens)s token; Claude reads at most "
                "%(limit)s in one message.",
                "This text file is about %(tokens)s tokens; Claude reads at most "
                "%(limit)s in one message.",
                about,
                grouped=("tokens", "limit"),
                tokens=about,
                limit=c.limits.max_text_tokens,
            )
        )


def _not_text(c: _Candidate) -> Reason:
    if c.extension:
        return Reason.gettext(
            "This file is named .%(extension)s but it is not a text file.",
            extension=c.extension,
        )
    return Reason.gettext(
        "This file is not one that can be attached; attach images (JPEG, PNG, GIF or WebP), "
        "PDFs, or text files."
    )


_COMMON_STEPS = (_size_check, _type_sniff, _kind_decide)
_KIND_STEPS = {
    "image": (_image_header_limits, _image_verify, _image_prepare),
    "pdf": (_pdf_read,),
    "text": (_text_read,),
}


# --- Helpers ----------------------------------------------------------------------


def _extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    if base.lower() in ("dockerfile", "makefile"):
        return ""
    stem, dot, ext = base.rpartition(".")
    return ext.lower() if dot and stem else ""


def _damaged(c: _Candidate) -> Reason:
    # A sentence for each type: a language may need to inflect the type's name.
    return {
        "image/jpeg": Reason.gettext(
            "This JPEG image is damaged or incomplete and cannot be read."
        ),
        "image/png": Reason.gettext("This PNG image is damaged or incomplete and cannot be read."),
        "image/gif": Reason.gettext("This GIF image is damaged or incomplete and cannot be read."),
        "image/webp": Reason.gettext(
            "This WebP image is damaged or incomplete and cannot be read."
        ),
    }[c.media_type]


def _megabytes(size: int) -> int | float:
    """Mebibytes to one decimal, a whole number without one ("3", "23.8")."""
    return _plain_number(round(size / (1024 * 1024), 1))


def _plain_number(value: float) -> int | float:
    return int(value) if value == int(value) else value


# --- In a child process -------------------------------------------------------------


class CheckCrashed(Exception):
    """The checking process died or ran out of time: nothing is known of the file."""


# CPU seconds the checking child may use: the largest image allowed takes ~1 s, a
# 100-page PDF well under one; past this it is a file built to be slow. SIGXCPU
# ends the child at the soft limit; the hard one, a little later, is a backstop.
CHECK_CPU_SECONDS = 60
# The child's exit status when it ran out of memory under its limit.
_EXIT_OUT_OF_MEMORY = 3
OUT_OF_MEMORY_REASON = Reason.gettext("This file needs more memory to check than we allow.")
OUT_OF_TIME_REASON = Reason.gettext("This file takes longer to check than we allow.")


def _child_limits(memory_bytes: int):
    """Limits the child takes on between fork and exec, before it reads any of the
    file: a limit set by the child itself would trust the code it runs."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (CHECK_CPU_SECONDS, CHECK_CPU_SECONDS + 5))

    return apply


def file_check_isolated(
    path: Path, *, name: str, limits: Limits, workdir: Path, timeout: float = 120.0
) -> CheckResult:
    """`file_check` in a fresh interpreter, so its memory is given back when it ends;
    a file that takes the child past its memory or CPU limit is rejected."""
    request = {
        "path": str(Path(path).resolve()),
        "name": name,
        "limits": asdict(limits),
        "workdir": str(Path(workdir).resolve()),
    }
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    started = time.monotonic()
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "conversations.attachments.checks"],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=timeout,
            cwd=root,
            env=env,
            check=False,
            preexec_fn=_child_limits(limits.check_memory_bytes),  # noqa: PLW1509 -- setrlimit only
        )
    except subprocess.TimeoutExpired as expired:
        raise CheckCrashed(f"the check took longer than {timeout:g} s") from expired
    if completed.returncode == _EXIT_OUT_OF_MEMORY:
        logger.warning("Checking %s ran out of its %s bytes", name, limits.check_memory_bytes)
        return Rejected(OUT_OF_MEMORY_REASON)
    if completed.returncode == -signal.SIGXCPU:  # Python leaves SIGXCPU at its default: exit
        logger.warning("Checking %s ran out of its %s CPU seconds", name, CHECK_CPU_SECONDS)
        return Rejected(OUT_OF_TIME_REASON)
    if completed.returncode != 0:
        raise CheckCrashed(
            f"the check exited with {completed.returncode}: "
            + completed.stderr.decode(errors="replace")[-2000:]
        )
    answer = json.loads(completed.stdout)
    logger.info(
        "Checked %s in %.2f s; the check's peak memory was %s MB",
        name,
        time.monotonic() - started,
        answer.get("peak_rss_mb"),
    )
    return result_from_json(answer)


def result_to_json(result: CheckResult) -> dict[str, Any]:
    if isinstance(result, Rejected):
        return {"rejected": asdict(result.reason)}
    data = asdict(result)
    for key in ("prepared_path", "thumbnail_path"):
        data[key] = str(data[key]) if data[key] is not None else None
    return {"prepared": data}


def result_from_json(data: dict[str, Any]) -> CheckResult:
    if "rejected" in data:
        reason = data["rejected"]
        return Rejected(Reason(**{**reason, "grouped": tuple(reason["grouped"])}))
    fields = dict(data["prepared"])
    for key in ("prepared_path", "thumbnail_path"):
        fields[key] = Path(fields[key]) if fields[key] is not None else None
    return Prepared(**fields)


def _main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    try:
        result = file_check(
            Path(request["path"]),
            name=request["name"],
            limits=Limits(**request["limits"]),
            workdir=Path(request["workdir"]),
        )
    except MemoryError:
        # Past RLIMIT_AS: the parent turns the status into a plain rejection.
        sys.stderr.write("the check ran out of memory\n")
        sys.exit(_EXIT_OUT_OF_MEMORY)
    sys.stdout.write(json.dumps({**result_to_json(result), "peak_rss_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> int | None:
    """This process's own peak (VmHWM): getrusage would count the parent's pages
    from before the exec, which were shared, not used."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return None


if __name__ == "__main__":
    _main()
