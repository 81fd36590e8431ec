"""The words the chat's modules write into the page are the catalog's.

With `PSEUDO_JS_CATALOG` in place of Django's JavaScript catalog, everything
static/chat/*.js passes through gettext comes out as `⟦...⟧`: a bare word in
what the modules wrote (a toast, a status, a title, the context meter...) was
never marked, and no translation could reach it. The server's own words are
not checked here (it speaks English in this process-separate site); only
what JavaScript wrote after the page loaded.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_chat import CONVERSATION_URL, LAST_REPLY, sign_in, wait_for_status
from tests.i18n_pseudo import CLOSE, OPEN, PSEUDO_JS_CATALOG, unmarked_words

pytestmark = pytest.mark.e2e

# Long enough for the composer's cost estimate (composer.js: ESTIMATE_MIN_CHARS).
LONG_DRAFT = "lorem " * 400


def written(page, selector: str, attribute: str | None = None) -> str:
    """An element's text (or attribute), which must be there and be the catalog's."""
    locator = page.locator(selector).first
    value = locator.get_attribute(attribute) if attribute else locator.inner_text()
    assert value and OPEN in value and CLOSE in value, (
        f"{selector} {attribute or 'text'}: {value!r}"
    )
    return value


def test_what_the_modules_write_is_marked_for_translation(site, new_page):
    page = new_page()
    page.add_init_script(PSEUDO_JS_CATALOG)
    sign_in(page, "alice", site.password)
    page.goto("/")
    page.select_option('select[name="thinking_effort"]', "low")
    first = "[[fake thinking_tokens=30 tokens=12 tps=0]] Marked words, please."
    page.fill("#first-message", first)
    page.press("#first-message", "Enter")
    page.wait_for_url(CONVERSATION_URL)
    wait_for_status(page, "complete", timeout=30_000)
    reply = page.locator(LAST_REPLY).locator(".prose").inner_text()
    models = page.eval_on_selector(
        "#model-labels", "el => Object.values(JSON.parse(el.textContent))"
    )
    data = [first, reply, *models]
    texts: dict[str, str] = {}

    # The reply's thinking label, its usage (the button's title, the popup's rows),
    # the context meter and the send button, all set by the modules.
    texts["thinking label"] = written(page, f"{LAST_REPLY} .thinking-label")
    texts["usage title"] = written(page, f"{LAST_REPLY} .act-usage", "title")
    texts["usage rows"] = page.locator(f"{LAST_REPLY} .usage-pop").evaluate("el => el.textContent")
    expect(page.locator("#context-meter")).to_be_visible()
    texts["meter"] = written(page, "#context-meter .meter-text")
    texts["meter title"] = written(page, "#context-meter", "title")
    texts["send title"] = written(page, "#send-btn", "title")
    texts["send label"] = written(page, "#send-btn", "aria-label")

    # A long draft gets its cost estimate sentence.
    page.fill("#composer-input", LONG_DRAFT)
    expect(page.locator("#cost-estimate")).to_be_visible()
    texts["cost estimate"] = written(page, "#cost-estimate")
    page.fill("#composer-input", "")

    # Renaming in place: the field's aria-label, then the tab's title.
    page.click('#chat-header [data-action="rename"]')
    texts["rename field"] = written(page, "#chat-header .title-input", "aria-label")
    # A word no other browser test writes: they share one site and its accounts,
    # and test_search counts what alice's searches find.
    page.fill("#chat-header .title-input", "Numbat notes")
    page.press("#chat-header .title-input", "Enter")
    expect(page.locator("#chat-title")).to_have_text("Numbat notes")
    texts["tab title"] = page.title()
    data.append("Numbat notes")

    # Settings saved: a toast names the model of the next answer.
    page.click("#settings-btn")
    page.click('#conv-settings button[type="submit"]')
    expect(page.locator(".toast")).to_be_visible()
    texts["toast"] = written(page, ".toast")

    # The search palette's status, with results and without.
    page.keyboard.press("Control+k")
    page.fill("#search-input", "numbat")
    expect(page.locator("#search-results li").first).to_be_visible()
    texts["search found"] = written(page, "#search-status")
    page.fill("#search-input", "zzqxv nothing matches this")
    expect(page.locator("#search-results li")).to_have_count(0)
    expect(page.locator("#search-status")).to_contain_text(OPEN)
    texts["search empty"] = written(page, "#search-status")
    screenshot(page, "js-translation-01-palette")

    unmarked = {
        name: words for name, text in texts.items() if (words := unmarked_words(text, data))
    }
    assert unmarked == {}, f"Words the modules wrote without gettext: {unmarked}\n{texts}"
