"""Long conversations: when a branch's prompt nears the model's context window.

On a model with the API's compaction (`claude.catalog.ModelInfo.compaction`),
each request of a long branch carries `context_management` with a
`compact_20260112` edit whose trigger is the threshold below: the API condenses
the older turns itself, and the answer starts with a `compaction` block that is
kept in the answer's content and sent back with it from then on (the API
ignores whatever comes before it). On other models the chat condenses once:
before the answer that would pass the threshold, one call summarises the
branch's older turns, the summary is kept on the last of them
(`Message.summary`), and from then on the branch's requests send the summary
(in the system prompt) instead of those turns. Either way the turns stay
stored and on the page, with a marker where they were condensed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.conf import settings

from claude.catalog import ModelInfo
from claude.stream import ChatRequest

SUMMARY_MAX_TOKENS = 2048
SUMMARY_INSTRUCTION = (
    "Summarise our conversation so far for yourself, to continue it without the "
    "earlier turns: the questions, the answers given, decisions, names, numbers and "
    "code that matter, and anything still open. Write only the summary."
)
SUMMARY_HEADING = (
    "Summary of the earlier part of this conversation (its turns were condensed to fit "
    "the context window):"
)


@dataclass(frozen=True)
class CondensePlan:
    """The summary to write before an answer (models without compaction)."""

    # The last of the older turns: the summary is kept on it.
    message_id: uuid.UUID
    # The call that writes the summary.
    summary_request: ChatRequest
    # The answer's request once the summary is in its system prompt.
    answer_request: ChatRequest
    base_system: str


def condense_threshold(info: ModelInfo | None) -> int:
    """Input tokens from which older turns are condensed."""
    if settings.CHAT_CONDENSE_AT_TOKENS:
        return settings.CHAT_CONDENSE_AT_TOKENS
    window = info.context_window if info else 200_000
    return window * settings.CHAT_CONDENSE_AT_PERCENT // 100


def system_with_summary(system: str, summary: str) -> str:
    """The system prompt, with the kept summary after it."""
    if not summary:
        return system
    note = f"{SUMMARY_HEADING}\n\n{summary}"
    return f"{system}\n\n{note}" if system else note


def _compaction_of(message) -> str | None:
    for block in getattr(message, "content", None) or ():
        if isinstance(block, dict) and block.get("type") == "compaction":
            return block.get("content") or ""
    return None


def has_compaction(messages: Iterable) -> bool:
    """Whether any of these messages carries the API's compaction block."""
    return any(_compaction_of(m) is not None for m in messages)


def summarised_before(history: Sequence, *, compaction_too: bool = False) -> int:
    """The index of the deepest message of the branch whose summary stands for the
    turns up to it (a kept summary; with `compaction_too`, an answer that starts
    with a compaction block: a model without compaction reads that as a summary),
    else -1."""
    for index in range(len(history) - 1, -1, -1):
        message = history[index]
        if getattr(message, "summary", ""):
            return index
        if compaction_too and _compaction_of(message):
            return index
    return -1


def summary_of(message) -> str:
    """What a request sends for the turns up to `message` (see `summarised_before`)."""
    if getattr(message, "summary", ""):
        return message.summary
    condensed = _compaction_of(message) or ""
    if message.text.strip():
        return f"{condensed}\n\nYour answer after that:\n{message.text}"
    return condensed


def prompt_estimate(system: str, messages: Iterable, files_tokens: Mapping[uuid.UUID, int]) -> int:
    """About how many input tokens a request of these messages is (4 characters a
    token, the files at what their check measured)."""
    chars = len(system)
    tokens = 0
    for message in messages:
        chars += len(message.text)
        tokens += files_tokens.get(message.id, 0) + 4
    return tokens + (chars + 3) // 4


def context_used(*, input_tokens: int, output_tokens: int, info: ModelInfo | None) -> dict:
    """The "context used" meter: the last answer's prompt and its own text, of the
    model's window."""
    window = info.context_window if info else 0
    used = input_tokens + output_tokens
    percent = min(100, round(used * 100 / window)) if window else 0
    return {"used": used, "window": window, "percent": percent}
