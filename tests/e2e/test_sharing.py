"""Sharing inside the team, in two browsers: alice shares a conversation with Acme,
bob watches her next answer stream in live in his own browser context, then
continues it as his own copy (billed to him) and gets his own answer."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import screenshot
from tests.e2e.test_chat import (
    CONVERSATION_URL,
    LAST_REPLY,
    reply_status,
    reply_text,
    send,
    sign_in,
    start_chat,
    wait_for_status,
)

pytestmark = pytest.mark.e2e


def test_alice_shares_bob_watches_live_then_continues_it_as_his_own(site, new_page):
    alice = new_page()
    sign_in(alice, "alice", site.password)
    url = start_chat(alice, "[[fake tokens=8]] Plan the launch checklist")
    wait_for_status(alice, "complete")
    alice.click("#share-link")
    alice.check("#share-team")
    alice.click("#share-save")
    alice.wait_for_selector(".flash-success")
    assert alice.is_checked("#share-team")
    screenshot(alice, "sharing-01-alice-shared-with-the-team")

    bob = new_page()
    sign_in(bob, "bob", site.password)
    conversation_id = url.rstrip("/").split("/")[-1]
    shared_link = bob.locator(f'.conv-shared[data-shared-id="{conversation_id}"]')
    assert shared_link.count() == 1, "alice's conversation is under Shared with me"
    shared_link.click()
    bob.wait_for_url(url)
    assert bob.locator("#shared-badge").inner_text().startswith("Shared by Alice")
    assert bob.locator("#composer-input").count() == 0
    bob.wait_for_function("document.getElementById('conn-status')?.dataset.state === 'open'")
    screenshot(bob, "sharing-02-bob-reads-it")

    before = bob.locator("article.msg-assistant").count()
    alice.goto(url)
    send(alice, "[[fake tokens=160 tps=40]] Now the risks, in detail.")
    bob.wait_for_function(
        "n => document.querySelectorAll('article.msg-assistant').length > n", arg=before
    )
    samples: list[int] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if reply_status(bob) not in {"pending", "streaming"}:
            break
        length = len(reply_text(bob))
        if length and (not samples or length != samples[-1]):
            samples.append(length)
        if len(samples) == 3:
            screenshot(bob, "sharing-03-bob-watches-it-stream")
        bob.wait_for_timeout(250)
    assert len(samples) >= 3, f"bob did not see the answer grow live: {samples}"
    wait_for_status(bob, "complete")
    wait_for_status(alice, "complete")
    assert reply_text(bob) == reply_text(alice)

    bob.click("#continue-btn")
    bob.wait_for_url(CONVERSATION_URL)
    assert bob.url != url, "a new conversation of bob's own"
    assert bob.locator("#composer-input").count() == 1
    assert bob.locator("article.msg-assistant").count() == before + 1
    send(bob, "[[fake tokens=6]] And who owns each risk?")
    wait_for_status(bob, "complete")
    screenshot(bob, "sharing-04-bob-continues-in-his-own-chat")
    # The team page: members with roles, budget and spend, the preset.
    alice.goto("/teams/acme/")
    assert alice.locator('#members-table tr[data-member="bob"] .member-role').inner_text() == "Member"
    assert alice.locator('#presets-table tr[data-preset="Support replies"]').count() == 1
    screenshot(alice, "sharing-05-the-team-page")
    # alice's conversation did not change.
    alice.goto(url)
    alice.wait_for_selector(LAST_REPLY)
    assert alice.locator("article.msg-assistant").count() == before + 1
