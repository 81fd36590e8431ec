"""Files in chat, in Chromium: attach by the paperclip and by a drop, watch the
upload's progress and the check, send, see the files in the thread (and Claude's
reply naming them), reload and see them still there.

The site of conftest.py has no worker of its own, so this module starts a real
Celery worker beside it, on the same settings: the same SQLite database and
kombu's filesystem broker in the site's `CHAT_VAR_DIR` (no eager mode, no Redis).
That site's channel layer is in memory, one per process, so the worker's
`attachment.updated` frames cannot reach the web process's sockets: a chip then
learns its state from `GET /attachments/<id>/`, which it asks while the file is
checking (as the empty state, with no socket, always does). The frames' own path
is driven by the second test, which holds those answers back and hands the page
the frame through a relay of its socket.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ROOT, _server_env, _stop, screenshot
from tests.e2e.test_chat import LAST_REPLY, sign_in, start_chat, wait_for_status
from tests.e2e.test_chat_socket import MESSAGE_SHAPES, SocketTap

pytestmark = pytest.mark.e2e

CONVERSATION_URL = re.compile(r"/c/[0-9a-f-]{36}/$")
ALL_SETTLED = (
    "() => { const chips = [...document.querySelectorAll('#attach-tray .chip')];"
    " return chips.length > 0 && chips.every((c) => ['ready', 'rejected'].includes(c.dataset.status)); }"
)


@pytest.fixture(scope="module")
def worker(site):
    """A Celery worker on the site's database and filesystem broker."""
    env = _server_env(site.var_dir, urlsplit(site.fake_url).port)
    log_path = site.var_dir / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "chatsite", "worker"]
            + ["--pool=solo", "--concurrency=1", "--loglevel=info", "--without-mingle"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while b" ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.fail("The Celery worker did not start:\n" + log_path.read_text()[-4000:])
        time.sleep(0.2)
    yield process
    _stop(process)


def png_bytes(width: int = 1200, height: int = 900) -> bytes:
    """A noisy, uncompressed PNG of about 3 MB: its upload takes a while when slowed."""
    from PIL import Image

    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    return out.getvalue()


def pdf_bytes(pages: int) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def drop_files(page, selector: str, files: list[tuple[str, str, bytes]]) -> None:
    """Drag files over `selector` (the overlay shows), then drop them there, as a
    person dragging from their desktop: a DataTransfer dispatched with the events."""
    payload = [
        {"name": name, "type": media_type, "data": base64.b64encode(data).decode()}
        for name, media_type, data in files
    ]
    page.evaluate(
        """([selector, files]) => {
          const transfer = new DataTransfer();
          for (const f of files) {
            const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
            transfer.items.add(new File([bytes], f.name, { type: f.type }));
          }
          window.__drop = transfer;
          const zone = document.querySelector(selector);
          zone.dispatchEvent(new DragEvent("dragenter", { dataTransfer: transfer, bubbles: true, cancelable: true }));
          zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        [selector, payload],
    )
    expect(page.locator("#drop-overlay")).to_be_visible()
    page.evaluate(
        """(selector) => document.querySelector(selector).dispatchEvent(
          new DragEvent("drop", { dataTransfer: window.__drop, bubbles: true, cancelable: true }))""",
        selector,
    )
    expect(page.locator("#drop-overlay")).to_be_hidden()


def record_progress(page) -> None:
    """Every value the chips' progress bars take, as the page shows them."""
    page.evaluate(
        """() => {
          window.__progress = [];
          new MutationObserver(() => {
            for (const bar of document.querySelectorAll('.chip-progress:not([hidden])')) {
              window.__progress.push(Number(bar.value));
            }
          }).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
        }"""
    )


def slow_uploads(page, bytes_per_second: int):
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )
    return cdp


def user_message_shape(page):
    return [m for m in page.evaluate(MESSAGE_SHAPES) if m[1]["data-role"] == "user"]


def test_attach_by_button_and_drop_then_send_and_reload(site, worker, new_page):
    """On the empty state (files before the first message, as on claude.ai): a PNG by
    the paperclip uploads with visible progress, is checked and gets its thumbnail; a
    PDF dropped on the page shows its pages. Sent, the message shows the thumbnail
    (a link to the file) and the PDF's card, Claude's reply names both, and after a
    reload the server renders the same message, files and all."""
    page = new_page()
    sign_in(page, "alice", site.password)
    page.goto("/")
    record_progress(page)
    throttle = slow_uploads(page, 400_000)
    photo = png_bytes()
    assert len(photo) > 2_000_000
    button = page.get_by_role("button", name="Attach files")
    expect(button).to_be_visible()
    button.focus()  # a keyboard can reach the paperclip
    page.set_input_files(
        "#attach-input", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": photo}]
    )
    chip = page.locator("#attach-tray .chip").filter(has_text="photo.png")
    expect(chip).to_have_attribute("data-status", "uploading")
    expect(chip.locator(".chip-meta")).to_contain_text(re.compile(r"Uploading… \d+%"))
    expect(chip.locator(".chip-progress")).to_be_visible()
    screenshot(page, "attach-01-uploading")
    # Send waits for it: the button says why, and Enter says so too.
    send_button = page.locator("#send-btn")
    expect(send_button).to_have_attribute("aria-disabled", "true")
    page.fill("#first-message", "What is in these?")
    page.press("#first-message", "Enter")
    expect(page.locator("#new-chat-error")).to_contain_text(
        "Waiting for your file to finish uploading"
    )
    assert CONVERSATION_URL.search(page.url) is None

    throttle.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    expect(chip).to_have_attribute("data-status", "ready", timeout=30_000)
    progress = page.evaluate("window.__progress")
    assert any(0 < value < 100 for value in progress), progress
    thumb = chip.locator("img.chip-img")
    expect(thumb).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle()
    )
    expect(chip.locator(".chip-meta")).to_have_text(re.compile(r"MB$"))
    expect(page.get_by_role("button", name="Remove photo.png")).to_be_visible()
    # The model and settings went with the conversation the first file made.
    expect(page.locator('select[name="model"]')).to_be_disabled()

    drop_files(page, "#welcome", [("report.pdf", "application/pdf", pdf_bytes(3))])
    pdf_chip = page.locator("#attach-tray .chip").filter(has_text="report.pdf")
    expect(pdf_chip).to_have_attribute("data-status", "ready", timeout=30_000)
    expect(pdf_chip.locator(".chip-meta")).to_have_text("3 pages")
    expect(send_button).not_to_have_attribute("aria-disabled", "true")
    expect(page.locator("#new-chat-error")).to_be_hidden()
    screenshot(page, "attach-02-ready")

    page.press("#first-message", "Enter")
    page.wait_for_url(CONVERSATION_URL)
    conversation_url = page.url
    user = page.locator("article.msg-user").first
    image_link = user.locator("a.msg-file-image")
    expect(image_link).to_have_count(1)
    expect(image_link.locator("img")).to_have_attribute("alt", "photo.png")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=image_link.locator("img").element_handle(),
    )
    expect(image_link).to_have_attribute("target", "_blank")
    card = user.locator("a.msg-file-doc")
    expect(card.locator(".msg-file-name")).to_have_text("report.pdf")
    expect(card.locator(".msg-file-meta")).to_have_text("PDF · 3 pages")
    expect(user.locator(".bubble")).to_have_text("What is in these?")
    # The composer let go of the files with the send.
    expect(page.locator("#attach-tray .chip")).to_have_count(0)
    wait_for_status(page, "complete", timeout=30_000)
    reply = page.locator(LAST_REPLY).locator(".prose")
    expect(reply).to_contain_text("I read the attachments")
    expect(reply).to_contain_text("a PDF of 3 pages")
    screenshot(page, "attach-03-sent")

    # A click opens the prepared file itself (re-encoded, so no longer the upload).
    with page.context.expect_page() as opened:
        image_link.click()
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url.endswith("/file")
    response = page.request.get(image_link.get_attribute("href"))
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/")
    tab.close()

    live = user_message_shape(page)
    page.reload()
    page.wait_for_selector(LAST_REPLY)
    assert page.url == conversation_url
    expect(page.locator("article.msg-user a.msg-file-image img")).to_have_attribute(
        "alt", "photo.png"
    )
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=page.locator("article.msg-user a.msg-file-image img").element_handle(),
    )
    expect(page.locator("article.msg-user .msg-file-meta")).to_have_text("PDF · 3 pages")
    # One markup: the message the browser built and the one the server rendered.
    assert user_message_shape(page) == live
    screenshot(page, "attach-04-reloaded")


def test_a_frame_moves_a_chip_and_a_rejected_file_stops_the_send(site, worker, new_page):
    """In a conversation: while the server's answers about a file are held back,
    only its `attachment.updated` frame (through the socket's relay) makes the chip
    ready. A file the check rejects shows the reason in plain words, and the send
    says it cannot go until that file is removed; removed by the keyboard, the
    message goes with the other file."""
    page = new_page()
    tap = SocketTap(page)
    sign_in(page, "alice", site.password)
    start_chat(page, "[[fake tokens=5 tps=0]] Hello.")
    wait_for_status(page, "complete")
    tap.wait_for_sockets(1)

    held = {}

    def hold(route):
        # Every state question answers "checking": only a frame can move the chip.
        attachment_id = route.request.url.rstrip("/").rsplit("/", 1)[-1]
        held[attachment_id] = True
        route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({"id": attachment_id, "status": "checking"}),
        )

    status_urls = re.compile(r"/attachments/[0-9a-f-]{36}/$")
    page.route(status_urls, hold)
    page.set_input_files(
        "#attach-input",
        files=[
            {"name": "notes.md", "mimeType": "text/markdown", "buffer": b"# Notes\n\nShip it.\n"}
        ],
    )
    chip = page.locator("#attach-tray .chip").filter(has_text="notes.md")
    expect(chip).to_have_attribute("data-status", "checking")
    expect(chip.locator(".chip-meta")).to_have_text("Checking…")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    attachment_id = next(iter(held))
    page.press("#composer-input", "Enter")
    expect(page.locator("#composer-error")).to_contain_text(
        "Waiting for your file to finish checking"
    )

    tap.inject(
        {
            "type": "attachment.updated",
            "attachment": {
                "id": attachment_id,
                "name": "notes.md",
                "size": 18,
                "status": "ready",
                "reason": "",
                "kind": "text",
                "media_type": "text/markdown",
                "pages": None,
                "width": None,
                "height": None,
                "message_id": None,
            },
        }
    )
    expect(chip).to_have_attribute("data-status", "ready")
    expect(chip.locator(".chip-meta")).to_have_text("18 B")
    expect(page.locator("#composer-error")).to_be_hidden()

    page.unroute(status_urls)
    page.set_input_files(
        "#attach-input",
        files=[
            {"name": "fake.png", "mimeType": "image/png", "buffer": b"<html><body>hi</body></html>"}
        ],
    )
    bad = page.locator("#attach-tray .chip").filter(has_text="fake.png")
    expect(bad).to_have_attribute("data-status", "rejected", timeout=30_000)
    reason = bad.locator(".chip-meta").inner_text()
    assert reason and "png" in reason.lower(), reason
    page.fill("#composer-input", "Read my notes.")
    page.press("#composer-input", "Enter")
    expect(page.locator("#composer-error")).to_contain_text("“fake.png” can’t be sent")
    expect(page.locator("#composer-error")).to_contain_text("Remove it to send.")
    expect(page.locator("#send-btn")).to_have_attribute("aria-disabled", "true")
    screenshot(page, "attach-05-rejected")

    page.get_by_role("button", name="Remove fake.png").focus()
    page.keyboard.press("Enter")
    expect(bad).to_have_count(0)
    expect(page.locator("#composer-error")).to_be_hidden()
    before = page.locator("article.msg-user").count()
    page.press("#composer-input", "Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('article.msg-user').length > n", arg=before
    )
    sent = [
        f
        for _, f in tap.sent
        if f.get("type") == "message.send" and f.get("text") == "Read my notes."
    ]
    assert sent and sent[-1]["attachments"] == [attachment_id]
    card = page.locator("article.msg-user").last.locator("a.msg-file-doc")
    expect(card.locator(".msg-file-name")).to_have_text("notes.md")
    expect(card.locator(".msg-file-meta")).to_have_text("Text")
    expect(page.locator("#attach-tray .chip")).to_have_count(0)
    wait_for_status(page, "complete", timeout=30_000)


# The PDF's one page: a block of this colour, so a screenshot tells a rendered
# page from a blank or blocked tab.
PDF_BLUE = (30, 90, 200)
SHOTS = ROOT.parent / "notes" / "shots"


def pdf_with_a_blue_block() -> bytes:
    """A one-page letter PDF whose top third is a blue block with a title."""
    from PIL import Image, ImageDraw, ImageFont

    page = Image.new("RGB", (612, 792), "white")
    draw = ImageDraw.Draw(page)
    draw.rectangle([40, 40, 572, 300], fill=PDF_BLUE)
    draw.text((70, 140), "Q3 report", fill="white", font=ImageFont.load_default(size=56))
    out = io.BytesIO()
    page.save(out, "PDF", resolution=72)
    return out.getvalue()


def share_of_colour(png: bytes, colour: tuple[int, int, int], tolerance: int = 16) -> float:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        pixels = list(image.convert("RGB").get_flattened_data())
    near = sum(
        1 for pixel in pixels if all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))
    )
    return near / len(pixels)


def test_clicking_a_pdf_card_opens_the_pdf_in_the_browser_s_viewer(site, worker, new_page):
    """A PDF sent in a message opens in a new tab from its card, and Chromium's PDF
    viewer draws its page there, although the file is served as an inert,
    sandboxed document (`Content-Security-Policy: sandbox`, nosniff): the tab is
    neither blank nor a download."""
    page = new_page(viewport={"width": 1100, "height": 800})
    sign_in(page, "alice", site.password)
    start_chat(page, "[[fake tokens=5 tps=0]] Hello.")
    wait_for_status(page, "complete")
    page.set_input_files(
        "#attach-input",
        files=[
            {"name": "q3-report.pdf", "mimeType": "application/pdf",
             "buffer": pdf_with_a_blue_block()}
        ],
    )
    chip = page.locator("#attach-tray .chip").filter(has_text="q3-report.pdf")
    expect(chip).to_have_attribute("data-status", "ready", timeout=30_000)
    expect(chip.locator(".chip-meta")).to_have_text("1 page")
    page.fill("#composer-input", "[[fake tokens=5 tps=0]] What does it say?")
    page.press("#composer-input", "Enter")
    card = page.locator("article.msg-user").last.locator("a.msg-file-doc")
    expect(card.locator(".msg-file-name")).to_have_text("q3-report.pdf")
    wait_for_status(page, "complete", timeout=30_000)

    served = page.request.get(card.get_attribute("href"))
    assert served.status == 200
    assert served.headers["content-type"] == "application/pdf"
    assert served.headers["content-security-policy"] == "sandbox"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"].startswith("inline")

    downloads: list[str] = []
    page.context.on("download", lambda download: downloads.append(download.suggested_filename))
    with page.context.expect_page() as opened:
        card.click()
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url.endswith("/file")
    # Chromium shows a PDF through its viewer (an extension page in the tab).
    deadline = time.monotonic() + 15
    while not any(f.url.startswith("chrome-extension://") for f in tab.frames):
        assert time.monotonic() < deadline, [f.url for f in tab.frames]
        tab.wait_for_timeout(100)
    viewer = next(f for f in tab.frames if f.url.startswith("chrome-extension://"))
    expect(viewer.locator("pdf-viewer")).to_be_attached()
    expect(viewer.get_by_text("q3-report.pdf").first).to_be_visible()
    # The page itself is drawn: the viewer's canvas shows the PDF's blue block.
    deadline = time.monotonic() + 15
    while (share := share_of_colour(tab.screenshot(), PDF_BLUE)) < 0.05:
        assert time.monotonic() < deadline, f"the page is not drawn ({share:.1%} blue)"
        tab.wait_for_timeout(200)
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / "pdf-open.png"))
    screenshot(tab, "attach-06-pdf-open")
    assert downloads == []
    tab.close()
