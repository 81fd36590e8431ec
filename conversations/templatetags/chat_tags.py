"""Template filters of the chat's pages: a model's name, an error card's parts."""

from __future__ import annotations

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


def error_parts(message: str) -> tuple[str, str]:
    """A stored error message in the reader's language: (what happened, the sentence
    telling to press Retry or ""). The card shows the second only while Retry is
    there (chat.css); static/chat/thread.js gets the same two from the frame."""
    return frames.error_text_parts(message)


@register.filter
def error_main(message: str) -> str:
    return error_parts(message)[0]


@register.filter
def error_retry_hint(message: str) -> str:
    return error_parts(message)[1]
