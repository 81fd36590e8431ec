"""When the chat cannot go on, the page says so and pretends nothing: a rename or
delete that found the session gone is undone and named as such, and after a close
with 4403 rename, delete and Retry are off. On a phone (a coarse pointer): no hint
that Enter sends, and the end of the thread, a reply's action row included, stays
above the composer when a reply fails live or an error appears under it.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_chat import (
    CONVERSATION_URL,
    LAST_REPLY,
    sign_in,
    start_chat,
    wait_for_status,
)
from tests.e2e.test_chat_socket import SocketTap, conversation_id

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
# An answer that streams a while, then fails (the fake's `event: error` mid-stream).
FAILING_ANSWER = "[[fake tokens=120 tps=60 error=overloaded_error error_at=90]]"
CONTROLS = ("#chat-title", '#chat-header [data-action="delete"]')


def sign_in_again(page, site, path: str) -> None:
    page.locator("#notice-signed-out").get_by_role("link", name="Sign in again").click()
    page.wait_for_url(re.compile(r"/accounts/login/\?next="))
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', site.password)
    page.click('button[type="submit"]')
    page.wait_for_url(site.url + path)


def expect_signed_out(page) -> None:
    expect(page.locator("#notice-signed-out")).to_be_visible()
    expect(page.locator("#composer-input")).to_be_disabled()
    for selector in CONTROLS:
        expect(page.locator(selector)).to_be_disabled()


def test_rename_and_delete_with_the_session_gone_are_undone_and_say_so(site, new_page):
    """The session cookie is gone but the socket still stands (a session that expired):
    the server answers rename and delete with a redirect to the sign-in page. The page
    keeps the old title, stays on the conversation, says the person is signed out and
    ends the chat; signed in again, nothing was renamed or deleted."""
    page = new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, "alice", site.password)
    url = start_chat(page, "[[fake tokens=5 tps=0]] Keep my title.")
    wait_for_status(page, "complete")
    path = "/c/" + conversation_id(url) + "/"
    link = page.locator(f'.conv-link[data-conversation-id="{conversation_id(url)}"]')
    title = page.locator("#chat-title").inner_text().strip()

    page.context.clear_cookies(name="sessionid")
    page.click('#chat-header [data-action="delete"]')
    expect(page.locator(".toast")).to_have_text("You are signed out: sign in again to delete.")
    assert page.url == url
    expect_signed_out(page)
    screenshot(page, "30-delete-signed-out")

    sign_in_again(page, site, path)
    expect(page.locator("#chat-title")).to_have_text(title)  # not deleted

    page.context.clear_cookies(name="sessionid")
    page.click("#chat-title")
    page.fill(".title-input", "Never saved")
    page.press(".title-input", "Enter")
    expect(page.locator(".toast")).to_have_text("You are signed out: sign in again to rename.")
    expect(page.locator("#chat-title")).to_have_text(title)
    expect(link).to_have_text(title)
    expect(page).not_to_have_title(re.compile("Never saved"))
    expect_signed_out(page)
    # The toast covers neither the notice nor the composer.
    notice_top = page.evaluate(
        "() => document.getElementById('notice-signed-out').getBoundingClientRect().top"
    )
    assert bottom_of(page, ".toast") <= notice_top
    screenshot(page, "31-rename-signed-out")

    sign_in_again(page, site, path)
    expect(page.locator("#chat-title")).to_have_text(title)
    expect(link).to_have_text(title)


def test_a_rename_the_server_refuses_keeps_the_old_title(site, new_page):
    """A non-OK answer (here the server's 400 for a title of spaces, sent past the
    page's own check) is a failure: the old title comes back with the server's reason."""
    page = new_page()
    sign_in(page, "alice", site.password)
    start_chat(page, "[[fake tokens=5 tps=0]] Refuse my title.")
    wait_for_status(page, "complete")
    title = page.locator("#chat-title").inner_text().strip()
    page.route(
        re.compile(r"/rename/$"),
        lambda route: route.continue_(post_data="title=+++"),
    )
    page.click("#chat-title")
    page.fill(".title-input", "Spaces on the wire")
    page.press(".title-input", "Enter")
    expect(page.locator(".toast")).to_contain_text("The title could not be saved.")
    expect(page.locator("#chat-title")).to_have_text(title)
    expect(page.locator("#composer-input")).to_be_enabled()  # still signed in
    new_page.problems.allow(lambda item: "status of 400" in item)


def test_after_a_4403_rename_delete_and_retry_are_off(site, new_page):
    """Signed out in another tab: this tab's failed reply keeps its text but its Retry
    buttons, the title and delete are disabled, so nothing can pretend to work; the tab
    that signed out says so on the sign-in page."""
    page = new_page()
    tap = SocketTap(page)
    sign_in(page, "alice", site.password)
    start_chat(page, FAILING_ANSWER)
    wait_for_status(page, "error", "interrupted")
    retry = page.locator(f"{LAST_REPLY} .error-card [data-action=retry]")
    expect(retry).to_be_enabled()
    tap.wait_for_sockets(1)

    other = page.context.new_page()
    other.goto("/")
    other.click(".user-menu summary")
    other.get_by_role("menuitem", name="Sign out").click()
    other.wait_for_url(re.compile(r"/accounts/login/"))
    expect(other.get_by_role("status")).to_have_text("You have been signed out.")
    screenshot(other, "32-login-after-sign-out")

    expect_signed_out(page)
    expect(retry).to_be_disabled()
    expect(page.locator(f"{LAST_REPLY} .act-retry")).to_be_disabled()
    # Clicked anyway (a script, a stale focus): it says why, never "not connected".
    page.evaluate(
        "sel => document.querySelector(sel).removeAttribute('disabled')",
        f"{LAST_REPLY} .error-card [data-action=retry]",
    )
    retry.click()
    expect(page.locator("#composer-error")).to_have_text(
        "You are signed out: sign in again to retry."
    )
    assert not tap.sent_on(0, "message.retry")
    screenshot(page, "33-signed-out-controls")


def test_the_placeholder_says_what_enter_does_on_a_desktop_and_on_a_phone(site, new_page):
    desk = new_page()
    sign_in(desk, "alice", site.password)
    desk.goto("/")
    assert desk.get_attribute("#first-message", "placeholder") == (
        "Ask anything… (Enter to send, Shift+Enter for a new line)"
    )

    phone = new_page(PHONE, has_touch=True)
    sign_in(phone, "alice", site.password)
    phone.goto("/")
    assert phone.get_attribute("#first-message", "placeholder") == (
        "Ask anything… (Enter adds a line, tap ↑ to send)"
    )
    screenshot(phone, "34-phone-home")
    # On a touch screen Enter breaks the line, as the placeholder says.
    phone.fill("#first-message", "one")
    phone.press("#first-message", "Enter")
    assert phone.url == site.url + "/"
    assert phone.input_value("#first-message") == "one\n"


def bottom_of(page, selector: str) -> float:
    return page.evaluate(
        "sel => document.querySelector(sel).getBoundingClientRect().bottom", selector
    )


def composer_top(page) -> float:
    return page.evaluate(
        "() => document.querySelector('.composer-dock').getBoundingClientRect().top"
    )


def test_on_a_phone_a_reply_that_fails_live_shows_its_actions_above_the_composer(site, new_page):
    """The reply fails while the person is at the bottom: the error card, its Retry
    and the action row under it end up above the composer, as after a reload; an
    error shown in the composer afterwards does not cover them either."""
    page = new_page(PHONE, has_touch=True)
    tap = SocketTap(page)
    sign_in(page, "alice", site.password)
    page.goto("/")
    lines = "\n".join(f"Line {i} of a long question." for i in range(30))
    page.fill("#first-message", f"{FAILING_ANSWER} {lines}")
    page.click('#new-chat-form button[type="submit"]')
    page.wait_for_url(CONVERSATION_URL)
    wait_for_status(page, "error", "interrupted")
    page.wait_for_timeout(300)  # let any late layout land

    actions = f"{LAST_REPLY} .msg-actions"
    retry = f"{LAST_REPLY} .error-card [data-action=retry]"
    expect(page.locator(f"{LAST_REPLY} .act-retry")).to_be_visible()
    assert bottom_of(page, actions) <= composer_top(page), "the action row is behind the composer"
    screenshot(page, "35-phone-error-live")

    tap.inject({"type": "error", "code": "internal", "message": "Something went wrong."})
    expect(page.locator("#composer-error")).to_be_visible()
    page.wait_for_timeout(100)
    assert bottom_of(page, retry) <= composer_top(page), "the composer's error covers Retry"
    assert bottom_of(page, actions) <= composer_top(page)
    screenshot(page, "36-phone-error-and-message")
