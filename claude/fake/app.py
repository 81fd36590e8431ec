"""The fake Anthropic Messages API: a raw ASGI app.

It serves `POST /v1/messages` (streaming and not),
`POST /v1/messages/count_tokens` and the Files API (`/v1/files`) closely enough
that the real `anthropic` SDK cannot tell it from the API: the same SSE event
sequence, usage fields, error bodies and status codes, `request-id` and
rate-limit headers, validation messages, prompt caching, thinking blocks, and
image and PDF blocks checked and counted as the API does (media.py). Tests run it in-process through
`StreamingASGITransport`; demos and benchmarks run it under uvicorn
(`manage.py fakeclaude`). Replies are deterministic and shaped by the control
directive (see control.py and docs/fake-claude.md).

It has to stay lean: a benchmark drives hundreds of concurrent streams through
one process, so replies are tokenised once, each SSE event costs one
`json.dumps`, and pacing follows a wall-clock schedule (tokens that fall due
together go out in one event) instead of sleeping once per token.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import math
import os
import random
import string
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claude.catalog import ModelInfo, model_info
from claude.titles import TITLE_SYSTEM_PROMPT

from .batches import (
    MAX_BATCH_BYTES,
    BatchInputError,
    BatchProcessor,
    BatchStateError,
    BatchStore,
    batch_object,
    is_batch_id,
    parse_requests,
)
from .clouds import (
    ANTHROPIC,
    CloudError,
    Dialect,
    cloud_route,
    is_cloud_path,
    new_request_id,
)
from .control import ERROR_STATUS, Control, ControlError, parse_control, strip_directives
from .files import MAX_UPLOAD_BYTES, FileInputError, FileStore, is_file_id, parse_upload
from .media import Attachment, MediaError, MediaReader
from .replies import (
    REFUSAL_TEXT,
    attachments_sentence,
    compaction_summary,
    reply_tokens,
    split_tokens,
    thinking_tokens,
    title_text,
)
from .tokens import PromptBlock, prompt_blocks

_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_Headers = list[tuple[bytes, bytes]]

MAX_BODY_BYTES = 32 * 1024 * 1024
API_VERSIONS = ("2023-06-01", "2026-10-21")
# Sampling parameters: removed from the API in version 2026-10-21.
SAMPLING_FIELDS = frozenset({"temperature", "top_p", "top_k"})
MESSAGES_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stream",
        "metadata",
        "stop_sequences",
        "thinking",
        "output_config",
        "cache_control",
        "tools",
        "tool_choice",
        "service_tier",
        "inference_geo",
        "speed",
        "container",
        "context_management",
        "mcp_servers",
    }
)
COUNT_TOKENS_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "thinking",
        "output_config",
        "cache_control",
        "tools",
        "tool_choice",
        "speed",
        "context_management",
        "mcp_servers",
    }
)
BLOCK_TYPES = (
    "text",
    "image",
    "document",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "compaction",
)
COMPACTION_BETA = "compact-2026-01-12"
# The API's default compaction trigger, in input tokens.
DEFAULT_COMPACT_TRIGGER = 150_000
EFFORTS = ("low", "medium", "high", "xhigh", "max")
CACHE_TTLS = {"5m": 300.0, "1h": 3600.0}
MAX_CACHE_BREAKPOINTS = 4
DEFAULT_THINKING_TOKENS = 40
# A stream sends at most one event per stream this often; tokens that fall due
# in between share an event (at 50 tokens/s: about two tokens an event).
MIN_EVENT_INTERVAL = 0.04

ERROR_MESSAGES = {
    "invalid_request_error": "Invalid request (simulated by the fake).",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "The requested resource could not be found.",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "This request would exceed the rate limit for your organization. "
    "Please try again later.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}

_ID_ALPHABET = string.ascii_letters + string.digits
_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_PROMPT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _new_id(prefix: str) -> str:
    """`msg_01…`/`req_01…` followed by 22 base62 characters, like the API's ids."""
    return prefix + "".join(random.choices(_ID_ALPHABET, k=22))


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class ApiError(Exception):
    """An error answered before the response starts, as the API's JSON error body."""

    def __init__(
        self,
        error_type: str,
        message: str,
        headers: _Headers | None = None,
        status: int = 0,
        error_code: str = "",
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status or ERROR_STATUS[error_type]
        self.headers = headers or []
        # `error.details.error_code`: SDK 2.x picks a finer exception class by it
        # (e.g. 400 "file_not_downloadable" -> FileNotDownloadableError).
        self.error_code = error_code


def _invalid(message: str) -> ApiError:
    return ApiError("invalid_request_error", message)


def _errored(error_type: str, message: str) -> dict[str, Any]:
    """A batch request's `errored` result: the error body the call would have got."""
    return {
        "type": "errored",
        "error": {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": _new_id("req_01"),
        },
    }


# --- Validation -------------------------------------------------------------


@dataclass(frozen=True)
class ParsedRequest:
    """A validated request: what the rest of the app needs from the body."""

    model: str
    info: ModelInfo
    max_tokens: int  # 0 for count_tokens
    stream: bool
    system: str | list[dict[str, Any]] | None
    messages: list[dict[str, Any]]
    thinking: str  # "none", "enabled" or "adaptive"
    thinking_budget: int | None
    thinking_omitted: bool
    auto_cache_control: dict[str, Any] | None
    # `context_management` with a `compact_20260112` edit: its trigger in input
    # tokens (None: no compaction asked for) and whether to stop after it.
    compact_trigger: int | None = None
    pause_after_compaction: bool = False

    @property
    def prefill(self) -> str:
        """The text of a final assistant message (the start of the reply), or ""."""
        if not self.messages or self.messages[-1]["role"] != "assistant":
            return ""
        content = self.messages[-1]["content"]
        if isinstance(content, str):
            return content
        return "".join(b.get("text", "") for b in content if b.get("type") == "text")

    @property
    def has_compaction_block(self) -> bool:
        return any(
            isinstance(b, dict) and b.get("type") == "compaction"
            for m in self.messages
            if isinstance(m.get("content"), list)
            for b in m["content"]
        )


def _check_context_management(value: object) -> tuple[int | None, bool]:
    """Validate `context_management`; returns the compaction trigger and its pause flag."""
    if value is None:
        return None, False
    if not isinstance(value, dict):
        raise _invalid("context_management: Input should be a valid dictionary")
    edits = value.get("edits", [])
    if not isinstance(edits, list):
        raise _invalid("context_management.edits: Input should be a valid list")
    trigger: int | None = None
    pause = False
    for i, edit in enumerate(edits):
        loc = f"context_management.edits.{i}"
        if not isinstance(edit, dict):
            raise _invalid(f"{loc}: Input should be a valid dictionary")
        kind = edit.get("type")
        if kind in ("clear_tool_uses_20250919", "clear_thinking_20251015"):
            continue
        if kind != "compact_20260112":
            raise _invalid(
                f"{loc}.type: Input tag '{kind}' found using 'type' does not match any of the "
                "expected tags: 'clear_tool_uses_20250919', 'clear_thinking_20251015', "
                "'compact_20260112'"
            )
        spec = edit.get("trigger")
        trigger = DEFAULT_COMPACT_TRIGGER
        if spec is not None:
            if not isinstance(spec, dict) or spec.get("type") != "input_tokens":
                raise _invalid(f"{loc}.trigger.type: Input should be 'input_tokens'")
            if not _is_int(spec.get("value")) or spec["value"] < 1:
                raise _invalid(f"{loc}.trigger.value: Input should be a valid positive integer")
            trigger = spec["value"]
        pause = bool(edit.get("pause_after_compaction", False))
    return trigger, pause


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_cache_control(value: object, loc: str) -> int:
    """Validate a cache_control marker; returns 1 if present (a breakpoint)."""
    if value is None:
        return 0
    loc = f"{loc}.cache_control" if loc else "cache_control"
    if not isinstance(value, dict):
        raise _invalid(f"{loc}: Input should be a valid dictionary")
    if value.get("type") != "ephemeral":
        raise _invalid(f"{loc}.type: Input should be 'ephemeral'")
    if "ttl" in value and value["ttl"] not in CACHE_TTLS:
        raise _invalid(f"{loc}.ttl: Input should be '5m' or '1h'")
    return 1


def _check_block(block: object, loc: str, role: str, version: str) -> int:
    """Validate one message content block; returns its breakpoint count."""
    if not isinstance(block, dict):
        raise _invalid(f"{loc}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        tags = ", ".join(f"'{t}'" for t in BLOCK_TYPES)
        raise _invalid(
            f"{loc}.type: Input tag '{kind}' found using 'type' does not match any of the "
            f"expected tags: {tags}"
        )
    if kind == "text":
        if "text" not in block:
            raise _invalid(f"{loc}.text: Field required")
        if not isinstance(block["text"], str):
            raise _invalid(f"{loc}.text: Input should be a valid string")
        if not block["text"]:
            raise _invalid("messages: text content blocks must be non-empty")
    elif kind == "compaction":
        if role != "assistant":
            raise _invalid(f"{loc}: compaction blocks are only permitted in assistant messages")
        if block.get("content") is not None and not isinstance(block.get("content"), str):
            raise _invalid(f"{loc}.content: Input should be a valid string")
        if block.get("content") == "":
            raise _invalid(f"{loc}.content: String should have at least 1 character")
    elif kind in ("image", "document"):
        if not isinstance(block.get("source"), dict):
            raise _invalid(f"{loc}.source: Field required")
        if kind == "document" and role == "assistant" and version != "2023-06-01":
            raise _invalid(f"{loc}: document blocks are not permitted in assistant messages")
    return _check_cache_control(block.get("cache_control"), loc)


def _check_messages(messages: object, version: str) -> int:
    """Validate `messages`; returns the number of cache breakpoints in them."""
    if not isinstance(messages, list):
        raise _invalid("messages: Input should be a valid list")
    if not messages:
        raise _invalid("messages: at least one message is required")
    breakpoints = 0
    last = len(messages) - 1
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"messages.{i}: Input should be a valid dictionary")
        if "role" not in message:
            raise _invalid(f"messages.{i}.role: Field required")
        role = message["role"]
        if role not in ("user", "assistant"):
            raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise _invalid(f"messages.{i}.content: Field required")
        content = message["content"]
        if isinstance(content, str):
            if not content and not (i == last and role == "assistant"):
                raise _invalid(
                    f"messages.{i}: all messages must have non-empty content except for the "
                    "optional final assistant message"
                )
        elif isinstance(content, list):
            if not content and not (i == last and role == "assistant"):
                raise _invalid(
                    f"messages.{i}: all messages must have non-empty content except for the "
                    "optional final assistant message"
                )
            for j, block in enumerate(content):
                breakpoints += _check_block(block, f"messages.{i}.content.{j}", role, version)
        else:
            raise _invalid(f"messages.{i}.content: Input should be a valid string or list")
    return breakpoints


def _check_system(system: object) -> int:
    """Validate `system`; returns the number of cache breakpoints in it."""
    if system is None or isinstance(system, str):
        return 0
    if not isinstance(system, list):
        raise _invalid("system: Input should be a valid string or list")
    breakpoints = 0
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _invalid(f"system.{j}.type: Input should be 'text'")
        if not isinstance(block.get("text"), str):
            raise _invalid(f"system.{j}.text: Field required")
        if not block["text"]:
            raise _invalid("system: text content blocks must be non-empty")
        breakpoints += _check_cache_control(block.get("cache_control"), f"system.{j}")
    return breakpoints


def _check_thinking(
    thinking: object, info: ModelInfo, model: str, max_tokens: int | None
) -> tuple[str, int | None, bool]:
    """Validate `thinking` against the model; returns (mode, budget, omitted)."""
    if thinking is None:
        return "none", None, False
    if not isinstance(thinking, dict):
        raise _invalid("thinking: Input should be a valid dictionary")
    kind = thinking.get("type")
    if kind not in ("enabled", "adaptive", "disabled"):
        raise _invalid(
            f"thinking.type: Input tag '{kind}' found using 'type' does not match any of the "
            "expected tags: 'enabled', 'disabled', 'adaptive'"
        )
    if kind == "disabled":
        return "none", None, False
    display = thinking.get("display", "summarized")
    if display not in ("summarized", "omitted"):
        raise _invalid(f"thinking.{kind}.display: Input should be 'summarized' or 'omitted'")
    if info.thinking == "none":
        raise _invalid(f"thinking: '{model}' does not support thinking")
    if kind == "adaptive":
        if info.thinking != "adaptive":
            raise _invalid(
                f"thinking.type: adaptive thinking is not supported on '{model}'; "
                "use 'enabled' with budget_tokens"
            )
        return "adaptive", None, display == "omitted"
    if "budget_tokens" not in thinking:
        raise _invalid("thinking.enabled.budget_tokens: Field required")
    budget = thinking["budget_tokens"]
    if not _is_int(budget):
        raise _invalid("thinking.enabled.budget_tokens: Input should be a valid integer")
    if budget < 1024:
        raise _invalid(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        )
    if max_tokens is not None and budget >= max_tokens:
        raise _invalid(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            "documentation at https://docs.claude.com/en/docs/build-with-claude/"
            "extended-thinking#max-tokens-and-context-window-size"
        )
    return "enabled", budget, display == "omitted"


def validate(payload: object, version: str, *, count_tokens: bool = False) -> ParsedRequest:
    """Check a request body the way the API does; raises ApiError with its messages."""
    if not isinstance(payload, dict):
        raise _invalid("Input should be a valid dictionary")
    allowed = COUNT_TOKENS_FIELDS if count_tokens else MESSAGES_FIELDS
    for key in payload:
        if key in allowed or (key in SAMPLING_FIELDS and version == "2023-06-01"):
            continue
        raise _invalid(f"{key}: Extra inputs are not permitted")

    if "model" not in payload:
        raise _invalid("model: Field required")
    model = payload["model"]
    if not isinstance(model, str):
        raise _invalid("model: Input should be a valid string")

    max_tokens: int | None = None
    if not count_tokens:
        if "max_tokens" not in payload:
            raise _invalid("max_tokens: Field required")
        max_tokens = payload["max_tokens"]
        if not _is_int(max_tokens):
            raise _invalid("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise _invalid("max_tokens: Input should be greater than or equal to 1")

    if "messages" not in payload:
        raise _invalid("messages: Field required")
    breakpoints = _check_messages(payload["messages"], version)
    breakpoints += _check_system(payload.get("system"))
    auto_cache_control = payload.get("cache_control")
    breakpoints += _check_cache_control(auto_cache_control, "")

    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise _invalid("stream: Input should be a valid boolean")
    output_config = payload.get("output_config")
    if output_config is not None:
        if not isinstance(output_config, dict):
            raise _invalid("output_config: Input should be a valid dictionary")
        if "effort" in output_config and output_config["effort"] not in EFFORTS:
            raise _invalid(
                "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
            )

    info = model_info(model)
    if info is None:
        raise ApiError("not_found_error", f"model: {model}")
    if max_tokens is not None and max_tokens > info.max_output_tokens:
        raise _invalid(
            f"max_tokens: {max_tokens} > {info.max_output_tokens}, which is the maximum allowed "
            f"number of output tokens for {model}"
        )
    thinking, budget, omitted = _check_thinking(payload.get("thinking"), info, model, max_tokens)
    compact_trigger, pause_after = _check_context_management(payload.get("context_management"))
    if breakpoints > MAX_CACHE_BREAKPOINTS:
        raise _invalid(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {breakpoints}."
        )
    return ParsedRequest(
        model=model,
        info=info,
        max_tokens=max_tokens or 0,
        stream=stream,
        system=payload.get("system"),
        messages=payload["messages"],
        thinking=thinking,
        thinking_budget=budget,
        thinking_omitted=omitted,
        auto_cache_control=auto_cache_control,
        compact_trigger=compact_trigger,
        pause_after_compaction=pause_after,
    )


# --- Prompt caching ----------------------------------------------------------


@dataclass(frozen=True)
class PromptUsage:
    """The input side of `usage`: input + cache writes + cache reads = the prompt."""

    input_tokens: int
    cache_creation_5m: int = 0
    cache_creation_1h: int = 0
    cache_read: int = 0

    def as_usage(self) -> dict[str, Any]:
        """The input fields of the API's `usage` object."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_5m + self.cache_creation_1h,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation_5m,
                "ephemeral_1h_input_tokens": self.cache_creation_1h,
            },
        }


def _ttl(cache_control: dict[str, Any]) -> float:
    return CACHE_TTLS[cache_control.get("ttl", "5m")]


class PromptCache:
    """Cached prompt prefixes with their TTL, like the API's prompt cache.

    A prefix is keyed by a hash of the model and the canonical JSON of every
    block up to it (without the cache_control markers). Writing stores every
    block boundary up to the last breakpoint, so a later request can read a
    prefix ending at any block, as the API's lookback does.
    """

    _SWEEP_INTERVAL = 60.0

    def __init__(self) -> None:
        # key -> (prefix tokens, expires at (monotonic), ttl seconds)
        self._entries: dict[bytes, tuple[int, float, float]] = {}
        self._next_sweep = 0.0

    def account(
        self,
        info: ModelInfo,
        blocks: list[PromptBlock],
        auto_cache_control: dict[str, Any] | None,
    ) -> PromptUsage:
        """Read and write the cache for one request and split its input tokens."""
        total = sum(b.tokens for b in blocks)
        breakpoints = [(i, _ttl(b.cache_control)) for i, b in enumerate(blocks) if b.cache_control]
        if auto_cache_control is not None and blocks:
            breakpoints.append((len(blocks) - 1, _ttl(auto_cache_control)))
        if not breakpoints:
            return PromptUsage(input_tokens=total)
        breakpoints.sort()
        last = breakpoints[-1][0]
        cumulative: list[int] = []
        running = 0
        for block in blocks[: last + 1]:
            running += block.tokens
            cumulative.append(running)
        if cumulative[last] < info.cache_min_tokens:
            return PromptUsage(input_tokens=total)

        now = time.monotonic()
        self._sweep(now)
        keys = self._prefix_keys(info.id, blocks[: last + 1])

        hit = -1
        for i in range(last, -1, -1):
            entry = self._entries.get(keys[i])
            if entry is not None and entry[1] > now:
                tokens, _, ttl = entry
                self._entries[keys[i]] = (tokens, now + ttl, ttl)
                hit = i
                break
        read = cumulative[hit] if hit >= 0 else 0

        created = {300.0: 0, 3600.0: 0}
        previous = read
        for index, ttl in breakpoints:
            if cumulative[index] > previous:
                created[ttl] += cumulative[index] - previous
                previous = cumulative[index]
        ttl_at = iter(breakpoints)
        index, ttl = next(ttl_at)
        for i in range(hit + 1, last + 1):
            while index < i:
                index, ttl = next(ttl_at)
            self._entries[keys[i]] = (cumulative[i], now + ttl, ttl)

        return PromptUsage(
            input_tokens=total - cumulative[last],
            cache_creation_5m=created[300.0],
            cache_creation_1h=created[3600.0],
            cache_read=read,
        )

    @staticmethod
    def _prefix_keys(model: str, blocks: list[PromptBlock]) -> list[bytes]:
        """The key of each prefix, hashed incrementally (one pass over the prompt)."""
        digest = hashlib.sha256(model.encode())
        keys = []
        for block in blocks:
            content = {k: v for k, v in block.block.items() if k != "cache_control"}
            marker = f"\x1e{block.role}:" if block.opens_message else "\x1f"
            digest.update(marker.encode())
            digest.update(json.dumps(content, sort_keys=True).encode())
            keys.append(digest.digest())
        return keys

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._SWEEP_INTERVAL
        for key in [k for k, entry in self._entries.items() if entry[1] <= now]:
            del self._entries[key]


# --- Generation --------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The whole reply, decided before the first byte is sent."""

    thinking: list[str] | None  # None: no thinking block
    thinking_omitted: bool
    signature: str
    text: list[str] | None  # None: the budget ran out during thinking
    stop_reason: str
    tps: float
    ttft: float  # seconds
    error: str | None  # an error to send mid-stream ...
    error_at: int  # ... after this many text tokens
    # A compaction first: the summary that replaced the older turns (None: none).
    compaction: str | None = None
    # The compaction's own usage (its `iterations` entry), when there was one.
    compaction_usage: dict[str, Any] | None = None
    refusal_category: str | None = None

    @property
    def thinking_count(self) -> int:
        return len(self.thinking) if self.thinking is not None else 0

    @property
    def output_tokens(self) -> int:
        return self.thinking_count + (len(self.text) if self.text is not None else 0)


class _Pacer:
    """Releases tokens on a wall-clock schedule: token k is due at t0 + k/tps.

    Late wake-ups do not accumulate drift (the schedule does not move), and
    tokens that are due together leave in one event.
    """

    def __init__(self, tps: float, ttft: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._interval = 1.0 / tps if tps > 0 else 0.0
        self._t0 = self._loop.time() + ttft
        self._released = 0

    def skip(self, count: int) -> None:
        """Count tokens as generated without sending them (omitted thinking)."""
        self._released += count

    async def next_batch(self, available: int) -> int:
        """Wait until at least one token is due; return how many (<= available)."""
        if self._interval == 0:
            # As fast as possible, but yield to the loop between events.
            await asyncio.sleep(max(0.0, self._t0 - self._loop.time()))
            return 1
        while True:
            now = self._loop.time()
            due = math.floor((now - self._t0) / self._interval) + 1 - self._released
            if due > 0:
                count = min(due, available)
                self._released += count
                return count
            wake = self._t0 + self._released * self._interval
            await asyncio.sleep(max(wake - now, MIN_EVENT_INTERVAL))


async def _wait_for_disconnect(receive: _Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (what the reply is about)."""
    for message in reversed(messages):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return "\n".join(b["text"] for b in content if b.get("type") == "text")
    return ""


def _last_user_attachments(
    messages: list[dict[str, Any]], attachments: dict[tuple[int, int], Attachment]
) -> list[Attachment]:
    """The attachments of the last user message, in order (what the reply mentions)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "user":
            return [attachments[key] for key in sorted(attachments) if key[0] == i]
    return []


def _system_texts(system: str | list[dict[str, Any]] | None) -> list[str]:
    if system is None:
        return []
    if isinstance(system, str):
        return [system]
    return [block["text"] for block in system]


class FakeClaude:
    """The ASGI app. State: the prompt cache and the `error_times` counters."""

    def __init__(
        self,
        default_tps: float = 0,
        default_ttft_ms: int = 0,
        default_tokens: int | None = None,
        files_dir: str | os.PathLike[str] | None = None,
        batches_dir: str | os.PathLike[str] | None = None,
        batch_seconds: float = 0,
    ) -> None:
        self.default_tps = default_tps
        self.default_ttft_ms = default_ttft_ms
        self.default_tokens = default_tokens
        self.cache = PromptCache()
        # On disk, so every process given the same folder sees the same files.
        self.files = FileStore(files_dir)
        self.media = MediaReader(self.files)
        # On disk too: a batch one process submits is polled and read by others.
        self.batches = BatchStore(batches_dir, delay_seconds=batch_seconds)
        self._batch_processor = BatchProcessor(held=self._batch_held, result=self._batch_result)
        self.active_streams = 0  # streams being generated now (tests, benchmarks)
        self._error_counts: dict[str, int] = {}
        self._ratelimit_second = -1
        self._ratelimit_headers: _Headers = []

    async def __call__(self, scope: _Message, receive: _Receive, send: _Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = _new_id("req_01")
        try:
            await self._handle(scope, receive, send, request_id)
        except ApiError as error:
            detail: dict[str, Any] = {"type": error.error_type, "message": error.message}
            if error.error_code:
                detail["details"] = {"error_code": error.error_code}
            payload = {"type": "error", "error": detail, "request_id": request_id}
            await self._send_json(send, error.status, payload, request_id, error.headers)

    @staticmethod
    async def _lifespan(receive: _Receive, send: _Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- HTTP plumbing ---

    def _headers(
        self, request_id: str, content_type: bytes, dialect: Dialect = ANTHROPIC
    ) -> _Headers:
        if dialect is not ANTHROPIC:
            return [(b"content-type", content_type), *dialect.response_headers(request_id)]
        now = int(time.time())
        if now != self._ratelimit_second:
            reset = datetime.fromtimestamp(now + 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
            self._ratelimit_second = now
            self._ratelimit_headers = [
                (b"anthropic-ratelimit-requests-limit", b"4000"),
                (b"anthropic-ratelimit-requests-remaining", b"3999"),
                (b"anthropic-ratelimit-requests-reset", reset),
                (b"anthropic-ratelimit-tokens-limit", b"2400000"),
                (b"anthropic-ratelimit-tokens-remaining", b"2399000"),
                (b"anthropic-ratelimit-tokens-reset", reset),
                (b"anthropic-ratelimit-input-tokens-limit", b"2000000"),
                (b"anthropic-ratelimit-input-tokens-remaining", b"1999000"),
                (b"anthropic-ratelimit-input-tokens-reset", reset),
                (b"anthropic-ratelimit-output-tokens-limit", b"400000"),
                (b"anthropic-ratelimit-output-tokens-remaining", b"399000"),
                (b"anthropic-ratelimit-output-tokens-reset", reset),
            ]
        return [
            (b"content-type", content_type),
            (b"request-id", request_id.encode()),
            *self._ratelimit_headers,
        ]

    async def _send_json(
        self,
        send: _Send,
        status: int,
        payload: dict[str, Any],
        request_id: str,
        extra_headers: _Headers | None = None,
        *,
        dialect: Dialect = ANTHROPIC,
    ) -> None:
        body = json.dumps(payload).encode()
        headers = self._headers(request_id, b"application/json", dialect)
        headers.extend(extra_headers or [])
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _read_body(receive: _Receive, limit: int = MAX_BODY_BYTES) -> bytes | None:
        """The request body, or None if the client went away while sending it."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ApiError("request_too_large", ERROR_MESSAGES["request_too_large"])
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _handle(
        self, scope: _Message, receive: _Receive, send: _Send, request_id: str
    ) -> None:
        path = scope["path"]
        method = scope["method"]
        if is_cloud_path(path):
            await self._cloud(scope, receive, send, request_id)
            return
        files_route = path == "/v1/files" or path.startswith("/v1/files/")
        batches_route = path == "/v1/messages/batches" or path.startswith("/v1/messages/batches/")
        if (
            not files_route
            and not batches_route
            and (method != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"))
        ):
            raise ApiError("not_found_error", "Not found")
        headers = dict(scope["headers"])

        limit = (
            MAX_UPLOAD_BYTES
            if files_route
            else MAX_BATCH_BYTES
            if batches_route
            else MAX_BODY_BYTES
        )
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > limit:
            raise ApiError("request_too_large", ERROR_MESSAGES["request_too_large"])
        authorization = headers.get(b"authorization", b"")
        bearer = authorization[7:].strip() if authorization[:7].lower() == b"bearer " else b""
        if not headers.get(b"x-api-key") and not bearer:
            raise ApiError("authentication_error", "invalid x-api-key")
        version = headers.get(b"anthropic-version", b"").decode("latin-1")
        if not version:
            raise _invalid("anthropic-version: header is required")
        if version not in API_VERSIONS:
            raise _invalid(f"anthropic-version: invalid version '{version}'")

        if files_route:
            await self._files(scope, receive, send, request_id, headers)
            return
        if batches_route:
            await self._batches(scope, receive, send, request_id, headers, version)
            return
        body = await self._read_body(receive)
        if body is None:
            return
        try:
            payload = json.loads(body)
        except ValueError:
            raise _invalid("There was an issue with your request body: invalid JSON") from None

        count_tokens = path == "/v1/messages/count_tokens"
        await self._messages(
            payload, version, headers, receive, send, request_id, count_tokens=count_tokens
        )

    async def _messages(
        self,
        payload: Any,
        version: str,
        headers: dict[bytes, bytes],
        receive: _Receive,
        send: _Send,
        request_id: str,
        *,
        count_tokens: bool = False,
        dialect: Dialect = ANTHROPIC,
    ) -> None:
        """A Messages (or count_tokens) request whose body is parsed: validated,
        counted, cached and answered in the dialect of the route it came by."""
        request = validate(payload, version, count_tokens=count_tokens)
        dialect.check_sources(request.messages)
        betas = {
            b.strip()
            for b in headers.get(b"anthropic-beta", b"").decode("latin-1").split(",")
            if b.strip()
        }
        if (request.compact_trigger is not None or request.has_compaction_block) and (
            COMPACTION_BETA not in betas
        ):
            raise _invalid(
                f"context_management: compaction requires the '{COMPACTION_BETA}' beta "
                "(the anthropic-beta header)"
            )
        try:
            attachments = self.media.read(request.messages)
        except MediaError as error:
            raise _invalid(str(error)) from None
        measured = {key: attachment.tokens for key, attachment in attachments.items()}
        blocks = prompt_blocks(request.system, request.messages, measured)
        if count_tokens:
            total = sum(b.tokens for b in blocks)
            await self._send_json(send, 200, {"input_tokens": total}, request_id, dialect=dialect)
            return

        user_text = _user_text(request.messages)
        header = headers.get(b"x-fake-claude")
        try:
            control = parse_control(
                [*_system_texts(request.system), user_text],
                header.decode("latin-1") if header else None,
            )
        except ControlError as error:
            raise _invalid(str(error)) from None
        error = self._error_due(control)
        if error is not None and (control.error_at is None or not request.stream):
            raise ApiError(error, ERROR_MESSAGES[error], self._retry_headers(control, error))

        compaction = None
        compaction_usage = None
        total = sum(b.tokens for b in blocks)
        if request.compact_trigger is not None and total >= request.compact_trigger:
            # The API condenses the prompt into a summary and answers from that.
            compaction = compaction_summary(request.messages)
            summary_tokens = len(split_tokens(compaction))
            compaction_usage = {
                "type": "compaction",
                "input_tokens": total,
                "output_tokens": summary_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            }
            system_blocks = [b for b in blocks if b.role == "system"]
            summary_block = PromptBlock(
                "assistant",
                {"type": "compaction", "content": compaction},
                summary_tokens + 4,
                None,
                True,
            )
            blocks = [*system_blocks, summary_block, *[b for b in blocks if b.role != "system"][-1:]]
        usage = self.cache.account(request.info, blocks, request.auto_cache_control)
        read = _last_user_attachments(request.messages, attachments)
        opening = attachments_sentence([a.describe() for a in read]) if read else ""
        plan = self._plan(request, control, strip_directives(user_text), error, opening)
        if compaction is not None:
            plan = dataclasses.replace(
                plan, compaction=compaction, compaction_usage=compaction_usage
            )
            if request.pause_after_compaction:
                plan = dataclasses.replace(plan, thinking=None, text=[], stop_reason="compaction")
        if request.stream:
            await self._stream(receive, send, request_id, request, plan, usage, dialect)
        else:
            await self._respond(send, request_id, request, plan, usage, dialect)

    # --- Amazon Bedrock and Google Vertex AI ---

    async def _cloud(
        self, scope: _Message, receive: _Receive, send: _Send, request_id: str
    ) -> None:
        """Bedrock's `/model/{id}/invoke[-with-response-stream]` and Vertex AI's
        `…/publishers/anthropic/models/{id}:rawPredict|streamRawPredict`: the same
        replies, in each provider's framing, errors and authentication."""
        route = cloud_route(scope["method"], scope["path"])
        dialect = route.dialect
        request_id = new_request_id(dialect, request_id)
        try:
            headers = dict(scope["headers"])
            length = headers.get(b"content-length", b"0")
            if length.isdigit() and int(length) > MAX_BODY_BYTES:
                raise ApiError("request_too_large", ERROR_MESSAGES["request_too_large"])
            dialect.check_auth(headers)
            route.check_model()
            body = await self._read_body(receive)
            if body is None:
                return
            try:
                payload = json.loads(body)
            except ValueError:
                raise dialect.malformed("invalid JSON") from None
            payload, version = route.prepare(payload)
            await self._messages(
                payload,
                version,
                headers,
                receive,
                send,
                request_id,
                count_tokens=route.count_tokens,
                dialect=dialect,
            )
        except CloudError as error:
            await self._send_json(
                send, error.status, error.body, request_id, error.headers, dialect=dialect
            )
        except ApiError as error:
            status, error_headers, error_body = dialect.error_response(error, request_id)
            await self._send_json(
                send, status, error_body, request_id, error_headers, dialect=dialect
            )

    # --- The Files API ---

    async def _files(
        self,
        scope: _Message,
        receive: _Receive,
        send: _Send,
        request_id: str,
        headers: dict[bytes, bytes],
    ) -> None:
        """`/v1/files` and `/v1/files/{id}[/content]`, as the API answers them."""
        method = scope["method"]
        parts = scope["path"].split("/")[3:]  # after "", "v1", "files"
        if not parts:
            if method == "POST":
                body = await self._read_body(receive, MAX_UPLOAD_BYTES)
                if body is None:
                    return
                content_type = headers.get(b"content-type", b"").decode("latin-1")
                try:
                    part, expires = parse_upload(content_type, body)
                except FileInputError as error:
                    raise _invalid(str(error)) from None
                metadata = self.files.add(part, expires)
                await self._send_json(send, 200, metadata, request_id)
                return
            if method == "GET":
                query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
                ids = query.get("ids[]", []) + query.get("ids", [])
                limit_text = query.get("limit", [None])[-1]
                if limit_text is not None and not limit_text.lstrip("-").isdigit():
                    raise _invalid("limit: Input should be a valid integer")
                limit = int(limit_text) if limit_text is not None else None
                try:
                    page = self.files.page(limit, query.get("page", [None])[-1], ids or None)
                except FileInputError as error:
                    raise _invalid(str(error)) from None
                await self._send_json(send, 200, page, request_id)
                return
            raise ApiError("not_found_error", "Not found")

        file_id = urllib.parse.unquote(parts[0])
        if len(parts) > 2 or (len(parts) == 2 and parts[1] != "content"):
            raise ApiError("not_found_error", "Not found")
        metadata = self.files.get(file_id) if is_file_id(file_id) else None
        if metadata is None:
            raise ApiError("not_found_error", f"File not found: {file_id}")
        if len(parts) == 2:
            if method != "GET":
                raise ApiError("not_found_error", "Not found")
            # Only files a tool created can be downloaded; uploads never can.
            raise ApiError(
                "invalid_request_error",
                f"File {file_id} is not downloadable",
                error_code="file_not_downloadable",
            )
        if method == "GET":
            await self._send_json(send, 200, metadata, request_id)
        elif method == "DELETE":
            if not self.files.delete(file_id):
                raise ApiError("not_found_error", f"File not found: {file_id}")
            await self._send_json(send, 200, {"id": file_id, "type": "file_deleted"}, request_id)
        else:
            raise ApiError("not_found_error", "Not found")

    # --- Message Batches ---

    async def _batches(
        self,
        scope: _Message,
        receive: _Receive,
        send: _Send,
        request_id: str,
        headers: dict[bytes, bytes],
        version: str,
    ) -> None:
        """`/v1/messages/batches[/{id}[/cancel|/results]]`, as the API answers them."""
        method = scope["method"]
        parts = scope["path"].split("/")[4:]  # after "", "v1", "messages", "batches"
        base = f"{scope.get('scheme', 'http')}://{headers.get(b'host', b'fake').decode('latin-1')}"
        processor = self._batch_processor
        if not parts or parts == [""]:
            if method == "POST":
                body = await self._read_body(receive, MAX_BATCH_BYTES)
                if body is None:
                    return
                try:
                    payload = json.loads(body)
                except ValueError:
                    raise _invalid(
                        "There was an issue with your request body: invalid JSON"
                    ) from None
                header = headers.get(b"x-fake-claude")
                try:
                    requests = parse_requests(payload)
                    control = parse_control([], header.decode("latin-1") if header else None)
                except (BatchInputError, ControlError) as error:
                    raise _invalid(str(error)) from None
                state = self.batches.create(
                    requests,
                    version=version,
                    processor=processor,
                    delay_seconds=control.batch_seconds,
                )
                await self._send_json(send, 200, batch_object(state, results_base=base), request_id)
                return
            if method == "GET":
                query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
                limit_text = query.get("limit", [None])[-1]
                if limit_text is not None and not limit_text.lstrip("-").isdigit():
                    raise _invalid("limit: Input should be a valid integer")
                try:
                    states, has_more = self.batches.page(
                        limit=int(limit_text) if limit_text is not None else None,
                        after_id=query.get("after_id", [None])[-1],
                        before_id=query.get("before_id", [None])[-1],
                    )
                except BatchInputError as error:
                    raise _invalid(str(error)) from None
                # Each listed batch is moved on to now, as a retrieve would.
                data = []
                for listed in states:
                    state = self.batches.get(listed["id"], processor) or listed
                    data.append(batch_object(state, results_base=base))
                page = {
                    "data": data,
                    "has_more": has_more,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                }
                await self._send_json(send, 200, page, request_id)
                return
            raise ApiError("not_found_error", "Not found")

        batch_id = urllib.parse.unquote(parts[0])
        action = parts[1] if len(parts) > 1 else ""
        if len(parts) > 2 or action not in ("", "cancel", "results"):
            raise ApiError("not_found_error", "Not found")
        state = self.batches.get(batch_id, processor) if is_batch_id(batch_id) else None
        if state is None:
            raise ApiError("not_found_error", f"Message batch {batch_id} not found")
        if action == "cancel":
            if method != "POST":
                raise ApiError("not_found_error", "Not found")
            state = self.batches.cancel(batch_id, processor) or state
            await self._send_json(send, 200, batch_object(state, results_base=base), request_id)
        elif action == "results":
            if method != "GET":
                raise ApiError("not_found_error", "Not found")
            if state["status"] != "ended":
                raise _invalid(f"Message batch {batch_id} has not finished processing")
            await self._send_results(send, batch_id, request_id)
        elif method == "GET":
            await self._send_json(send, 200, batch_object(state, results_base=base), request_id)
        elif method == "DELETE":
            try:
                self.batches.delete(batch_id, processor)
            except BatchStateError as error:
                raise _invalid(str(error)) from None
            deleted = {"id": batch_id, "type": "message_batch_deleted"}
            await self._send_json(send, 200, deleted, request_id)
        else:
            raise ApiError("not_found_error", "Not found")

    async def _send_results(self, send: _Send, batch_id: str, request_id: str) -> None:
        """The results file as JSONL, streamed a chunk at a time."""
        headers = self._headers(request_id, b"application/binary")
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in self.batches.results_chunks(batch_id):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _batch_control(self, params: dict[str, Any]) -> Control:
        messages = params.get("messages")
        system = params.get("system")
        texts: list[str] = []
        if isinstance(system, str):
            texts.append(system)
        elif isinstance(system, list):
            texts.extend(
                b["text"] for b in system if isinstance(b, dict) and isinstance(b.get("text"), str)
            )
        if isinstance(messages, list):
            try:
                texts.append(
                    _user_text([m for m in messages if isinstance(m, dict) and "role" in m])
                )
            except (KeyError, TypeError, AttributeError):
                pass  # malformed: validation errors it when the batch is processed
        return parse_control(texts, None)

    def _batch_held(self, params: dict[str, Any]) -> bool:
        try:
            return bool(self._batch_control(params).hold)
        except Exception:
            return False  # malformed: errored when the batch is processed

    def _batch_result(
        self, custom_id: str, params: dict[str, Any], version: str, batch_id: str
    ) -> dict[str, Any]:
        """One request of a batch, answered as `/v1/messages` would answer it: a
        result object (`succeeded` with the Message, `errored` with the error body
        the call would have got, or `expired` for `[[fake expire=1]]`)."""
        try:
            request = validate(params, version)
            control = self._batch_control(params)
            attachments = self.media.read(request.messages)
        except ApiError as error:
            return _errored(error.error_type, error.message)
        except (ControlError, MediaError) as error:
            return _errored("invalid_request_error", str(error))
        if control.expire:
            return {"type": "expired"}
        error = self._error_due(control)
        if error is not None:
            return _errored(error, ERROR_MESSAGES[error])
        measured = {key: attachment.tokens for key, attachment in attachments.items()}
        blocks = prompt_blocks(request.system, request.messages, measured)
        # Batches read no prompt cache here: every prompt token is input.
        usage = PromptUsage(input_tokens=sum(b.tokens for b in blocks))
        read = _last_user_attachments(request.messages, attachments)
        opening = attachments_sentence([a.describe() for a in read]) if read else ""
        user_text = strip_directives(_user_text(request.messages))
        plan = self._plan(request, control, user_text, None, opening)
        # The same request in the same batch gets the same id (a re-read of the results).
        digest = hashlib.sha256(f"{batch_id}:{custom_id}".encode()).digest()
        message_id = "msg_01" + "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[:22])
        return {"type": "succeeded", "message": self._message(request, plan, usage, message_id)}

    # --- The control ---

    def _error_due(self, control: Control) -> str | None:
        """The error this request must fail with, counting `error_times`."""
        if control.error is None:
            return None
        if control.error_times is None:
            return control.error
        seen = self._error_counts.get(control.source, 0)
        self._error_counts[control.source] = seen + 1
        return control.error if seen < control.error_times else None

    @staticmethod
    def _retry_headers(control: Control, error: str) -> _Headers:
        headers: _Headers = []
        if control.retry_after is not None or error == "rate_limit_error":
            seconds = control.retry_after if control.retry_after is not None else 1
            headers.append((b"retry-after", str(seconds).encode()))
        if control.retry_after_ms is not None:
            headers.append((b"retry-after-ms", str(control.retry_after_ms).encode()))
        return headers

    def _plan(
        self,
        request: ParsedRequest,
        control: Control,
        user_text: str,
        error: str | None,
        opening: str = "",
    ) -> Plan:
        budget = request.max_tokens
        truncated = False
        thinking: list[str] | None = None
        signature = ""
        if request.thinking != "none":
            wanted = (
                control.thinking_tokens
                if control.thinking_tokens is not None
                else DEFAULT_THINKING_TOKENS
            )
            if request.thinking_budget is not None:
                wanted = min(wanted, request.thinking_budget)
            full = thinking_tokens(request.info.id, user_text, wanted)
            thinking = full[:budget]
            truncated = len(thinking) < len(full)
            budget -= len(thinking)
            digest = hashlib.sha256("".join(full).encode()).digest()
            signature = "Eq" + base64.b64encode(digest * 3).decode()

        stop_reason = control.stop_reason
        prefill = request.prefill
        if control.stop_reason == "refusal":
            full_text = split_tokens(REFUSAL_TEXT)
        elif TITLE_SYSTEM_PROMPT in _system_texts(request.system):
            full_text = split_tokens(title_text(user_text))
        elif control.echo:
            full_text = split_tokens(user_text)
        else:
            count = control.tokens if control.tokens is not None else self.default_tokens
            full_text = reply_tokens(request.info.id, user_text, count, opening)
        if prefill:
            # A final assistant message is the start of the reply: the reply is the
            # rest of it (what follows that start, when it is the start of it).
            whole = "".join(full_text)
            if whole.startswith(prefill) and len(whole) > len(prefill):
                full_text = split_tokens(whole[len(prefill) :])
            elif whole.startswith(prefill):
                full_text = []
            if stop_reason == "pause_turn":
                stop_reason = None  # a paused turn sent back goes on to its end
        elif stop_reason == "pause_turn":
            # A long turn paused half-way; sent back, it goes on (above).
            full_text = full_text[: max(1, len(full_text) // 2)]
        text: list[str] | None
        if budget > 0 or not full_text:
            text = full_text[:budget]
            truncated = truncated or len(text) < len(full_text)
        else:
            text = None
            truncated = True

        tps = control.tps if control.tps is not None else self.default_tps
        ttft_ms = control.ttft_ms if control.ttft_ms is not None else self.default_ttft_ms
        return Plan(
            thinking=thinking,
            thinking_omitted=request.thinking_omitted,
            signature=signature,
            text=text,
            stop_reason=stop_reason or ("max_tokens" if truncated else "end_turn"),
            tps=tps,
            ttft=ttft_ms / 1000,
            error=error,
            error_at=control.error_at or 0,
            refusal_category=control.refusal_category,
        )

    # --- Responses ---

    @staticmethod
    def _final_usage(plan: Plan, usage: PromptUsage) -> dict[str, Any]:
        fields = usage.as_usage()
        fields["output_tokens"] = plan.output_tokens
        if plan.thinking is not None:
            fields["output_tokens_details"] = {"thinking_tokens": plan.thinking_count}
        if plan.compaction_usage is not None:
            # The compaction's tokens are reported here only (not in the totals).
            message = {
                "type": "message",
                "input_tokens": fields["input_tokens"],
                "output_tokens": plan.output_tokens,
                "cache_creation_input_tokens": fields["cache_creation_input_tokens"],
                "cache_read_input_tokens": fields["cache_read_input_tokens"],
            }
            fields["iterations"] = [plan.compaction_usage, message]
        return fields

    @staticmethod
    def _stop_delta(plan: Plan) -> dict[str, Any]:
        delta: dict[str, Any] = {"stop_reason": plan.stop_reason, "stop_sequence": None}
        if plan.stop_reason == "refusal":
            delta["stop_details"] = {
                "type": "refusal",
                "category": plan.refusal_category,
                "explanation": None,
            }
        return delta

    async def _respond(
        self,
        send: _Send,
        request_id: str,
        request: ParsedRequest,
        plan: Plan,
        usage: PromptUsage,
        dialect: Dialect = ANTHROPIC,
    ) -> None:
        """A non-streaming reply, after as long as the stream would have taken."""
        delay = plan.ttft + (plan.output_tokens / plan.tps if plan.tps > 0 else 0)
        if delay > 0:
            await asyncio.sleep(delay)
        message = self._message(request, plan, usage, _new_id(dialect.message_prefix))
        extra = dialect.invoke_headers(
            input_tokens=sum(usage.as_usage()[k] for k in _PROMPT_FIELDS),
            output_tokens=plan.output_tokens,
            latency_ms=int(delay * 1000),
        )
        await self._send_json(send, 200, message, request_id, extra, dialect=dialect)

    def _message(
        self, request: ParsedRequest, plan: Plan, usage: PromptUsage, message_id: str
    ) -> dict[str, Any]:
        """The Message object of a non-streaming reply (and of a batch's result)."""
        content: list[dict[str, Any]] = []
        if plan.compaction is not None:
            content.append({"type": "compaction", "content": plan.compaction})
        if plan.thinking is not None:
            thinking = "" if plan.thinking_omitted else "".join(plan.thinking)
            content.append({"type": "thinking", "thinking": thinking, "signature": plan.signature})
        if plan.text is not None:
            content.append({"type": "text", "text": "".join(plan.text)})
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": content,
            **self._stop_delta(plan),
            "usage": {**self._final_usage(plan, usage), "service_tier": "standard"},
        }

    async def _stream(
        self,
        receive: _Receive,
        send: _Send,
        request_id: str,
        request: ParsedRequest,
        plan: Plan,
        usage: PromptUsage,
        dialect: Dialect = ANTHROPIC,
    ) -> None:
        """Send the stream (SSE, or Bedrock's event stream); stop generating as soon
        as the client disconnects."""
        headers = self._headers(request_id, dialect.stream_content_type, dialect)
        headers.extend(dialect.stream_headers())
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self.active_streams += 1
        generate = asyncio.ensure_future(self._generate(send, request, plan, usage, dialect))
        watch = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait({generate, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not generate.done():
                generate.cancel()
                await asyncio.wait({generate})
            self.active_streams -= 1
        if not generate.cancelled():
            generate.result()

    async def _generate(
        self,
        send: _Send,
        request: ParsedRequest,
        plan: Plan,
        usage: PromptUsage,
        dialect: Dialect = ANTHROPIC,
    ) -> None:
        async def write(*events: bytes, more: bool = True) -> None:
            await send({"type": "http.response.body", "body": b"".join(events), "more_body": more})

        _event = dialect.event
        started = time.monotonic()

        start = {
            "type": "message_start",
            "message": {
                "id": _new_id(dialect.message_prefix),
                "type": "message",
                "role": "assistant",
                "model": request.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**usage.as_usage(), "output_tokens": 1, "service_tier": "standard"},
            },
        }
        await write(_event("message_start", start), dialect.ping)
        pacer = _Pacer(plan.tps, plan.ttft)
        index = 0
        if plan.compaction is not None:
            await pacer.next_batch(1)
            block = {"type": "compaction", "content": None}
            delta = {"type": "compaction_delta", "content": plan.compaction}
            await write(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block},
                ),
                _event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                ),
                _event("content_block_stop", {"type": "content_block_stop", "index": index}),
            )
            index += 1
        if plan.thinking is not None:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            if plan.thinking_omitted:
                pacer.skip(len(plan.thinking))
                await self._emit_block(write, pacer, index, block, "thinking", [], None, _event)
            else:
                await self._emit_block(
                    write, pacer, index, block, "thinking", plan.thinking, None, _event
                )
            signature = {"type": "signature_delta", "signature": plan.signature}
            await write(
                _event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": signature},
                ),
                _event("content_block_stop", {"type": "content_block_stop", "index": index}),
            )
            index += 1
        if plan.text is not None:
            limit = plan.error_at if plan.error else None
            block = {"type": "text", "text": ""}
            await self._emit_block(write, pacer, index, block, "text", plan.text, limit, _event)
            if plan.error is None:
                await write(
                    _event("content_block_stop", {"type": "content_block_stop", "index": index})
                )
        if plan.error is not None:
            # Interrupts the open block, as the API's mid-stream errors do.
            await write(dialect.stream_error(plan.error, ERROR_MESSAGES[plan.error]), more=False)
            return
        message_delta = {
            "type": "message_delta",
            "delta": self._stop_delta(plan),
            "usage": self._final_usage(plan, usage),
        }
        stop = {"type": "message_stop"}
        stop.update(
            dialect.stop_metrics(
                input_tokens=sum(usage.as_usage()[k] for k in _PROMPT_FIELDS),
                output_tokens=plan.output_tokens,
                latency_ms=int((time.monotonic() - started) * 1000),
            )
        )
        await write(_event("message_delta", message_delta), _event("message_stop", stop), more=False)

    @staticmethod
    async def _emit_block(
        write: Callable[..., Awaitable[None]],
        pacer: _Pacer,
        index: int,
        block: dict[str, Any],
        kind: str,
        tokens: list[str],
        limit: int | None = None,
        _event: Callable[[str, dict[str, Any]], bytes] = _event,
    ) -> int:
        """Start a block and stream its deltas as they fall due; returns tokens sent.

        The block start goes out with its first delta, as the API does after the
        time to first token.
        """
        head = _event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
        delta_type = f"{kind}_delta"
        end = len(tokens) if limit is None else min(limit, len(tokens))
        sent = 0
        while sent < end:
            count = await pacer.next_batch(end - sent)
            piece = "".join(tokens[sent : sent + count])
            sent += count
            delta = _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": delta_type, kind: piece},
                },
            )
            if head:
                await write(head, delta)
                head = b""
            else:
                await write(delta)
        if head:
            await write(head)
        return sent


def create_fake_app(
    default_tps: float = 0,
    default_ttft_ms: int = 0,
    default_tokens: int | None = None,
    files_dir: str | os.PathLike[str] | None = None,
    batches_dir: str | os.PathLike[str] | None = None,
    batch_seconds: float = 0,
) -> FakeClaude:
    """A fresh fake (its own cache and counters); 0 tokens/s means as fast as possible.

    Uploaded files live in `files_dir`, Message Batches in `batches_dir`; apps
    (and processes) given the same folders share them. Without one, the app
    keeps them in a temporary folder of its own. A batch ends `batch_seconds`
    after it was created.
    """
    return FakeClaude(
        default_tps, default_ttft_ms, default_tokens, files_dir, batches_dir, batch_seconds
    )


def default_files_dir() -> Path:
    """`$FAKE_CLAUDE_FILES_DIR`, else `fake-claude-files` in the site's var folder.

    Read from the environment like the site's settings read CHAT_VAR_DIR (whose
    default is `var/` at the top of the project), so a web process and a
    worker started from the same environment share one store.
    """
    configured = os.environ.get("FAKE_CLAUDE_FILES_DIR")
    if configured:
        return Path(configured)
    var_dir = os.environ.get("CHAT_VAR_DIR") or str(Path(__file__).resolve().parents[2] / "var")
    return Path(var_dir) / "fake-claude-files"


def default_batches_dir() -> Path:
    """`$FAKE_CLAUDE_BATCHES_DIR`, else `fake-claude-batches` in the site's var folder
    (as `default_files_dir`): the web process, the workers and the command line
    started from one environment see the same batches."""
    configured = os.environ.get("FAKE_CLAUDE_BATCHES_DIR")
    if configured:
        return Path(configured)
    var_dir = os.environ.get("CHAT_VAR_DIR") or str(Path(__file__).resolve().parents[2] / "var")
    return Path(var_dir) / "fake-claude-batches"


def fake_app_from_env() -> FakeClaude:
    """The fake for demos: realistic pacing unless FAKE_CLAUDE_TPS/_TTFT_MS say otherwise,
    the Files store of `default_files_dir()`, and the batches of
    `default_batches_dir()`, each ending FAKE_CLAUDE_BATCH_SECONDS (default 5) after
    it was created."""
    return create_fake_app(
        default_tps=float(os.environ.get("FAKE_CLAUDE_TPS", "40")),
        default_ttft_ms=int(os.environ.get("FAKE_CLAUDE_TTFT_MS", "300")),
        files_dir=default_files_dir(),
        batches_dir=default_batches_dir(),
        batch_seconds=float(os.environ.get("FAKE_CLAUDE_BATCH_SECONDS", "5")),
    )
