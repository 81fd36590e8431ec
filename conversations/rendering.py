"""Markdown to safe HTML for stored messages: markdown-it-py, then nh3.

Raw HTML in the source is escaped by the parser (html=False), and the result is
sanitised again by an allow-list, so a model or a person cannot inject script,
event handlers or `javascript:` links. The browser's streaming renderer applies
the same policy with DOMPurify; the server's HTML replaces it when a reply ends.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

_markdown = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .enable("table")
    .enable("strikethrough")
)

_ALLOWED_TAGS = {
    "a",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
    "s",
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "ol": {"start"},
    "td": {"align"},
    "th": {"align"},
}


def _keep_language_class(tag: str, attribute: str, value: str) -> str | None:
    # Only `language-xyz` classes survive: the highlighter needs them, nothing else does.
    if attribute == "class":
        classes = [c for c in value.split() if c.startswith("language-") and c[9:].isalnum()]
        return " ".join(classes) or None
    return value


# markdown-it writes column alignment as an inline style, which the CSP forbids.
_ALIGN_STYLE = re.compile(r'<(td|th) style="text-align:(left|center|right)">')


def markdown_to_html(text: str) -> str:
    """Render Markdown written by a person or by Claude to sanitised HTML."""
    return nh3.clean(
        _ALIGN_STYLE.sub(r'<\1 align="\2">', _markdown.render(text)),
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=_keep_language_class,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
