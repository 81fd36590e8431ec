"""Branches in the browser: edit a sent message, then switch between the two
versions with the arrows; the answers below follow the version on show, live
and after a reload; then search finds the edited words.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_chat import sign_in, start_chat, wait_for_status

pytestmark = pytest.mark.e2e

USER_MESSAGES = "article.msg-user .bubble"


def thread_texts(page) -> list[str]:
    return [text.strip() for text in page.locator(USER_MESSAGES).all_inner_texts()]


def versions_label(page, index: int) -> str:
    return page.locator("article.msg-user").nth(index).locator(".versions-label").inner_text()


def test_edit_a_message_and_switch_between_its_two_versions(new_page, site):
    page = new_page()
    sign_in(page, "alice", site.password)
    start_chat(page, "Plan a trip to Lisbon [[fake tokens=12]]")
    wait_for_status(page, "complete")
    page.fill("#composer-input", "What should I pack? [[fake tokens=12]]")
    page.press("#composer-input", "Enter")
    page.wait_for_function("() => document.querySelectorAll('article.msg-assistant').length === 2")
    wait_for_status(page, "complete")
    first_answer = page.locator("article.msg-assistant").nth(1).locator(".prose").inner_text()

    # Edit the second question: its editor replaces the bubble, Enter sends it.
    second = page.locator("article.msg-user").nth(1)
    second.hover()
    second.locator('[data-action="edit"]').click()
    editor = second.locator(".edit-form textarea")
    editor.fill("What should I pack for rain? [[fake tokens=12]]")
    screenshot(page, "branches-1-editing")
    editor.press("Enter")
    # The new branch is on show once `branch.switched` has replaced the old one.
    page.wait_for_function(
        "() => { const users = document.querySelectorAll('article.msg-user');"
        " return users.length === 2 && users[1].textContent.includes('for rain')"
        " && users[1].querySelector('.versions-label').textContent.trim() === '2/2'; }"
    )
    wait_for_status(page, "complete")
    assert thread_texts(page) == [
        "Plan a trip to Lisbon [[fake tokens=12]]",
        "What should I pack for rain? [[fake tokens=12]]",
    ]
    assert versions_label(page, 1) == "2/2"
    edited_answer = page.locator("article.msg-assistant").nth(1).locator(".prose").inner_text()
    assert edited_answer != first_answer
    screenshot(page, "branches-2-edited")

    # Back to version 1: the old question and its own answer.
    page.locator("article.msg-user").nth(1).hover()
    page.locator("article.msg-user").nth(1).locator('[data-action="version-prev"]').click()
    page.wait_for_function(
        "() => document.querySelectorAll('article.msg-user .versions-label')[1]"
        "?.textContent.trim() === '1/2'"
    )
    assert thread_texts(page)[1] == "What should I pack? [[fake tokens=12]]"
    assert page.locator("article.msg-assistant").count() == 2
    assert page.locator("article.msg-assistant").nth(1).locator(".prose").inner_text() == (
        first_answer
    )
    screenshot(page, "branches-3-version-1")

    # The server remembers: a reload shows version 1; forward again to version 2.
    page.reload()
    assert versions_label(page, 1) == "1/2"
    assert thread_texts(page)[1] == "What should I pack? [[fake tokens=12]]"
    page.locator("article.msg-user").nth(1).hover()
    page.locator("article.msg-user").nth(1).locator('[data-action="version-next"]').click()
    page.wait_for_function(
        "() => document.querySelectorAll('article.msg-user .versions-label')[1]"
        "?.textContent.trim() === '2/2'"
    )
    assert thread_texts(page)[1] == "What should I pack for rain? [[fake tokens=12]]"
    assert page.locator("article.msg-assistant").nth(1).locator(".prose").inner_text() == (
        edited_answer
    )
    screenshot(page, "branches-4-version-2")

    # And the edited words are found with Ctrl+K, as the person typed them.
    page.keyboard.press("Control+k")
    expect(page.locator("#search-palette")).to_be_visible()
    page.fill("#search-input", "rain")
    results = page.locator("#search-results .search-result")
    expect(results).to_have_count(1)
    expect(results.first.locator(".search-snippet mark").first).to_have_text("rain")
    screenshot(page, "branches-5-search")


def test_a_model_picked_in_one_tab_shows_in_the_other(site, new_page):
    """The other tab's badge and dialog follow, so its next save keeps the new model."""
    page = new_page()
    sign_in(page, "alice", site.password)
    url = start_chat(page, "[[fake tokens=3 tps=0]] Which model answers next?")
    wait_for_status(page, "complete")
    other = page.context.new_page()
    other.goto(url)
    expect(other.locator('#conn-status[data-state="open"]')).to_have_count(1)
    expect(other.locator("#model-badge")).not_to_have_text("Claude Haiku 5.5")
    page.click("#settings-btn")
    page.select_option('#conv-settings select[name="model"]', "claude-haiku-5-5")
    page.click('#conv-settings button[type="submit"]')
    expect(page.locator("#model-badge")).to_have_text("Claude Haiku 5.5")
    expect(other.locator("#model-badge")).to_have_text("Claude Haiku 5.5")
    assert other.eval_on_selector('#conv-settings select[name="model"]', "el => el.value") == (
        "claude-haiku-5-5"
    )
