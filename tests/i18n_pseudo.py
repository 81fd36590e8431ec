"""A pseudo-language that shows which words are marked for translation.

With `pseudo_language` active every string that goes through gettext (a
template's `{% translate %}`, Python's `gettext`/`gettext_lazy`, Django's own
words) comes out wrapped as `⟦...⟧`; a word left bare on the page was never
marked, and a translator could not reach it. `unmarked_words(text, data)` lists
those bare words, after taking out the data the test put there itself (names,
titles, message text), which no catalog translates.

In the browser, `PSEUDO_JS_CATALOG` stands in for Django's JavaScript catalog:
run it with `page.add_init_script` and `static/chat/i18n.js` wraps what the
modules say the same way.
"""

from __future__ import annotations

import gettext as gettext_module
import re
from collections.abc import Iterable
from html.parser import HTMLParser

import pytest

OPEN, CLOSE = "⟦", "⟧"
_MARKED = re.compile(f"{OPEN}[^{OPEN}{CLOSE}]*{CLOSE}")
_WORD = re.compile(r"[A-Za-z][A-Za-z']+")
# gettext's separator between a pgettext context and its message.
_CONTEXT = "\x04"

# Words no language translates: the product's and vendors' names, key names.
NOT_TRANSLATED = (
    "Claude",
    "Anthropic",
    "Ctrl",
    "Shift",
    "Esc",
    "Enter",
    "JSON",
    "API",
    "Markdown",
    "PDF",
    "SSO",
    "OIDC",
)


def _strip_context(message: str) -> str:
    return message.split(_CONTEXT, 1)[1] if _CONTEXT in message else message


class PseudoTranslation(gettext_module.NullTranslations):
    """Wraps every message; Django's translation machinery calls only these.

    `language` is the code `get_language()` reports while it is active: a test
    that stands it in for German, say, gives "de", so what carries the active
    language on (a queued task) carries German."""

    def __init__(self, language: str = "en") -> None:
        super().__init__()
        self._language = language

    def gettext(self, message: str) -> str:
        return f"{OPEN}{_strip_context(message)}{CLOSE}"

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return f"{OPEN}{_strip_context(singular if n == 1 else plural)}{CLOSE}"

    def to_language(self) -> str:
        return self._language

    def language(self) -> str:
        return self._language


@pytest.fixture
def pseudo_language(monkeypatch):
    """Every request, template and socket in this test speaks the pseudo-language."""
    from django.utils.translation import trans_real

    pseudo = PseudoTranslation()
    monkeypatch.setattr(trans_real, "translation", lambda language: pseudo)
    monkeypatch.setattr(trans_real, "_default", pseudo)
    monkeypatch.setattr(trans_real._active, "value", pseudo, raising=False)
    return pseudo


def unmarked_words(text: str, data: Iterable[str] = ()) -> list[str]:
    """The words of `text` outside every `⟦...⟧`, once `data` is taken out."""
    while True:
        stripped = _MARKED.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    for value in sorted(data, key=len, reverse=True):
        if value:
            text = text.replace(value, " ")
    for word in NOT_TRANSLATED:
        text = re.sub(rf"\b{re.escape(word)}\b", " ", text)
    return _WORD.findall(text)


# Attributes a person reads or hears (a screen reader says aria-label and title).
_READ_ATTRIBUTES = ("title", "aria-label", "placeholder", "alt", "aria-description")


class _VisibleText(HTMLParser):
    """The text and read-aloud attributes of a page, without scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template"):
            self._hidden_depth += 1
        for name, value in attrs:
            if name in _READ_ATTRIBUTES and value:
                self.parts.append(value)
            if (
                tag == "input"
                and name == "value"
                and value
                and dict(attrs).get("type") in ("submit", "button")
            ):
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data):
        if not self._hidden_depth:
            self.parts.append(data)


def page_text(html: str) -> str:
    """What a reader of `html` sees or hears, one part per line."""
    parser = _VisibleText()
    parser.feed(html)
    return "\n".join(part.strip() for part in parser.parts if part.strip())


def page_unmarked_words(html: str, data: Iterable[str] = ()) -> list[str]:
    return unmarked_words(page_text(html), data)


# Run before any of the page's scripts: Django's catalog sees itself already
# loaded and keeps these functions (its script checks `jsi18n_initialized`).
PSEUDO_JS_CATALOG = """
(() => {
  const wrap = (text) => "OPEN" + text + "CLOSE";
  window.django = {
    jsi18n_initialized: true,
    catalog: {},
    gettext: (message) => wrap(message),
    ngettext: (singular, plural, count) => wrap(count === 1 ? singular : plural),
    pgettext: (context, message) => wrap(message),
    interpolate: (format, values) => format,
  };
})();
""".replace("OPEN", OPEN).replace("CLOSE", CLOSE)
