"""Search and the details around the chat, in the browser: the palette (Ctrl+K)
finds one's own words and opens the message, never anyone else's; Esc stops an
answer; Ctrl+Shift+O starts a chat; each sidebar entry's menu renames, pins and
deletes; the theme switch and the folding sidebar; thinking streams into its
preview; maths and task lists render. Screenshots of the palette and the
sidebar at 1280 and 390 px, light and dark, go to build/e2e/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_chat import (
    CONVERSATION_URL,
    LAST_REPLY,
    send,
    sign_in,
    start_chat,
    wait_for_status,
    wait_for_text_length,
)

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}


def open_palette(page) -> None:
    page.keyboard.press("Control+k")
    expect(page.locator("#search-palette")).to_be_visible()
    expect(page.locator("#search-input")).to_be_focused()


def test_the_palette_finds_my_words_and_opens_the_message(site, new_page):
    page = new_page()
    sign_in(page, "alice", site.password)
    url = start_chat(page, "[[fake echo=1 tps=0]] Where do quokkas live, and what do they eat?")
    wait_for_status(page, "complete")
    start_chat(page, "[[fake echo=1 tps=0]] Plans for the **garden** this spring")
    wait_for_status(page, "complete")
    # The title has no Markdown marks.
    expect(page.locator("#chat-title")).to_have_text("Plans for the garden this spring")

    open_palette(page)
    page.fill("#search-input", "quok")
    results = page.locator("#search-results .search-result")
    expect(results).to_have_count(1)
    expect(results.first.locator(".search-snippet mark").first).to_have_text(re.compile("quokkas", re.I))
    expect(results.first.locator(".search-title mark")).to_have_text(re.compile("quok", re.I))
    expect(results.first).to_have_attribute("aria-selected", "true")
    screenshot(page, "search-01-palette-1280-light")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(url) + r"#message-[0-9a-f-]{36}$"))
    found = page.locator(".msg.is-found")
    expect(found).to_have_count(1)
    assert "quokkas" in found.inner_text()

    # Nothing found says so; Esc closes and gives the focus back.
    page.click('[data-action="search-open"]')
    page.fill("#search-input", "zzzznothing")
    expect(page.locator("#search-status")).to_have_text("Nothing found in your chats.")
    page.keyboard.press("Escape")
    expect(page.locator("#search-palette")).to_be_hidden()

    # The same search as a page.
    page.goto("/search/?q=garden")
    expect(page.locator(".search-results-page .search-result")).to_have_count(1)
    expect(page.locator(".search-results-page mark").first).to_have_text(re.compile("garden", re.I))


def test_bob_never_finds_alices_words_in_the_palette(site, new_page):
    alice = new_page()
    sign_in(alice, "alice", site.password)
    start_chat(alice, "[[fake echo=1 tps=0]] The xylophone budget is secret.")
    wait_for_status(alice, "complete")
    bob = new_page()
    sign_in(bob, "bob", site.password)
    bob.goto("/")
    open_palette(bob)
    bob.fill("#search-input", "xylophone")
    expect(bob.locator("#search-status")).to_have_text("Nothing found in your chats.")
    expect(bob.locator("#search-results .search-result")).to_have_count(0)


@pytest.mark.parametrize(
    ("width", "scheme"),
    [("1280", "light"), ("1280", "dark"), ("390", "light"), ("390", "dark")],
)
def test_screenshots_of_the_palette_and_the_sidebar(site, new_page, width, scheme):
    viewport = PHONE if width == "390" else {"width": 1280, "height": 800}
    # No touch: on a touch screen Enter breaks the line, and start_chat presses Enter.
    page = new_page(viewport=viewport, color_scheme=scheme)
    sign_in(page, "alice", site.password)
    start_chat(page, "[[fake echo=1 tps=0]] Search me: a **penguin** colony report")
    wait_for_status(page, "complete")
    if width == "390":
        page.click('[data-action="sidebar-open"]')
        expect(page.locator("#sidebar")).to_be_in_viewport()
        page.wait_for_timeout(300)  # the drawer's slide
    screenshot(page, f"search-10-sidebar-{width}-{scheme}")
    page.locator(".conv-item").first.hover()
    page.locator(".conv-item .conv-more").first.click()
    expect(page.locator("#conv-menu")).to_be_visible()
    screenshot(page, f"search-11-entry-menu-{width}-{scheme}")
    page.keyboard.press("Escape")
    expect(page.locator("#conv-menu")).to_be_hidden()
    page.click('[data-action="search-open"]')
    page.fill("#search-input", "penguin")
    expect(page.locator("#search-results .search-result").first).to_be_visible()
    screenshot(page, f"search-12-palette-{width}-{scheme}")


def test_esc_stops_the_answer_and_ctrl_shift_o_starts_a_chat(site, new_page):
    page = new_page()
    sign_in(page, "alice", site.password)
    start_chat(page, "[[fake tokens=5 tps=0]] Warm up.")
    wait_for_status(page, "complete")
    send(page, "[[fake tokens=400 tps=30]] A long essay, please.")
    wait_for_text_length(page, 30)
    page.keyboard.press("Escape")
    wait_for_status(page, "stopped")
    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(site.url + "/")
    expect(page.locator("#first-message")).to_be_visible()


def test_up_in_an_empty_composer_edits_the_last_message(site, new_page):
    """↑ in an empty composer opens the last message's own editor (its Edit
    control, from message branching), holding its text; the event for pages
    without one (`chat:edit-last`) is not sent then."""
    page = new_page()
    sign_in(page, "alice", site.password)
    start_chat(page, "[[fake tokens=3 tps=0]] Edit me later.")
    wait_for_status(page, "complete")
    page.evaluate(
        "() => document.addEventListener('chat:edit-last', (e) => {"
        " window.__edit = e.detail; e.preventDefault(); })"
    )
    page.focus("#composer-input")
    page.keyboard.press("ArrowUp")
    last = page.locator("article.msg-user").last
    expect(last).to_have_class(re.compile(r"\bis-editing\b"))
    expect(last.locator(".edit-form textarea")).to_have_value(
        "[[fake tokens=3 tps=0]] Edit me later."
    )
    assert page.evaluate("() => window.__edit") is None


def test_the_entry_menu_renames_pins_and_deletes(site, new_page):
    page = new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, "alice", site.password)
    first = start_chat(page, "[[fake tokens=3 tps=0]] First chat")
    wait_for_status(page, "complete")
    second = start_chat(page, "[[fake tokens=3 tps=0]] Second chat")
    wait_for_status(page, "complete")
    first_id = first.rstrip("/").rsplit("/", 1)[-1]
    second_id = second.rstrip("/").rsplit("/", 1)[-1]
    entry = page.locator(f'.conv-item[data-conversation-id="{first_id}"]')

    entry.hover()
    entry.locator(".conv-more").click()
    page.click('#conv-menu [data-menu="rename"]')
    page.fill(
        f'.conv-item[data-conversation-id="{first_id}"] .title-input', "Renamed from the menu"
    )
    page.keyboard.press("Enter")
    expect(entry.locator(".conv-title")).to_have_text("Renamed from the menu")

    entry.hover()
    entry.locator(".conv-more").click()
    page.click('#conv-menu [data-menu="pin"]')
    page.wait_for_load_state()
    expect(page.locator(".conv-group-pinned")).to_have_text("Pinned")
    expect(page.locator(".conv-item").first).to_have_attribute("data-conversation-id", first_id)
    page.reload()
    expect(page.locator(".conv-item").first).to_have_attribute("data-pinned", "true")

    other = page.locator(f'.conv-item[data-conversation-id="{first_id}"]')
    other.hover()
    other.locator(".conv-more").click()
    page.click('#conv-menu [data-menu="delete"]')
    # The page showed the deleted conversation (the second is open): it leaves the list.
    expect(page.locator(f'.conv-item[data-conversation-id="{first_id}"]')).to_have_count(0)
    assert CONVERSATION_URL.search(page.url) and second_id in page.url


def test_theme_switch_and_folding_sidebar_are_remembered(site, new_page):
    page = new_page(color_scheme="light")
    sign_in(page, "alice", site.password)
    page.goto("/")
    page.click(".user-menu summary")
    page.click('[data-theme-choice="dark"]')
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    page.reload()
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == background
    assert background != "rgb(250, 249, 245)"  # not the light page
    page.click(".user-menu summary")
    page.click('[data-theme-choice="system"]')
    assert page.evaluate("() => document.documentElement.dataset.theme") is None

    page.click('[data-action="sidebar-collapse"]')
    expect(page.locator("#sidebar")).to_be_hidden()
    page.reload()
    expect(page.locator("#sidebar")).to_be_hidden()
    page.click('[data-action="sidebar-open"]')
    expect(page.locator("#sidebar")).to_be_visible()


def test_thinking_streams_into_a_collapsed_preview(site, new_page):
    page = new_page()
    sign_in(page, "alice", site.password)
    page.goto("/")
    page.select_option('select[name="thinking_effort"]', "low")
    page.fill("#first-message", "[[fake thinking_tokens=300 tokens=20 tps=40]] Think first.")
    page.press("#first-message", "Enter")
    page.wait_for_url(CONVERSATION_URL)
    preview = page.locator(f"{LAST_REPLY} .thinking-preview")
    expect(preview).to_be_visible()
    expect(preview).not_to_have_text("")
    assert page.locator(f"{LAST_REPLY} details.thinking").get_attribute("open") is None
    screenshot(page, "search-20-thinking-preview")
    wait_for_status(page, "complete", timeout=40_000)
    expect(preview).to_be_hidden()


def test_maths_and_task_lists_render_live_and_stored(site, new_page):
    page = new_page()
    sign_in(page, "alice", site.password)
    start_chat(
        page,
        "[[fake echo=1 tps=0]] Euler: $e^{i\\pi} + 1 = 0$\n\n$$\n\\int_0^1 x\\,dx\n$$\n\n- [ ] to do\n- [x] done",
    )
    wait_for_status(page, "complete")
    reply = page.locator(LAST_REPLY)
    for shown in (reply, None):
        if shown is None:
            page.reload()
            shown = page.locator(LAST_REPLY)
        expect(shown.locator("span.math.inline .katex")).to_have_count(1)
        expect(shown.locator("div.math.block .katex-display")).to_have_count(1)
        boxes = shown.locator("input.task-list-item-checkbox")
        expect(boxes).to_have_count(2)
        assert boxes.nth(1).is_checked() and boxes.nth(0).is_disabled()
    screenshot(page, "search-30-maths-and-tasks")
