"""The test/demo control: `[[fake key=value ...]]` and the `x-fake-claude` header.

Tests and demos need to make the fake slow, long, failing or cut short on
demand, through the real SDK and without a side channel. A directive in the
prompt (system prompt or the last user message) or the `x-fake-claude` header
does that; the header wins on conflicts. See docs/fake-claude.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

# The API's error types and the HTTP status each one comes with.
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

STOP_REASONS = ("end_turn", "max_tokens", "refusal", "pause_turn")
REFUSAL_CATEGORIES = ("cyber", "bio", "frontier_llm", "reasoning_extraction", "general_harms")

_MARKER = "[[fake"
_DIRECTIVE = re.compile(r"\[\[fake(?:\s+([^\]]*))?\]\]")


class ControlError(ValueError):
    """A malformed directive; reported as a 400 so typos do not pass silently."""


@dataclass(frozen=True)
class Control:
    """What the directives ask for; None means "the app's default"."""

    tokens: int | None = None
    tps: float | None = None
    ttft_ms: int | None = None
    thinking_tokens: int | None = None
    error: str | None = None
    error_at: int | None = None
    error_times: int | None = None
    retry_after: int | None = None
    retry_after_ms: int | None = None
    stop_reason: str | None = None
    refusal_category: str | None = None
    echo: bool | None = None
    # Message Batches: this request expires, or waits until its batch is
    # cancelled (then canceled) or expires; the batch takes this long to process.
    expire: bool | None = None
    hold: bool | None = None
    batch_seconds: float | None = None
    # The directives' own text: requests carrying the same one share an
    # `error_times` counter.
    source: str = ""


_FIELDS = {f.name for f in fields(Control)} - {"source"}
_NO_CONTROL = Control()


def _non_negative_int(key: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ControlError(f"fake control: {key} must be an integer, got {value!r}") from None
    if number < 0:
        raise ControlError(f"fake control: {key} must be >= 0, got {value!r}")
    return number


def _convert(key: str, value: str) -> object:
    if key in ("tps", "batch_seconds"):
        try:
            tps = float(value)
        except ValueError:
            raise ControlError(f"fake control: {key} must be a number, got {value!r}") from None
        if tps < 0:
            raise ControlError(f"fake control: {key} must be >= 0, got {value!r}")
        return tps
    if key == "error":
        if value not in ERROR_STATUS:
            raise ControlError(
                f"fake control: unknown error type {value!r}; one of {', '.join(ERROR_STATUS)}"
            )
        return value
    if key == "stop_reason":
        if value not in STOP_REASONS:
            raise ControlError(
                f"fake control: stop_reason must be one of {', '.join(STOP_REASONS)}"
            )
        return value
    if key == "refusal_category":
        if value not in REFUSAL_CATEGORIES:
            raise ControlError(
                f"fake control: refusal_category must be one of {', '.join(REFUSAL_CATEGORIES)}"
            )
        return value
    if key in ("echo", "expire", "hold"):
        return value.lower() in ("1", "true", "yes", "on")
    return _non_negative_int(key, value)


def _parse_pairs(text: str) -> dict[str, object]:
    values: dict[str, object] = {}
    for pair in text.split():
        key, sep, value = pair.partition("=")
        if not sep or not value:
            raise ControlError(f"fake control: expected key=value, got {pair!r}")
        if key not in _FIELDS:
            raise ControlError(
                f"fake control: unknown key {key!r}; one of {', '.join(sorted(_FIELDS))}"
            )
        values[key] = _convert(key, value)
    return values


def find_directives(text: str) -> list[str]:
    """The `key=value` parts of every directive in `text` (cheap when there is none)."""
    if _MARKER not in text:
        return []
    return [m.group(1) or "" for m in _DIRECTIVE.finditer(text)]


def strip_directives(text: str) -> str:
    """`text` without its directives, trimmed, for the reply and for `echo=1`."""
    if _MARKER not in text:
        return text
    return _DIRECTIVE.sub("", text).strip()


def parse_control(texts: Iterable[str], header: str | None) -> Control:
    """Merge the directives found in `texts` (in order), then the header's.

    Raises ControlError on a malformed directive.
    """
    sources: list[str] = []
    values: dict[str, object] = {}
    for text in texts:
        for directive in find_directives(text):
            sources.append(directive.strip())
            values.update(_parse_pairs(directive))
    if header:
        sources.append(header.strip())
        values.update(_parse_pairs(header))
    if not sources:
        return _NO_CONTROL
    return replace(_NO_CONTROL, source=" | ".join(sources), **values)  # type: ignore[arg-type]
