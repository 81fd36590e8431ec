"""Template filters of the chat's pages: a model's name, an error card's parts."""

from __future__ import annotations

import re

from django import template

from claude.catalog import model_info
from conversations.streaming import frames

register = template.Library()


@register.filter
def model_label(model_id: str) -> str:
    """A model's display name ("Claude Sonnet 5.5"), never its raw id unless the
    catalog does not know it."""
    info = model_info(model_id or "")
    return info.label if info else (model_id or "")


# The sentence of an error message that says to press Retry (claude/errors.py,
# and messages stored before): the card shows it only while Retry is there.
# static/chat/thread.js splits the same way (errorParts).
_RETRY_SENTENCE = re.compile(
    r"^(?P<main>.*?[.:])\s*(?P<hint>[^.:]*\bpress retry\b[^.:]*\.?)\s*$", re.I
)


def error_parts(message: str) -> tuple[str, str]:
    """(what happened, the sentence telling to press Retry or "")."""
    message = str(message or "")
    match = _RETRY_SENTENCE.match(message)
    if not match:
        return message, ""
    main = match.group("main")
    if main.endswith(":"):
        main = main[:-1] + "."
    hint = match.group("hint").strip()
    return main, hint[:1].upper() + hint[1:]


@register.filter
def error_main(message: str) -> str:
    return error_parts(message)[0]


@register.filter
def error_retry_hint(message: str) -> str:
    return error_parts(message)[1]


@register.filter
def error_text(message: str) -> str:
    """A failed reply's stored message in the reader's language (frames.error_text)."""
    return frames.error_text(message)
