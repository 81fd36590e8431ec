"""A rejected file's reason reaches its uploader in their language.

The check runs in a worker (no request) and, inside it, in a child process with
no Django: the reason comes back from the child as its English sentence and
values, and the worker says it in the language the upload's request was in,
which the upload hands to the task. Under the pseudo-language
(tests/i18n_pseudo.py) every reason a real bad file gets is one sentence, all
of it marked.
"""

from __future__ import annotations

import ast
import io
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from django.test import Client
from django.utils import translation
from django.utils.translation import trans_real
from PIL import Image

from conversations.attachments import checks, pipeline
from conversations.models import Attachment
from conversations.tasks import attachment_check_task
from tests.attachments.conftest import multipart
from tests.attachments.corpus import (
    HTML,
    jpeg_with_gps,
    pdf_bytes,
    png_bytes,
    png_header_only,
    zip_bytes,
)
from tests.i18n_pseudo import (
    CLOSE,
    OPEN,
    PseudoTranslation,
    pseudo_language,  # noqa: F401  (the fixture)
    unmarked_words,
)

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024


def _image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (200, 150), (10, 200, 10)).save(out, fmt)
    return out.getvalue()


# A real bad file for every reason the check gives, and the settings it is checked under.
BAD_FILES = [
    ("empty.txt", b"", {}),
    ("big.txt", b"x" * (3 * MIB), {"ATTACHMENT_MAX_BYTES": 2 * MIB}),
    ("cat.png", HTML, {}),
    ("cat.jpg", png_bytes(), {}),
    ("cat.gif", png_bytes(), {}),
    ("cat.webp", png_bytes(), {}),
    ("report.pdf", zip_bytes(), {}),
    ("data.csv", b"a,b\n\x00\x01\x02", {}),
    ("blob", b"\x00\x01\x02\x03", {}),  # no extension, and not text either
    ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', {}),
    ("cut.png", png_bytes()[:33] + HTML, {}),
    ("cut.jpg", jpeg_with_gps((300, 200))[:1000], {}),
    ("cut.gif", _image("GIF")[:60], {}),
    ("cut.webp", _image("WEBP")[:40], {}),
    ("huge.png", png_header_only(30000, 30000), {}),
    ("wide.png", png_header_only(9000, 100), {}),
    ("secret.pdf", pdf_bytes(1, password="hunter2"), {}),
    ("cut.pdf", pdf_bytes(3)[:400], {}),
    ("book.pdf", pdf_bytes(101), {}),
    ("notes.txt", "café au lait\n".encode("latin-1"), {}),
    ("long.txt", b"x" * 3_003, {"ATTACHMENT_MAX_TEXT_TOKENS": 1_000}),
]


def _one_marked_sentence(reason: str, name: str) -> None:
    """Marked, and as one msgid: a sentence glued from pieces would show two ⟦⟧."""
    assert unmarked_words(reason, data=[name, Path(name).suffix]) == [], reason
    assert reason.startswith(OPEN) and reason.endswith(CLOSE), reason
    assert reason.count(OPEN) == 1, reason


@pytest.mark.usefixtures("pseudo_language")
@pytest.mark.parametrize(
    ("name", "data", "limits"),
    BAD_FILES,
    ids=[f"{name}-{index}" for index, (name, _, _) in enumerate(BAD_FILES)],
)
def test_every_reason_a_bad_file_gets_is_marked(upload, settings, name, data, limits):
    for setting, value in limits.items():
        setattr(settings, setting, value)
    attachment = upload(name, data)
    assert pipeline.attachment_check(attachment_id=str(attachment.id)) == "rejected"
    attachment.refresh_from_db()
    _one_marked_sentence(attachment.reason, name)


@pytest.mark.usefixtures("pseudo_language")
def test_a_file_too_big_to_send_inline_gets_a_marked_reason(upload, settings, monkeypatch):
    settings.CLAUDE_FILES_API = False
    # A request limit that leaves a one-page PDF no room once base64 is counted.
    monkeypatch.setattr(checks, "API_MAX_REQUEST_BYTES", checks.REQUEST_BYTES_HEADROOM + 100)
    attachment = upload("scan.pdf", pdf_bytes(1))
    assert pipeline.attachment_check(attachment_id=str(attachment.id)) == "rejected"
    attachment.refresh_from_db()
    assert "request limit" in attachment.reason
    _one_marked_sentence(attachment.reason, "scan.pdf")


@pytest.mark.usefixtures("pseudo_language")
@pytest.mark.parametrize(
    ("returncode", "english"),
    [
        (-signal.SIGXCPU, "This file takes longer to check than we allow."),
        (3, "This file needs more memory to check than we allow."),
    ],
    ids=["out of time", "out of memory"],
)
def test_a_check_past_its_limits_gets_a_marked_reason(upload, monkeypatch, returncode, english):
    """The child's end as its limits end it: killed at its CPU seconds (SIGXCPU),
    or out of its address space (its exit status 3). Running a file for the 60
    CPU seconds it may take is not a test to wait for: the child's exit is faked,
    what the worker makes of it is not."""

    def child_ended(args, **kwargs):
        return subprocess.CompletedProcess(args, returncode, stdout=b"", stderr=b"")

    monkeypatch.setattr(checks.subprocess, "run", child_ended)
    attachment = upload("poster.png", png_bytes())
    assert pipeline.attachment_check(attachment_id=str(attachment.id)) == "rejected"
    attachment.refresh_from_db()
    assert attachment.reason == f"{OPEN}{english}{CLOSE}"


@pytest.mark.usefixtures("pseudo_language")
def test_the_last_attempt_s_failure_gets_a_marked_reason(upload, settings, monkeypatch):
    settings.ATTACHMENT_CHECK_MAX_ATTEMPTS = 1

    def broken(*args, **kwargs):
        raise checks.CheckCrashed("the check exited with -9")

    monkeypatch.setattr(pipeline.checks, "file_check_isolated", broken)
    attachment = upload("notes.txt", b"hello\n")
    assert pipeline.attachment_check(attachment_id=str(attachment.id)) == "rejected"
    attachment.refresh_from_db()
    assert attachment.reason == f"{OPEN}{pipeline.CHECK_FAILED_REASON}{CLOSE}"


@pytest.mark.usefixtures("pseudo_language")
def test_the_sweep_s_rejection_is_marked(upload, settings, django_capture_on_commit_callbacks):
    import datetime as dt

    from django.utils import timezone

    long_ago = timezone.now() - dt.timedelta(seconds=settings.ATTACHMENT_CHECK_STALE_SECONDS + 5)
    attachment = upload("notes.txt", b"hello\n")
    Attachment.objects.filter(id=attachment.id).update(
        check_started_at=long_ago, check_attempts=settings.ATTACHMENT_CHECK_MAX_ATTEMPTS
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.attachments_sweep() == 1
    attachment.refresh_from_db()
    assert attachment.reason == f"{OPEN}{pipeline.CHECK_FAILED_REASON}{CLOSE}"


# --- The uploader's language ------------------------------------------------------


@pytest.fixture
def german(settings, monkeypatch) -> PseudoTranslation:
    """German on offer, and the pseudo-language standing in for it: what is said
    in German comes out ⟦...⟧, in English as plain words."""
    settings.LANGUAGES = [("en", "English"), ("de", "Deutsch")]
    german = PseudoTranslation(language="de")
    real = trans_real.translation
    monkeypatch.setattr(
        trans_real, "translation", lambda language: german if language == "de" else real(language)
    )
    return german


def _upload_and_check(
    alice, conversation, enqueued, capture, *, accept_language: str
) -> tuple[str, str]:
    """Upload a text file past the token limit through the view, with the browser's
    Accept-Language; run the task it enqueued as a worker would (no request, the
    site's language active). The language handed to the task, the stored reason."""
    client = Client(headers={"accept-language": accept_language})
    client.force_login(alice)
    body, content_type = multipart("notes.txt", b"x" * 3_003)
    enqueued.clear()
    with capture(execute=True):
        response = client.post(
            f"/c/{conversation.id}/attachments/", data=body, content_type=content_type
        )
    assert response.status_code == 202, response.content
    ((attachment_id, language),) = enqueued
    with translation.override("en"):
        assert attachment_check_task(attachment_id, language) == "rejected"
    return language, Attachment.objects.get(id=attachment_id).reason


def test_the_reason_is_stored_in_the_language_of_the_upload(
    german, alice, make_conversation, enqueued, settings, django_capture_on_commit_callbacks
):
    settings.ATTACHMENT_MAX_TEXT_TOKENS = 1_000
    conversation = make_conversation()

    language, reason = _upload_and_check(
        alice,
        conversation,
        enqueued,
        django_capture_on_commit_callbacks,
        accept_language="de-DE,de;q=0.9,en;q=0.5",
    )
    # German's words, and German's thousands separator.
    assert language == "de"
    assert reason == (
        f"{OPEN}This text file is about 2.000 tokens; Claude reads at most 1.000 "
        f"in one message.{CLOSE}"
    )

    language, reason = _upload_and_check(
        alice, conversation, enqueued, django_capture_on_commit_callbacks, accept_language="en"
    )
    assert language == "en"
    assert reason == (
        "This text file is about 2,000 tokens; Claude reads at most 1,000 in one message."
    )


def test_a_check_queued_without_a_language_is_in_the_site_s(german, upload, settings):
    """A message queued before the task took a language, or by the sweep (which
    has no request), still runs: in LANGUAGE_CODE."""
    settings.LANGUAGE_CODE = "de"
    attachment = upload("empty.txt", b"")
    with translation.override("en"):
        assert attachment_check_task(str(attachment.id)) == "rejected"
    attachment.refresh_from_db()
    assert attachment.reason == f"{OPEN}This file is empty.{CLOSE}"


# --- makemessages finds the sentences -------------------------------------------------

# The keywords Django's makemessages gives xgettext for Python, beside xgettext's own
# (gettext, ngettext, ...).
_DJANGO_KEYWORDS = (
    "gettext_noop",
    "gettext_lazy",
    "ngettext_lazy:1,2",
    "pgettext:1c,2",
    "npgettext:1c,2,3",
    "pgettext_lazy:1c,2",
    "npgettext_lazy:1c,2,3",
)


def _reason_sentences(source: Path) -> set[tuple[str, ...]]:
    """Every `Reason.gettext(...)` / `Reason.ngettext(...)` sentence of a module,
    read from its syntax tree: (msgid,) or (msgid, plural)."""
    found: set[tuple[str, ...]] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "Reason"
            and node.func.attr in ("gettext", "ngettext")
        ):
            count = 1 if node.func.attr == "gettext" else 2
            found.add(tuple(ast.literal_eval(arg) for arg in node.args[:count]))
    return found


def _po_string(quoted_lines: str) -> str:
    return "".join(ast.literal_eval(line) for line in quoted_lines.split("\n") if line)


# `make test` installs gettext; with CI set, its absence is a failure, never a skip.
@pytest.mark.skipif(
    shutil.which("xgettext") is None and not os.environ.get("CI"),
    reason="GNU gettext is not installed (make test installs it)",
)
def test_makemessages_finds_every_reason():
    """The sentences are marked by `Reason.gettext`/`Reason.ngettext`, not Django's
    functions (the child has no Django): xgettext must still find each, whole,
    with its plural, and flagged python-format where it names values."""
    sources = [Path(checks.__file__), Path(pipeline.__file__)]
    keywords = [f"--keyword={keyword}" for keyword in _DJANGO_KEYWORDS]
    po = subprocess.run(
        ["xgettext", "--language=Python", "--from-code=UTF-8", *keywords, "-o", "-"]
        + [str(source) for source in sources],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    entries = re.findall(
        r'^(#, python-format\n)?msgid ((?:".*"\n)+)(?:msgid_plural ((?:".*"\n)+))?', po, re.M
    )
    extracted = {
        (_po_string(msgid), _po_string(plural)) if plural else (_po_string(msgid),): bool(flag)
        for flag, msgid, plural in entries
    }
    sentences = _reason_sentences(sources[0])
    assert len(sentences) >= 20
    for sentence in sentences:
        assert sentence in extracted, sentence
        assert extracted[sentence] == ("%(" in sentence[0]), sentence
    assert (pipeline.CHECK_FAILED_REASON,) in extracted
