"""The app's own small vocabulary for a streamed reply from Claude.

Consumers, services and tests see `TextDelta`, `ThinkingDelta`, `ReplyFinished`
and `ClaudeError`, never SDK objects. `reply_stream()` is the one way to stream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2

from conversations.claude.catalog import model_info
from conversations.claude.client import claude_client
from conversations.claude.pricing import Usage

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


StreamEvent = TextDelta | ThinkingDelta | ReplyFinished

_HUMAN_MESSAGES = {
    "rate_limited": "Claude is getting too many requests right now. Wait a moment, then press Retry.",
    "overloaded": "Claude is overloaded right now. Your message is saved: press Retry in a moment.",
    "auth": "This site's Claude API key was refused. Ask an administrator to check it.",
    "permission": "This site's Claude account may not use this model. Ask an administrator.",
    "billing": "The Claude account behind this site has a billing problem. Ask an administrator.",
    "context_too_long": (
        "This conversation is too long for the model. Start a new conversation or shorten your message."
    ),
    "not_found": "Claude does not know this model. Pick another model for a new conversation.",
    "upstream": "Claude had an internal error. Press Retry.",
    "timeout": "Claude took too long to answer. Press Retry.",
    "connection": "Could not reach Claude. Check the connection, then press Retry.",
    "bad_request": "Claude rejected the request.",
}


class ClaudeError(Exception):
    """A failed call, with a code the UI can act on and a message a person can read."""

    def __init__(
        self,
        code: str,
        *,
        detail: str = "",
        api_error_type: str = "",
        request_id: str = "",
        status: int | None = None,
    ) -> None:
        self.code = code
        self.detail = detail
        self.api_error_type = api_error_type or code
        self.request_id = request_id
        self.status = status
        super().__init__(f"{code}: {detail}" if detail else code)

    @property
    def human_message(self) -> str:
        message = _HUMAN_MESSAGES.get(self.code, _HUMAN_MESSAGES["upstream"])
        if self.code == "bad_request" and self.detail:
            message = f"{message} ({self.detail})"
        return message

    @property
    def retryable(self) -> bool:
        return self.code in {"rate_limited", "overloaded", "upstream", "timeout", "connection"}


def _error_from_sdk(exc: anthropic.APIError) -> ClaudeError:
    if isinstance(exc, anthropic.APITimeoutError):
        return ClaudeError("timeout", api_error_type="timeout")
    if isinstance(exc, anthropic.APIConnectionError):
        return ClaudeError("connection", api_error_type="connection_error")
    status = getattr(exc, "status_code", None)
    request_id = getattr(exc, "request_id", None) or ""
    body = getattr(exc, "body", None)
    error_type = ""
    detail = ""
    if isinstance(body, dict):
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        error_type = str(error.get("type", ""))
        detail = str(error.get("message", ""))
    code = {
        "rate_limit_error": "rate_limited",
        "overloaded_error": "overloaded",
        "authentication_error": "auth",
        "permission_error": "permission",
        "billing_error": "billing",
        "not_found_error": "not_found",
        "request_too_large": "context_too_long",
        "api_error": "upstream",
        "timeout_error": "timeout",
        "invalid_request_error": "bad_request",
    }.get(error_type, "upstream" if (status or 500) >= 500 else "bad_request")
    if code == "bad_request" and "too long" in detail.lower():
        code = "context_too_long"
    return ClaudeError(
        code,
        detail=detail,
        api_error_type=error_type or f"http_{status}",
        request_id=request_id,
        status=status,
    )


def _usage_from_dict(usage: dict[str, Any]) -> Usage:
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


def request_params(request: ChatRequest) -> dict[str, Any]:
    """The SDK keyword arguments for a chat request, with prompt caching on.

    Breakpoints go on the system prompt and on the last block of the last
    message, so each turn reads the previous turns from the cache.
    """
    params: dict[str, Any] = {
        "model": request.model,
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


class ReplyStream:
    """One streamed reply. Iterate it for events; read partial usage if it is cut short.

        async with ReplyStream(request) as reply:
            async for event in reply: ...

    It reads the SDK's raw event stream and accumulates the message itself: the
    SDK's `messages.stream()` helper rebuilds a snapshot on every event, which
    costs about twice the CPU per token, and a web process streams hundreds of
    replies at once.
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
        self._output_chars = 0

    async def __aenter__(self) -> ReplyStream:
        try:
            self._stream = await claude_client().messages.create(
                stream=True, **request_params(self.request)
            )
        except anthropic.APIError as exc:
            raise _error_from_sdk(exc) from exc
        self.request_id = self._stream.response.headers.get("request-id", "")
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._stream is not None:
            await self._stream.close()

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        try:
            async for event in self._stream:
                kind = event.type
                if kind == "content_block_delta":
                    delta = event.delta
                    block = self._blocks[event.index]
                    if delta.type == "text_delta":
                        block["text"] += delta.text
                        self._mark_token(delta.text)
                        yield TextDelta(delta.text)
                    elif delta.type == "thinking_delta":
                        block["thinking"] += delta.thinking
                        self._mark_token(delta.thinking)
                        yield ThinkingDelta(delta.thinking)
                    elif delta.type == "signature_delta":
                        block["signature"] = delta.signature
                elif kind == "content_block_start":
                    self._blocks.append(event.content_block.model_dump(exclude_none=True))
                elif kind == "message_start":
                    self._model = event.message.model
                    self._usage = event.message.usage.model_dump(exclude_none=True)
                elif kind == "message_delta":
                    self._stop_reason = event.delta.stop_reason or ""
                    # Cumulative counts: each present field replaces the earlier one.
                    self._usage.update(event.usage.model_dump(exclude_none=True))
        except anthropic.APIError as exc:
            raise _error_from_sdk(exc) from exc
        except httpx2.TimeoutException as exc:
            # Mid-stream the SDK passes the transport's own errors through.
            raise ClaudeError("timeout", api_error_type="timeout") from exc
        except httpx2.TransportError as exc:
            raise ClaudeError("connection", api_error_type="connection_error") from exc
        yield ReplyFinished(
            content=self._blocks,
            usage=_usage_from_dict(self._usage),
            stop_reason=self._stop_reason,
            request_id=self.request_id,
            model=self._model,
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
        usage = _usage_from_dict(self._usage)
        return Usage(
            input_tokens=usage.input_tokens,
            output_tokens=max(usage.output_tokens, -(-self._output_chars // 4)),
            cache_write_5m_tokens=usage.cache_write_5m_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            cache_read_tokens=usage.cache_read_tokens,
        )
