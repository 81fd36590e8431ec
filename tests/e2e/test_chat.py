"""What a person sees in the browser: a chat that streams, stops, survives a reload,
stays private, and an admin who can see what it cost.

Each test drives headless Chromium against the real site (daphne + the standalone
fake Claude, see conftest.py), reads the DOM the way a person reads the page
(`article.msg-assistant[data-status]`, its `.prose` text), and saves a
screenshot of each step under `build/e2e/`. No page may log a console error
(CSP violations included) or throw.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.e2e

LAST_REPLY = "article.msg-assistant:last-of-type"
CONVERSATION_URL = re.compile(r"/c/[0-9a-f-]{36}/$")


def sign_in(page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def start_chat(page, first_message: str) -> str:
    """Type a first message on the empty state; return the new conversation's URL."""
    page.goto("/")
    page.fill("#first-message", first_message)
    page.press("#first-message", "Enter")
    page.wait_for_url(CONVERSATION_URL)
    wait_for_reply_or_refusal(page)
    return page.url


def wait_for_reply_or_refusal(page) -> None:
    """The reply appears, or the composer says why the send was refused (a budget,
    the rate limit): then the test fails with that message, not a bare timeout."""
    page.wait_for_selector(f"{LAST_REPLY}, #composer-error:not([hidden])")
    refusal = page.locator("#composer-error:not([hidden])")
    if refusal.count() and not page.locator(LAST_REPLY).count():
        raise AssertionError(f"The send was refused: {refusal.inner_text()!r}")


def send(page, text: str) -> None:
    """Send a message from the composer and wait for its reply to appear."""
    before = page.locator("article.msg-assistant").count()
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('article.msg-assistant').length > n", arg=before
    )


def reply_text(page) -> str:
    return page.locator(LAST_REPLY).locator(".prose").inner_text().strip()


def reply_status(page) -> str:
    return page.locator(LAST_REPLY).get_attribute("data-status") or ""


def wait_for_status(page, *statuses: str, timeout: float = 20_000) -> None:
    page.wait_for_function(
        "([sel, wanted]) => wanted.includes(document.querySelector(sel)?.dataset.status)",
        arg=[LAST_REPLY, list(statuses)],
        timeout=timeout,
    )


def wait_for_text_length(page, at_least: int, timeout: float = 10_000) -> None:
    page.wait_for_function(
        "([sel, n]) => (document.querySelector(sel)?.querySelector('.prose')"
        "?.innerText.trim().length ?? 0) >= n",
        arg=[LAST_REPLY, at_least],
        timeout=timeout,
    )


def stored_reply_text(page, url: str) -> str:
    """What the server stored: the page rendered afresh from the database."""
    fresh = page.context.new_page()
    try:
        fresh.goto(url)
        fresh.wait_for_selector(LAST_REPLY)
        return fresh.locator(LAST_REPLY).locator(".prose").inner_text().strip()
    finally:
        fresh.close()


def echo_words(count: int, tag: str) -> str:
    """Distinct short words: each is one token of the fake, so the echo's text is known."""
    return " ".join(f"{tag}{i:03d}" for i in range(count))


def test_answer_streams_in_then_completes(site, new_page):
    """Alice starts a chat; the answer grows on screen over time, then completes."""
    page = new_page()
    sign_in(page, "alice", site.password)
    screenshot(page, "01-alice-signed-in")
    start_chat(page, "[[fake tokens=160 tps=40]] Explain CRDTs in two paragraphs.")

    samples: list[int] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = reply_status(page)
        if status not in {"pending", "streaming"}:
            break
        length = len(reply_text(page))
        if length and (not samples or length != samples[-1]):
            samples.append(length)
        if len(samples) == 3:
            screenshot(page, "02-answer-streaming")
        page.wait_for_timeout(250)
    assert len(samples) >= 3, f"the answer did not visibly grow while streaming: {samples}"
    assert samples == sorted(samples), f"the streamed text shrank: {samples}"

    wait_for_status(page, "complete")
    final = reply_text(page)
    assert len(final) > samples[-1]
    assert page.locator(LAST_REPLY).locator(".live-cursor").count() == 0
    screenshot(page, "03-answer-complete")
    assert stored_reply_text(page, page.url) == final


def test_stop_keeps_the_partial_answer(site, new_page):
    """Pressing Stop mid-answer ends it as stopped; the text written so far stays."""
    page = new_page()
    sign_in(page, "alice", site.password)
    url = start_chat(page, "[[fake tokens=10 tps=0]] Warm up.")
    wait_for_status(page, "complete")
    send(page, "[[fake tokens=400 tps=40]] Write a long essay about distributed systems.")
    wait_for_text_length(page, 40)
    shown_at_stop = reply_text(page)
    screenshot(page, "04-before-stop")
    page.click("#send-btn.is-stop")

    wait_for_status(page, "stopped")
    stopped = reply_text(page)
    assert stopped.startswith(shown_at_stop[:-8])  # the last word may still be rendering
    assert len(stopped) >= len(shown_at_stop)
    assert page.locator(LAST_REPLY).locator(".stopped-marker").is_visible()
    page.wait_for_timeout(1000)
    assert reply_text(page) == stopped, "text kept arriving after the stop"
    assert reply_status(page) == "stopped"
    screenshot(page, "05-stopped")
    assert stored_reply_text(page, url) == stopped
    # The stopped reply can be retried: the button is offered on the last reply.
    assert "can-retry" in (page.locator(LAST_REPLY).get_attribute("class") or "")


def test_reload_mid_stream_continues_without_loss_or_duplicates(site, new_page):
    """Reloading mid-answer shows at least what was there, then the rest streams in:
    the final text is exactly the answer, and what the server stored."""
    page = new_page()
    sign_in(page, "alice", site.password)
    expected = echo_words(160, "w")  # 160 tokens at 40/s: four seconds
    url = start_chat(page, f"[[fake echo=1 tps=40]] {expected}")
    wait_for_text_length(page, 150)
    before = reply_text(page)
    assert reply_status(page) == "streaming"
    assert expected.startswith(before)
    screenshot(page, "06-before-reload")

    page.reload()
    wait_for_text_length(page, len(before), timeout=5_000)
    after = reply_text(page)
    assert after.startswith(before), "the reloaded page lost text it had shown"
    screenshot(page, "07-after-reload")

    seen: list[str] = []
    while reply_status(page) in {"pending", "streaming"}:
        seen.append(reply_text(page))
        page.wait_for_timeout(150)
    for text in seen:
        assert expected.startswith(text), f"a streamed chunk was duplicated or garbled: {text!r}"
    wait_for_status(page, "complete")
    assert reply_text(page) == expected
    screenshot(page, "08-complete-after-reload")
    assert stored_reply_text(page, url) == expected


def test_another_member_gets_404_on_alices_conversation(site, new_page):
    """Bob, in alice's team, cannot open her conversation: a 404, none of her words."""
    alice = new_page()
    sign_in(alice, "alice", site.password)
    secret = "[[fake tokens=5 tps=0]] the launch date is the 14th"
    url = start_chat(alice, secret)
    wait_for_status(alice, "complete")

    bob = new_page()
    sign_in(bob, "bob", site.password)
    response = bob.goto(url)
    assert response is not None and response.status == 404
    assert "launch date" not in bob.content()
    screenshot(bob, "09-bob-404")
    # The browser logs the 404 of the document itself; nothing else is allowed.
    new_page.problems.allow(lambda item: "status of 404" in item)


def test_admin_opens_the_usage_page(site, new_page):
    """The admin signs in to /admin/, follows "Usage & costs" from the index, and sees
    who spent what: alice's chat of a moment ago is on the report."""
    alice = new_page()
    sign_in(alice, "alice", site.password)
    start_chat(alice, "[[fake tokens=5 tps=0]] Something to bill.")
    wait_for_status(alice, "complete")

    page = new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", site.password)
    page.click('input[type="submit"]')
    page.wait_for_url(lambda url: url.rstrip("/").endswith("/admin"))
    screenshot(page, "10-admin-index")
    page.get_by_role("link", name=re.compile(r"Usage\s*&\s*costs", re.I)).first.click()
    page.wait_for_load_state()
    assert page.url.startswith(site.url + "/admin/")
    assert "Usage & costs" in page.locator(".breadcrumbs").inner_text()
    assert page.locator("table.usage-report").count() >= 1
    report = page.locator("#content-main").inner_text()
    # "$0.0012 over 3 calls", or "< $0.0001 over 1 call" when this test runs alone.
    assert re.search(r"\$[0-9.,]+ over [0-9,]+ calls?\b", report), report[:500]
    assert "alice" in report
    screenshot(page, "11-admin-usage")
