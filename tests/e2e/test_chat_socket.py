"""The chat page's side of the socket protocol, driven in Chromium: one markup for a
message whether the server or the browser made it, sends resent until both their
messages are seen, frames applied by seq, and the close codes after which the page
must not reconnect.

`SocketTap` sits between the page and the real server's websocket (Playwright's
`route_web_socket`): it records the frames both ways, can lose the server's frames
like a bad network, inject frames, and close the page's side with any code. The last
tests drive the real server flow end to end: signing out in another tab (close
4403), deleting and renaming over HTTP in another tab (`conversation.deleted`
and close 4404, `conversation.updated`).
"""

from __future__ import annotations

import json
import re
import threading

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_chat import (
    LAST_REPLY,
    echo_words,
    reply_text,
    sign_in,
    start_chat,
    stored_reply_text,
    wait_for_status,
    wait_for_text_length,
)

pytestmark = pytest.mark.e2e

REPLY_FRAMES = {"message.delta", "message.snapshot", "message.completed"}


class SocketTap:
    """Every chat socket of a page, through a relay that records, drops and injects."""

    def __init__(self, page) -> None:
        self.page = page
        self.routes: list = []  # (page side, server side), one per socket the page opened
        self.sent: list[tuple[int, dict]] = []  # (socket index, frame) page -> server
        self.received: list[tuple[int, dict]] = []  # server -> page, as delivered
        self.drop = lambda frame: False  # server -> page frames to lose
        self._lock = threading.Lock()
        page.route_web_socket(re.compile(r"/ws/c/"), self._route)

    def _route(self, ws) -> None:
        server = ws.connect_to_server()
        with self._lock:
            index = len(self.routes)
            self.routes.append((ws, server))

        def up(message) -> None:
            self.sent.append((index, json.loads(message)))
            server.send(message)

        def down(message) -> None:
            frame = json.loads(message)
            if self.drop(frame):
                return
            self.received.append((index, frame))
            ws.send(message)

        ws.on_message(up)
        server.on_message(down)

    @property
    def count(self) -> int:
        return len(self.routes)

    def wait_for_sockets(self, n: int, timeout_ms: int = 10_000) -> None:
        waited = 0
        while self.count < n and waited < timeout_ms:
            self.page.wait_for_timeout(100)
            waited += 100
        assert self.count >= n, f"the page opened {self.count} sockets, expected {n}"

    def close(self, code: int) -> None:
        """The server side of the last socket closes with `code`, as the page sees it."""
        ws, server = self.routes[-1]
        ws.close(code=code, reason="closed by the test")
        server.close()

    def inject(self, frame: dict) -> None:
        self.routes[-1][0].send(json.dumps(frame))

    def sent_on(self, index: int, kind: str) -> list[dict]:
        return [f for i, f in self.sent if i == index and f.get("type") == kind]


def conversation_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


# Each message element as a tree of (tag, attributes, text), whitespace-only text left
# out: what a person could tell apart, and what styles and scripts select on.
MESSAGE_SHAPES = """() => {
  const shape = (node) => {
    if (node.nodeType === Node.TEXT_NODE) return node.textContent.trim() || null;
    if (node.nodeType !== Node.ELEMENT_NODE) return null;
    const attrs = {};
    for (const a of node.attributes) attrs[a.name] = a.value;
    if (attrs.class) attrs.class = attrs.class.split(/\\s+/).sort().join(" ");
    return [node.tagName.toLowerCase(), attrs, [...node.childNodes].map(shape).filter((c) => c !== null)];
  };
  return [...document.querySelectorAll("#messages > .msg")].map(shape);
}"""


def test_a_message_has_the_same_markup_live_and_from_the_server(site, new_page):
    """Messages that arrived over the socket (cloned from the <template>) and the same
    messages rendered by the server after a reload are the same DOM, attribute for
    attribute: there is one markup of a message."""
    page = new_page()
    sign_in(page, "alice", site.password)
    start_chat(page, "[[fake echo=1 tps=0]] Some **bold** words.\n\n```python\nx = 1\n```")
    wait_for_status(page, "complete")
    page.fill("#composer-input", "[[fake error=authentication_error]] This one fails.")
    page.press("#composer-input", "Enter")
    page.wait_for_function("() => document.querySelectorAll('article.msg-assistant').length === 2")
    wait_for_status(page, "error")
    live = page.evaluate(MESSAGE_SHAPES)

    page.reload()
    page.wait_for_selector(LAST_REPLY)
    stored = page.evaluate(MESSAGE_SHAPES)

    assert [m[1]["data-role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert [m[1]["data-status"] for m in stored] == ["complete", "complete", "complete", "error"]
    for made_live, from_server in zip(live, stored, strict=True):
        assert made_live == from_server
    # The page's source has no message markup of its own beyond the shared include.
    assert page.locator("template#tpl-user").count() == 1
    assert page.locator("template#tpl-assistant").count() == 1


def test_a_close_for_revoked_access_shows_sign_in_and_does_not_reconnect(site, new_page):
    """Any other close reconnects; a close with 4403 shows "You were signed out" with a
    sign-in link back to this page, disables the composer, and opens no new socket,
    not even when the tab becomes visible or the network comes back."""
    page = new_page()
    tap = SocketTap(page)
    sign_in(page, "alice", site.password)
    url = start_chat(page, "[[fake tokens=5 tps=0]] Hello.")
    wait_for_status(page, "complete")
    tap.wait_for_sockets(1)

    tap.close(4000)  # a server going away: the page comes back on its own
    tap.wait_for_sockets(2)
    expect(page.locator("#conn-status")).to_have_text("")

    tap.close(4403)
    notice = page.locator("#notice-signed-out")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("You were signed out.")
    link = notice.get_by_role("link", name="Sign in again")
    path = "/c/" + conversation_id(url) + "/"
    assert link.get_attribute("href") == f"/accounts/login/?next={path}"
    expect(page.locator("#composer-input")).to_be_disabled()
    expect(page.locator("#send-btn")).to_be_disabled()
    screenshot(page, "20-signed-out-notice")
    page.evaluate(
        "() => { document.dispatchEvent(new Event('visibilitychange'));"
        " window.dispatchEvent(new Event('online')); }"
    )
    page.wait_for_timeout(2500)  # a reconnect would have come after 0.4-0.6 s
    assert tap.count == 2, "the page reconnected after a 4403"

    link.click()
    page.wait_for_url(re.compile(r"/accounts/login/\?next="))
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', site.password)
    page.click('button[type="submit"]')
    page.wait_for_url(site.url + path)


@pytest.mark.parametrize("how", ["frame", "close"])
def test_a_deleted_conversation_leaves_the_page_and_does_not_reconnect(site, new_page, how):
    """`conversation.deleted` (or a close with 4404 alone) removes the conversation
    from the sidebar, says so, opens no new socket and goes to the home page, where
    the notice is repeated."""
    page = new_page()
    tap = SocketTap(page)
    sign_in(page, "alice", site.password)
    url = start_chat(page, "[[fake tokens=5 tps=0]] Soon gone.")
    wait_for_status(page, "complete")
    tap.wait_for_sockets(1)
    cid = conversation_id(url)
    sidebar_entry = page.locator(f'.conv-link[data-conversation-id="{cid}"]')
    expect(sidebar_entry).to_have_count(1)

    if how == "frame":
        tap.inject({"type": "conversation.deleted", "conversation_id": cid})
    tap.close(4404)
    expect(page.locator("#notice-deleted")).to_be_visible()
    expect(page.locator("#notice-deleted")).to_contain_text("This conversation was deleted")
    expect(sidebar_entry).to_have_count(0)
    expect(page.locator("#composer-input")).to_be_disabled()
    screenshot(page, f"21-deleted-notice-{how}")
    page.wait_for_timeout(900)
    assert tap.count == 1, "the page reconnected to a deleted conversation"

    page.wait_for_url(site.url + "/")
    expect(page.locator(".toast")).to_have_text("This conversation was deleted.")


def test_a_send_whose_reply_was_not_seen_is_sent_again_after_a_reconnect(site, new_page):
    """The socket loses every frame of the reply (its message.created included), then
    drops. The new socket sends the same message.send again, with the same
    client_id, as it opens; the reply then streams in whole, once, and after
    that a reconnect resends nothing."""
    page = new_page()
    tap = SocketTap(page)
    sign_in(page, "alice", site.password)
    url = start_chat(page, "[[fake tokens=5 tps=0]] Warm up.")
    wait_for_status(page, "complete")
    tap.wait_for_sockets(1)

    tap.drop = lambda f: (
        f.get("type") in REPLY_FRAMES
        or (f.get("type") == "message.created" and f["message"]["role"] == "assistant")
    )
    expected = echo_words(120, "r")  # three seconds at 40 tokens/s
    page.fill("#composer-input", f"[[fake echo=1 tps=40]] {expected}")
    page.press("#composer-input", "Enter")
    expect(page.locator("article.msg-user")).to_have_count(2)  # the server has it
    expect(page.locator("#composer-input")).to_have_value("")
    page.wait_for_timeout(700)
    expect(page.locator("article.msg-assistant")).to_have_count(1)  # its reply was lost
    first_send = tap.sent_on(0, "message.send")[-1]  # the one before it was the first message
    assert first_send["text"].endswith(expected)

    tap.drop = lambda f: False
    tap.close(4000)
    tap.wait_for_sockets(2)
    page.wait_for_function("() => document.querySelectorAll('article.msg-assistant').length === 2")
    wait_for_status(page, "complete")
    assert reply_text(page) == expected
    resent = tap.sent_on(1, "message.send")
    assert resent == [first_send], "the unconfirmed send was not sent again as it was"
    # Sent as the socket opened, before its first ping: no reply was known to be
    # running, so no resume, just the resend.
    kinds = [f["type"] for i, f in tap.sent if i == 1]
    assert kinds[: kinds.index("ping")] == ["message.send"], kinds
    assert stored_reply_text(page, url) == expected

    tap.close(4000)  # both messages are known now: nothing to send again
    tap.wait_for_sockets(3)
    page.wait_for_timeout(500)
    assert tap.sent_on(2, "message.send") == []


def test_a_created_frame_for_a_shown_reply_is_adopted_only_when_newer(site, new_page):
    """A `message.created` for a reply the page shows replaces its text only if its seq
    is higher than what the page applied; deltas at or below that seq are ignored;
    `message.completed` then settles the reply to what the server stored."""
    page = new_page()
    tap = SocketTap(page)
    sign_in(page, "alice", site.password)
    url = start_chat(page, "[[fake tokens=240 tps=40]] Tell me a long story.")
    wait_for_text_length(page, 30)
    tap.wait_for_sockets(1)
    reply = page.locator(LAST_REPLY)
    reply_id = reply.get_attribute("data-message-id")
    base = {
        "id": reply_id,
        "role": "assistant",
        "position": 1,
        "thinking": "",
        "html": "",
        "model": "",
        "stop_reason": "",
        "client_id": "",
    }

    tap.inject(
        {
            "type": "message.created",
            "message": {**base, "status": "streaming", "text": "Adopted text.", "seq": 100_000},
        }
    )
    expect(reply.locator(".prose")).to_have_text("Adopted text.")
    page.wait_for_timeout(500)  # live deltas keep coming, all below seq 100000
    assert reply_text(page) == "Adopted text."
    assert reply.get_attribute("data-seq") == "100000"

    tap.inject(
        {
            "type": "message.created",
            "message": {**base, "status": "streaming", "text": "Older text.", "seq": 3},
        }
    )
    page.wait_for_timeout(300)
    assert reply_text(page) == "Adopted text."
    expect(page.locator("article.msg-assistant")).to_have_count(1)  # no duplicate

    wait_for_status(page, "complete")
    assert reply_text(page) == stored_reply_text(page, url)


def test_signing_out_in_another_tab_ends_the_chat_with_a_sign_in_link(site, new_page):
    """Signing out in another tab of the same browser: the server closes this tab's
    socket with 4403, and the page says so instead of reconnecting."""
    page = new_page()
    tap = SocketTap(page)
    sign_in(page, "alice", site.password)
    start_chat(page, "[[fake tokens=5 tps=0]] Hello.")
    wait_for_status(page, "complete")
    tap.wait_for_sockets(1)

    other = page.context.new_page()
    other.goto("/")
    other.click(".user-menu summary")
    other.get_by_role("menuitem", name="Sign out").click()
    other.wait_for_url(re.compile(r"/accounts/login/"))

    expect(page.locator("#notice-signed-out")).to_be_visible(timeout=5_000)
    expect(page.locator("#composer-input")).to_be_disabled()
    page.wait_for_timeout(2500)
    assert tap.count == 1


def test_deleting_in_another_tab_sends_this_tab_home(site, new_page):
    """Deleted over HTTP in another tab: this tab hears `conversation.deleted`, says so,
    and goes home; the server closes with 4404 and the page does not reconnect."""
    page = new_page()
    tap = SocketTap(page)
    sign_in(page, "alice", site.password)
    url = start_chat(page, "[[fake tokens=5 tps=0]] Delete me elsewhere.")
    wait_for_status(page, "complete")
    tap.wait_for_sockets(1)

    other = page.context.new_page()
    other.on("dialog", lambda dialog: dialog.accept())
    other.goto(url)
    other.click('[data-action="delete"]')
    other.wait_for_url(site.url + "/")

    expect(page.locator("#notice-deleted")).to_be_visible(timeout=5_000)
    assert any(f.get("type") == "conversation.deleted" for _, f in tap.received)
    page.wait_for_url(site.url + "/")
    assert tap.count == 1


def test_renaming_in_another_tab_retitles_this_tab(site, new_page):
    """Renamed over HTTP in another tab: `conversation.updated` retitles this tab's
    header, its window title and its sidebar entry."""
    page = new_page()
    sign_in(page, "alice", site.password)
    url = start_chat(page, "[[fake tokens=5 tps=0]] Rename me elsewhere.")
    wait_for_status(page, "complete")

    other = page.context.new_page()
    other.goto(url)
    other.click("#chat-title")
    other.fill(".title-input", "Renamed elsewhere")
    other.press(".title-input", "Enter")
    expect(other.locator("#chat-title")).to_have_text("Renamed elsewhere")

    expect(page.locator("#chat-title")).to_have_text("Renamed elsewhere", timeout=5_000)
    expect(page).to_have_title("Renamed elsewhere · Team chat")
    cid = conversation_id(url)
    expect(page.locator(f'.conv-link[data-conversation-id="{cid}"]')).to_have_text(
        "Renamed elsewhere"
    )
