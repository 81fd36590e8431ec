"""The app's own small vocabulary for a streamed reply from Claude.

Consumers, services and tests see `TextDelta`, `ThinkingDelta`, `ReplyFinished`
and `ClaudeError`, never SDK objects. `reply_stream()` is the one way to stream.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2

from claude.catalog import model_for_cloud_id, model_info
from claude.client import claude_client, claude_provider
from claude.errors import ClaudeError, claude_error_from_body, claude_error_from_sdk
from claude.eventstream import bedrock_events
from claude.pricing import Usage
from claude.providers import provider_model_id
from claude.sse import sse_events

logger = logging.getLogger(__name__)

# Thinking budgets for models that take a manual budget instead of adaptive effort.
_BUDGET_BY_EFFORT = {"low": 2048, "medium": 4096, "high": 8192, "max": 16384}


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int
    system: str = ""
    thinking_effort: str = ""
    # Extra request headers (the fake's test control travels here).
    headers: dict[str, str] = field(default_factory=dict)
    # Ask the API to compact older turns once the prompt reaches this many input
    # tokens (beta `compact-2026-01-12`; models whose catalog entry says so); 0: never.
    compact_at: int = 0

    @functools.cached_property
    def params(self) -> dict[str, Any]:
        """The SDK keyword arguments, built once per request (see `request_params`)."""
        return request_params(self)

    @property
    def max_output_tokens(self) -> int:
        """What the call may write at most, thinking included: the worst case billed."""
        return int(self.params["max_tokens"])


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ThinkingDelta:
    thinking: str


@dataclass(frozen=True)
class ReplyFinished:
    content: list[dict[str, Any]]
    usage: Usage
    stop_reason: str
    request_id: str
    model: str
    # A refusal's `stop_details` ({"type": "refusal", "category", "explanation"}).
    stop_details: dict[str, Any] | None = None
    # What the prompt held when Claude answered (input, cache writes and reads of
    # the last sampling): how full the context window is.
    context_tokens: int = 0


StreamEvent = TextDelta | ThinkingDelta | ReplyFinished

__all__ = ["ChatRequest", "ClaudeError", "ReplyFinished", "ReplyStream", "StreamEvent",
           "TextDelta", "ThinkingDelta", "request_params"]

def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


COMPACTION_BETA = "compact-2026-01-12"


def _usage_from_dict(usage: dict[str, Any]) -> Usage:
    """The billed usage: the top-level fields plus any compaction's own tokens,
    which the API reports only in `iterations` (and bills all the same)."""
    billed = _plain_usage(usage)
    for iteration in usage.get("iterations") or ():
        if isinstance(iteration, dict) and iteration.get("type") == "compaction":
            extra = _plain_usage(iteration)
            billed = Usage(
                input_tokens=billed.input_tokens + extra.input_tokens,
                output_tokens=billed.output_tokens + extra.output_tokens,
                cache_write_5m_tokens=billed.cache_write_5m_tokens + extra.cache_write_5m_tokens,
                cache_write_1h_tokens=billed.cache_write_1h_tokens + extra.cache_write_1h_tokens,
                cache_read_tokens=billed.cache_read_tokens + extra.cache_read_tokens,
            )
    return billed


def _context_tokens(usage: dict[str, Any]) -> int:
    """The prompt's size as the API saw it: the last `message` iteration when the
    usage has iterations (never a compaction's), else the top-level fields."""
    fields = usage
    for iteration in reversed(usage.get("iterations") or ()):
        if isinstance(iteration, dict) and iteration.get("type") == "message":
            fields = iteration
            break
    return sum(
        int(fields.get(key) or 0)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )


def _plain_usage(usage: dict[str, Any]) -> Usage:
    creation = usage.get("cache_creation") or {}
    total_write = usage.get("cache_creation_input_tokens") or 0
    write_5m = creation.get("ephemeral_5m_input_tokens")
    write_1h = creation.get("ephemeral_1h_input_tokens")
    if write_5m is None and write_1h is None:
        write_5m, write_1h = total_write, 0
    return Usage(
        input_tokens=usage.get("input_tokens") or 0,
        output_tokens=usage.get("output_tokens") or 0,
        cache_write_5m_tokens=write_5m or 0,
        cache_write_1h_tokens=write_1h or 0,
        cache_read_tokens=usage.get("cache_read_input_tokens") or 0,
    )


def _catalog_id(model: str | None) -> str | None:
    """A provider's id for a catalog model as the catalog's; any other as it came."""
    if not model:
        return None
    info = model_for_cloud_id(model)
    return info.id if info else model


def request_params(request: ChatRequest) -> dict[str, Any]:
    """The SDK keyword arguments for a chat request, with prompt caching on.

    Breakpoints go on the system prompt and on the last block of the last
    message, so each turn reads the previous turns from the cache.
    """
    params: dict[str, Any] = {
        # The provider's own id (Bedrock's profile id, Vertex's `…@date`).
        "model": provider_model_id(request.model),
        "max_tokens": request.max_tokens,
        "messages": _with_cache_breakpoint(request.messages),
    }
    if request.system:
        params["system"] = [
            {"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}
        ]
    info = model_info(request.model)
    if request.thinking_effort and info and info.thinking == "adaptive":
        params["thinking"] = {"type": "adaptive"}
        params["output_config"] = {"effort": request.thinking_effort}
    elif request.thinking_effort and info and info.thinking == "enabled":
        budget = _BUDGET_BY_EFFORT.get(request.thinking_effort, 4096)
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}
        params["max_tokens"] = min(request.max_tokens + budget, info.max_output_tokens)
    if request.compact_at:
        params["betas"] = [COMPACTION_BETA]
        params["context_management"] = {
            "edits": [
                {
                    "type": "compact_20260112",
                    "trigger": {"type": "input_tokens", "value": request.compact_at},
                }
            ]
        }
    if request.headers:
        params["extra_headers"] = dict(request.headers)
    return params


def _with_cache_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not messages:
        return messages
    *head, last = messages
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    if blocks:
        blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
    return [*head, {**last, "content": blocks}]


_unknown_delta_types_logged: set[str] = set()


def _unknown_delta_keep(block: dict[str, Any], delta: dict[str, Any]) -> None:
    """A delta type this code does not render (a newer API feature): kept on its
    block, in the stored content, and logged once per type, never dropped."""
    block.setdefault("unrendered_deltas", []).append(delta)
    kind = str(delta.get("type"))
    if kind not in _unknown_delta_types_logged:
        _unknown_delta_types_logged.add(kind)
        logger.warning("Claude sent a delta of unknown type %r; kept, not shown", kind)


class ReplyStream:
    """One streamed reply. Iterate it for events; read partial usage if it is cut short.

        async with ReplyStream(request) as reply:
            async for event in reply: ...

    The SDK makes the request (and raises its status errors); the body is read
    with `sse.sse_events` and the message accumulated here from plain JSON. The
    SDK's `messages.stream()` helper rebuilds a snapshot on every event (about
    twice the CPU per token of its raw events), and its raw events build a
    pydantic model each (a third more than this), while a web process streams
    hundreds of replies at once.
    """

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.request_id = ""
        self.started_at = time.monotonic()
        self.first_token_at: float | None = None
        self._stream: Any = None
        self._model = request.model
        self._blocks: list[dict[str, Any]] = []
        self._usage: dict[str, Any] = {}
        self._stop_reason = ""
        self._stop_details: dict[str, Any] | None = None
        self._output_chars = 0
        self._ended = False  # message_stop seen

    async def __aenter__(self) -> ReplyStream:
        try:
            params = self.request.params
            messages = claude_client().beta.messages if "betas" in params else (
                claude_client().messages
            )
            self._stream = await messages.create(stream=True, **params)
        except anthropic.APIError as exc:
            raise claude_error_from_sdk(exc) from exc
        headers = self._stream.response.headers
        self.request_id = headers.get("request-id") or headers.get("x-amzn-requestid", "")
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._stream is not None:
            await self._stream.close()

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        try:
            body = self._stream.response.aiter_bytes()
            # Bedrock streams AWS event-stream frames; the others SSE.
            events = bedrock_events(body) if claude_provider() == "bedrock" else sse_events(body)
            async for name, data in events:
                if name == "content_block_delta":
                    event = json.loads(data)
                    delta = event["delta"]
                    kind = delta["type"]
                    block = self._blocks[event["index"]]
                    if kind == "text_delta":
                        block["text"] += delta["text"]
                        self._mark_token(delta["text"])
                        yield TextDelta(delta["text"])
                    elif kind == "thinking_delta":
                        block["thinking"] += delta["thinking"]
                        self._mark_token(delta["thinking"])
                        yield ThinkingDelta(delta["thinking"])
                    elif kind == "signature_delta":
                        block["signature"] = delta["signature"]
                    elif kind == "compaction_delta":
                        # The summary of the older turns: kept whole on its block,
                        # to be sent back as it came.
                        for key in ("content", "encrypted_content"):
                            if delta.get(key) is not None:
                                block[key] = (block.get(key) or "") + delta[key]
                    else:
                        _unknown_delta_keep(block, delta)
                elif name == "content_block_start":
                    self._blocks.append(_without_none(json.loads(data)["content_block"]))
                elif name == "message_start":
                    message = json.loads(data)["message"]
                    self._model = _catalog_id(message.get("model")) or self._model
                    # Vertex AI sends no request id: the message's id names the call.
                    self.request_id = self.request_id or str(message.get("id") or "")
                    self._usage = _without_none(message.get("usage") or {})
                elif name == "message_delta":
                    event = json.loads(data)
                    self._stop_reason = event["delta"].get("stop_reason") or ""
                    if event["delta"].get("stop_details"):
                        self._stop_details = event["delta"]["stop_details"]
                    # Cumulative counts: each present field replaces the earlier one.
                    self._usage.update(_without_none(event.get("usage") or {}))
                elif name == "error":
                    try:
                        body = json.loads(data)
                    except ValueError:
                        body = None
                    raise claude_error_from_body(body, status=None, request_id=self.request_id)
                elif name == "message_stop":
                    self._ended = True
                # ping, content_block_stop: nothing to do.
        except anthropic.APIError as exc:
            raise claude_error_from_sdk(exc) from exc
        except httpx2.TimeoutException as exc:
            # Mid-stream the transport's own errors come through as they are.
            raise ClaudeError("timeout", api_error_type="timeout") from exc
        except httpx2.TransportError as exc:
            raise ClaudeError("connection", api_error_type="connection_error") from exc
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            # A malformed event: the stream cannot be trusted past it.
            raise ClaudeError("upstream", detail="malformed stream event") from exc
        if not self._ended:
            # The body ended cleanly but the message did not (a connection closed
            # early, a proxy cutting it): the reply is partial, not complete.
            raise ClaudeError("connection", api_error_type="connection_error")
        yield ReplyFinished(
            content=self._blocks,
            usage=_usage_from_dict(self._usage),
            stop_reason=self._stop_reason,
            request_id=self.request_id,
            model=self._model,
            stop_details=self._stop_details,
            context_tokens=_context_tokens(self._usage),
        )

    def _mark_token(self, text: str) -> None:
        self._output_chars += len(text)
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    def partial_usage(self) -> Usage:
        """Usage of a reply that was cut short: input as the API reported it at the
        start, output estimated from the text received (about 4 characters a token)."""
        if not self._usage:
            return Usage()
        usage = _plain_usage(self._usage)
        return Usage(
            input_tokens=usage.input_tokens,
            output_tokens=max(usage.output_tokens, -(-self._output_chars // 4)),
            cache_write_5m_tokens=usage.cache_write_5m_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            cache_read_tokens=usage.cache_read_tokens,
        )


@dataclass(frozen=True)
class SummaryWritten:
    text: str
    usage: Usage
    request_id: str
    model: str


async def summary_write(request: ChatRequest) -> SummaryWritten:
    """One call, not streamed, whose answer is a summary (the older turns of a long
    conversation condensed, on a model without compaction). Raises ClaudeError."""
    params = {k: v for k, v in request.params.items() if k not in ("thinking", "output_config")}
    if params.get("max_tokens", 0) < request.max_tokens:
        params["max_tokens"] = request.max_tokens
    try:
        message = await claude_client().messages.create(**params)
    except anthropic.APIError as exc:
        raise claude_error_from_sdk(exc) from exc
    text = "".join(block.text for block in message.content if block.type == "text").strip()
    return SummaryWritten(
        text=text,
        usage=_usage_from_dict(message.usage.model_dump()),
        # Bedrock's request id is its own header; Vertex sends none (the message's id).
        request_id=getattr(message, "_request_id", None) or message.id or "",
        model=_catalog_id(message.model) or request.model,
    )
