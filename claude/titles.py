"""A conversation's short title, written by a small model after its first exchange.

The product asks in one fixed way (`TITLE_SYSTEM_PROMPT`); the offline fake
recognises it and answers as a model would, with a few words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from claude.errors import ClaudeError
from claude.pricing import Usage
from claude.stream import ChatRequest, ReplyFinished, ReplyStream, TextDelta

TITLE_SYSTEM_PROMPT = (
    "You name conversations. The user shows you the start of a conversation between "
    "a person and an assistant. Reply with a title for it of at most six words, in "
    "the conversation's language: no quotes, no Markdown, no full stop at the end."
)
TITLE_MAX_TOKENS = 24
TITLE_MAX_CHARS = 80
# How much of each side of the exchange the model reads: a title needs the gist.
EXCERPT_CHARS = 2000

_MARKS = re.compile(r"[*_`#>~\[\]]+")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class TitleReply:
    """What the call wrote and used; `error` set (and `title` empty) if it failed."""

    title: str
    usage: Usage
    model: str
    request_id: str = ""
    stop_reason: str = ""
    error: ClaudeError | None = None


def title_request(*, model: str, user_text: str, reply_text: str) -> ChatRequest:
    excerpt = (
        f"<person>\n{user_text[:EXCERPT_CHARS]}\n</person>\n"
        f"<assistant>\n{reply_text[:EXCERPT_CHARS]}\n</assistant>"
    )
    return ChatRequest(
        model=model,
        messages=[{"role": "user", "content": excerpt}],
        max_tokens=TITLE_MAX_TOKENS,
        system=TITLE_SYSTEM_PROMPT,
    )


def title_clean(text: str) -> str:
    """One line of plain words: Markdown marks, wrapping quotes, a "Title:" label
    and a final full stop removed; at most `TITLE_MAX_CHARS`, cut at a word."""
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    line = _SPACE.sub(" ", _MARKS.sub("", line)).strip()
    if line.lower().startswith("title:"):
        line = line[6:].strip()
    line = line.strip("\"'“”‘’«» ").rstrip(".").strip()
    if len(line) > TITLE_MAX_CHARS:
        line = line[:TITLE_MAX_CHARS].rsplit(" ", 1)[0].rstrip(",;:-")
    return line


async def title_generate(request: ChatRequest) -> TitleReply:
    """Make the call; never raises for Claude's own failures (the caller keeps the
    title it had), and reports what was used either way."""
    reply: ReplyStream | None = None
    text: list[str] = []
    try:
        async with ReplyStream(request) as reply:
            async for event in reply:
                if isinstance(event, TextDelta):
                    text.append(event.text)
                elif isinstance(event, ReplyFinished):
                    return TitleReply(
                        title=title_clean("".join(text)),
                        usage=event.usage,
                        model=event.model,
                        request_id=event.request_id,
                        stop_reason=event.stop_reason,
                    )
    except ClaudeError as exc:
        partial = reply.partial_usage() if reply is not None else Usage()
        return TitleReply(
            title="",
            usage=partial,
            model=request.model,
            request_id=(reply.request_id if reply else "") or exc.request_id,
            error=exc,
        )
    raise AssertionError("a reply stream ends with ReplyFinished or raises")
