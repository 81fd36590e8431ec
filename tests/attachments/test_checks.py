"""The checks over files on disk: every bad input with the reason its uploader
reads, every good type prepared as Claude should get it."""

from __future__ import annotations

import io
import logging
import re

import pytest
from PIL import Image
from pypdf import PdfReader

from conversations.attachments import checks
from conversations.attachments.checks import (
    OUT_OF_MEMORY_REASON,
    PDF_PAGE_TOKENS,
    Limits,
    Prepared,
    Rejected,
    file_check,
    file_check_isolated,
)
from tests.attachments.corpus import (
    HTML,
    jpeg_with_gps,
    pdf_bytes,
    pdf_flate_bomb,
    png_bytes,
    png_header_only,
    write,
    zip_bytes,
)

LIMITS = Limits()


def check(tmp_path, name: str, data: bytes, limits: Limits = LIMITS):
    source = write(tmp_path, "upload", data)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return file_check(source, name=name, limits=limits, workdir=out)


def reason_of(result) -> str:
    """What the uploader reads of a rejection, in the active language."""
    assert isinstance(result, Rejected), result
    return result.reason.text()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("cat.png", HTML, "This file is named .png but it is not a PNG image."),
        ("cat.jpg", png_bytes(), "This file is named .jpg but it is not a JPEG image."),
        (
            "cat.png",
            png_bytes()[:33] + HTML,  # the signature and IHDR, then a web page
            "This PNG image is damaged or incomplete and cannot be read.",
        ),
        (
            "huge.png",
            png_header_only(30000, 30000),
            "This image is too large to open safely: it has more than 64 million pixels.",
        ),
        (
            "wide.png",
            png_header_only(9000, 100),
            "This image is 9000 × 100 pixels; the limit is 8000 pixels on a side.",
        ),
        ("report.pdf", zip_bytes(), "This file is named .pdf but it is not a PDF."),
        (
            "secret.pdf",
            pdf_bytes(1, password="hunter2"),
            "This PDF is protected with a password; remove the protection and upload it again.",
        ),
        (
            "cut.pdf",
            pdf_bytes(3)[:400],
            "This PDF is damaged or incomplete; save it again and upload it again.",
        ),
        ("empty.txt", b"", "This file is empty."),
        ("book.pdf", pdf_bytes(101), "This PDF has 101 pages; the limit is 100."),
        (
            "notes.txt",
            "café au lait\n".encode("latin-1"),
            "This text file is not in UTF-8; save it as UTF-8 and upload it again.",
        ),
        ("data.csv", b"a,b\n\x00\x01\x02", "This file is named .csv but it is not a text file."),
        (
            "logo.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"/>',
            "Files of this type (.svg) cannot be attached; attach images (JPEG, PNG, GIF or WebP), "
            "PDFs, or text files.",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None,
)
def test_bad_input_is_rejected_with_its_reason(tmp_path, name, data, reason):
    assert reason_of(check(tmp_path, name, data)) == reason
    assert not list((tmp_path / "out").iterdir()), "nothing is prepared for a rejected file"


def test_over_the_size_limit(tmp_path):
    result = check(tmp_path, "a.txt", b"x" * (3 * 1024 * 1024), Limits(max_bytes=2 * 1024 * 1024))
    assert reason_of(result) == "This file is 3 MB; the limit is 2 MB."


def test_the_page_limit_is_the_setting(tmp_path):
    result = check(tmp_path, "a.pdf", pdf_bytes(12), Limits(max_pdf_pages=10))
    assert reason_of(result) == "This PDF has 12 pages; the limit is 10."


def test_a_30000_px_png_is_refused_before_its_pixels_are_allocated(tmp_path):
    """The bomb's header alone: refusing it must not cost the 3.6 GB it claims."""
    import tracemalloc

    tracemalloc.start()
    result = check(tmp_path, "bomb.png", png_header_only(30000, 30000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(result, Rejected)
    assert peak < 20 * 1024 * 1024
    # Never switched off (None would let any bomb through).
    assert Image.MAX_IMAGE_PIXELS == LIMITS.max_image_pixels


def test_jpeg_is_resized_upright_and_loses_its_exif_and_gps(tmp_path):
    # Orientation 6: the camera was turned; the stored 3000 x 2000 shows as 2000 x 3000.
    result = check(tmp_path, "IMG_0001.JPG", jpeg_with_gps((3000, 2000), orientation=6))
    assert isinstance(result, Prepared)
    assert (result.kind, result.media_type) == ("image", "image/jpeg")
    assert (result.width, result.height) == (1045, 1568)
    with Image.open(result.prepared_path) as prepared:
        assert prepared.format == "JPEG"
        assert prepared.size == (1045, 1568)
        assert not prepared.getexif(), "no EXIF at all: no GPS, no camera, no orientation"
        assert "exif" not in prepared.info
        # Upright: the yellow band drawn along the stored top is now on the right.
        assert prepared.getpixel((1000, 100))[2] < 100
        assert prepared.getpixel((100, 100))[2] > 150
    assert b"PhoneMaker" not in result.prepared_path.read_bytes()
    assert result.tokens == -(-1045 * 1568 // 750)
    assert result.prepared_size == result.prepared_path.stat().st_size
    with Image.open(result.thumbnail_path) as thumbnail:
        assert thumbnail.format == "WEBP"
        assert max(thumbnail.size) == 320


@pytest.mark.parametrize(
    ("fmt", "ext", "media_type"),
    [
        ("PNG", "png", "image/png"),
        ("GIF", "gif", "image/gif"),
        ("WEBP", "webp", "image/webp"),
    ],
)
def test_each_image_type_keeps_its_format(tmp_path, fmt, ext, media_type):
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 1000), (10, 200, 10)).save(buffer, fmt)
    result = check(tmp_path, f"pic.{ext}", buffer.getvalue())
    assert isinstance(result, Prepared)
    assert (result.media_type, result.width, result.height) == (media_type, 1568, 392)
    with Image.open(result.prepared_path) as prepared:
        assert prepared.format == fmt


def test_a_small_image_keeps_its_size(tmp_path):
    result = check(tmp_path, "dot.png", png_bytes((64, 48)))
    assert (result.width, result.height, result.tokens) == (64, 48, 5)


def test_pdf_pages_are_counted_and_sent_as_uploaded(tmp_path):
    data = pdf_bytes(20)
    result = check(tmp_path, "slides.pdf", data)
    assert isinstance(result, Prepared)
    assert (result.kind, result.media_type, result.pages) == ("pdf", "application/pdf", 20)
    assert result.prepared_path is None and result.thumbnail_path is None
    assert result.prepared_size == len(data)
    # Priced from the page count alone, at the worst case of text plus page image.
    assert result.tokens == 20 * PDF_PAGE_TOKENS == 20 * (3_000 + 1_600)
    assert len(PdfReader(io.BytesIO(data)).pages) == 20


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("README.md", "text/markdown"),
        ("table.csv", "text/csv"),
        ("main.py", "text/plain"),
        ("Makefile", "text/plain"),
    ],
)
def test_utf8_text_is_accepted(tmp_path, name, media_type):
    text = "naïve café — 日本語\n" * 100
    result = check(tmp_path, name, text.encode())
    assert isinstance(result, Prepared)
    assert (result.kind, result.media_type, result.prepared_path) == ("text", media_type, None)
    # Three UTF-8 bytes a token: never fewer than the composer's 3 characters a token.
    assert result.tokens == -(-len(text.encode()) // 3)
    assert result.tokens >= -(-len(text) // 3)


def test_text_past_the_token_limit_is_rejected_in_plain_words(tmp_path):
    limits = Limits(max_text_tokens=1_000)
    assert isinstance(check(tmp_path, "a.txt", b"x" * 3_000, limits), Prepared)
    assert reason_of(check(tmp_path, "a.txt", b"x" * 3_003, limits)) == (
        "This text file is about 2,000 tokens; Claude reads at most 1,000 in one message."
    )


def test_a_30_mb_text_file_is_never_shown_ready(tmp_path):
    """About 10 million tokens: past every model's context window, so it is refused
    when checked rather than at send, where nothing could be done about it."""
    result = check(tmp_path, "dump.log", b"line of log\n" * (30 * 1024 * 1024 // 12))
    assert reason_of(result) == (
        "This text file is about 10,486,000 tokens; Claude reads at most 180,000 in one message."
    )


def test_a_pasted_image_without_an_extension_goes_by_its_bytes(tmp_path):
    result = check(tmp_path, "image", png_bytes())
    assert (result.kind, result.media_type) == ("image", "image/png")


@pytest.fixture(scope="module")
def big_png(tmp_path_factory):
    """The largest image allowed: 8000 x 8000 pixels."""
    from PIL import ImageDraw

    image = Image.new("RGB", (8000, 8000), (240, 240, 255))
    draw = ImageDraw.Draw(image)
    for i in range(0, 8000, 400):
        draw.line([(0, i), (8000, 8000 - i)], fill=(i % 255, 90, 200), width=5)
    source = tmp_path_factory.mktemp("big") / "big.png"
    image.save(source, "PNG", compress_level=1)
    return source


def _child_peak_mb(caplog) -> int:
    return int(re.search(r"peak memory was (\d+) MB", caplog.text).group(1))


def test_an_8000_px_png_is_checked_in_a_child_under_300_mb(tmp_path, caplog, big_png):
    """The worker's own memory does not grow: the decode happens in a child process
    whose peak stays under 300 MB for the largest image allowed (and the child's
    memory limit leaves it room)."""
    with caplog.at_level(logging.INFO, logger="conversations.attachments.checks"):
        result = file_check_isolated(big_png, name="poster.png", limits=LIMITS, workdir=tmp_path)
    assert isinstance(result, Prepared)
    assert (result.width, result.height) == (1568, 1568)
    assert _child_peak_mb(caplog) < 300, _child_peak_mb(caplog)


def test_a_check_past_its_memory_limit_is_rejected_in_plain_words(tmp_path, big_png):
    """The child may not take the worker's host down: past its address-space limit
    the file is rejected, not retried, and nothing is prepared."""
    out = tmp_path / "out"
    out.mkdir()
    tight = Limits(check_memory_bytes=200 * 1024 * 1024)  # the decode alone is 192 MB
    result = file_check_isolated(big_png, name="poster.png", limits=tight, workdir=out)
    assert result == Rejected(OUT_OF_MEMORY_REASON)
    assert reason_of(result) == "This file needs more memory to check than we allow."
    assert not list(out.iterdir())


def test_the_check_child_runs_under_memory_and_cpu_limits():
    import subprocess
    import sys

    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource as r; print(r.getrlimit(r.RLIMIT_AS)[0], r.getrlimit(r.RLIMIT_CPU)[0])",
        ],
        preexec_fn=checks._child_limits(LIMITS.check_memory_bytes),  # noqa: PLW1509
        capture_output=True,
        check=True,
        text=True,
    ).stdout.split()
    assert [int(n) for n in shown] == [1536 * 1024 * 1024, checks.CHECK_CPU_SECONDS]


def test_a_pdf_of_compressed_blank_pages_is_priced_by_its_pages_not_decoded(tmp_path, caplog):
    """100 pages of 70 MB of spaces each, compressed to 6.8 MB: decoding its pages
    took the child to 6.8 GB and priced it at 218 million tokens. It is counted,
    never decoded: ready, at the per-page worst case, in little memory."""
    source = write(tmp_path, "bomb.pdf", pdf_flate_bomb(100))
    assert source.stat().st_size < 8 * 1024 * 1024
    with caplog.at_level(logging.INFO, logger="conversations.attachments.checks"):
        result = file_check_isolated(source, name="bomb.pdf", limits=LIMITS, workdir=tmp_path)
    assert isinstance(result, Prepared), result
    assert (result.kind, result.pages) == ("pdf", 100)
    assert result.tokens == 100 * PDF_PAGE_TOKENS
    assert _child_peak_mb(caplog) < 150, _child_peak_mb(caplog)


def test_a_file_too_big_to_send_inline_is_rejected_when_checked(tmp_path):
    """Under the upload limit, over what base64 lets one request carry: it could
    never be sent, so it is not shown as ready (with the Files API it is fine)."""
    big = pdf_bytes(1)
    inline_limit = len(big) - 1
    result = check(tmp_path, "scan.pdf", big, Limits(max_inline_bytes=inline_limit))
    assert "in one message here" in reason_of(result) and "32 MB request limit" in reason_of(result)
    assert not isinstance(check(tmp_path, "scan.pdf", big, Limits(max_inline_bytes=None)), Rejected)
