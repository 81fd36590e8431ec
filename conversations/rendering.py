"""Markdown to safe HTML for stored messages: markdown-it-py, then nh3.

Raw HTML in the source is escaped by the parser (html=False), and the result is
sanitised again by an allow-list, so a model or a person cannot inject script,
event handlers or `javascript:` links. The browser's streaming renderer applies
the same policy with DOMPurify; the server's HTML replaces it when a reply ends.

Maths (`$…$`, `$$…$$`) becomes `<span class="math inline">` / `<div class="math
block">` holding the TeX source as escaped text; the browser typesets it with
the vendored KaTeX (static/chat/render.js), which builds its own DOM from the
text. Task lists (`- [ ]`, `- [x]`) become disabled checkboxes.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.tasklists import tasklists_plugin

_markdown = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .enable("table")
    .enable("strikethrough")
    # No space inside the dollars and no digit next to them: "$5 and $10" is money.
    .use(dollarmath_plugin, allow_space=False, allow_digits=False, double_inline=True)
    .use(tasklists_plugin)
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
    "span",
    "div",
    "input",
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "span": {"class"},
    "div": {"class"},
    "ul": {"class"},
    "li": {"class"},
    "input": {"class", "type", "checked", "disabled"},
    "ol": {"start"},
    "td": {"align"},
    "th": {"align"},
}


# The classes each tag may keep: the highlighter's `language-xyz` on code, the
# maths and task-list markers; nothing else.
_KEPT_CLASSES = {
    "span": {"math", "inline"},
    "div": {"math", "block"},
    "ul": {"contains-task-list"},
    "li": {"task-list-item"},
    "input": {"task-list-item-checkbox"},
}


def _keep_language_class(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "class":
        if tag == "code":
            classes = [c for c in value.split() if c.startswith("language-") and c[9:].isalnum()]
        else:
            classes = [c for c in value.split() if c in _KEPT_CLASSES.get(tag, ())]
        return " ".join(classes) or None
    if tag == "input":
        # Only the task list's checkbox, always disabled.
        if attribute == "type":
            return "checkbox" if value == "checkbox" else None
        if attribute in ("checked", "disabled"):
            return attribute
    return value


# markdown-it writes column alignment as an inline style, which the CSP forbids.
_ALIGN_STYLE = re.compile(r'<(td|th) style="text-align:(left|center|right)">')


def markdown_to_html(text: str) -> str:
    """Render Markdown written by a person or by Claude to sanitised HTML."""
    html = nh3.clean(
        _ALIGN_STYLE.sub(r'<\1 align="\2">', _markdown.render(text)),
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=_keep_language_class,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    # An <input> nh3 kept is a task list's: make sure it is a disabled checkbox.
    return _INPUT.sub(_task_checkbox, html) if "<input" in html else html


_INPUT = re.compile(r"<input\b[^>]*>")


def _task_checkbox(match: re.Match) -> str:
    checked = " checked" if re.search(r"\bchecked\b", match.group(0)) else ""
    return f'<input class="task-list-item-checkbox" type="checkbox" disabled{checked}>'


_plain = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")


def markdown_to_plain_text(text: str) -> str:
    """The words of a line of Markdown without its marks ("# **Fix** `x`" is
    "Fix x"): headings, emphasis, code spans, links (their text), quotes and
    list markers go; raw HTML stays as the text it is."""
    words: list[str] = []
    for token in _plain.parse(text):
        if token.type == "fence" or token.type == "code_block":
            words.append(token.content.strip())
        for child in token.children or ():
            if child.type in ("text", "code_inline", "html_inline"):
                words.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                words.append(" ")
            elif child.type == "image":
                words.append(child.content)
        if token.type.endswith("_close") and token.block:
            words.append(" ")
    return " ".join("".join(words).split())
