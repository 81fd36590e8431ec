"""The Claude gateway (`ReplyStream`) over a real TCP socket.

These go through the same client the site builds for the real API: the SDK on
its aiohttp transport. Once against the offline fake run standalone (as
`manage.py fakeclaude`), and once against a tiny raw server that misbehaves the
way a network does: it cuts the connection mid-stream, or answers 529.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from claude.client import claude_client, claude_client_reset
from claude.stream import (
    ChatRequest,
    ClaudeError,
    ReplyFinished,
    ReplyStream,
    StreamEvent,
    TextDelta,
)

MODEL = "claude-sonnet-5-5"


def chat_request(text: str) -> ChatRequest:
    return ChatRequest(
        model=MODEL,
        messages=[{"role": "user", "content": [{"type": "text", "text": text}]}],
        max_tokens=1024,
    )


@pytest.fixture
async def gateway_to(settings) -> AsyncIterator[Callable[[str], None]]:
    """Point the gateway at a base URL, as the real API provider (aiohttp transport).

    The SDK client (and its aiohttp session) is closed in this test's event loop.
    """

    def point_at(base_url: str) -> None:
        settings.CLAUDE_PROVIDER = "anthropic"
        settings.ANTHROPIC_API_KEY = "test-key"
        settings.ANTHROPIC_BASE_URL = base_url
        settings.CLAUDE_MAX_RETRIES = 0
        settings.CLAUDE_TIMEOUT_SECONDS = 10.0
        claude_client_reset()

    yield point_at
    await claude_client().close()
    claude_client_reset()


async def collect(request: ChatRequest) -> tuple[list[StreamEvent], ClaudeError | None]:
    """Every event the gateway yields for `request`, and the ClaudeError that ended it."""
    events: list[StreamEvent] = []
    try:
        async with ReplyStream(request) as reply:
            async for event in reply:
                events.append(event)
    except ClaudeError as exc:
        return events, exc
    return events, None


# --- The standalone fake --------------------------------------------------------


# `standalone_server`: tests/conversations/conftest.py


async def test_echo_streams_through_the_gateway_over_a_socket(
    standalone_server: str, gateway_to: Callable[[str], None]
) -> None:
    gateway_to(standalone_server)

    events, error = await collect(
        chat_request("[[fake echo=1 tps=0 ttft_ms=0]] hello over a socket")
    )

    assert error is None
    deltas = [event for event in events if isinstance(event, TextDelta)]
    assert deltas
    assert "".join(delta.text for delta in deltas) == "hello over a socket"
    # Deltas first, then exactly one ReplyFinished, last.
    assert events[: len(deltas)] == deltas
    assert len(events) == len(deltas) + 1
    finished = events[-1]
    assert isinstance(finished, ReplyFinished)
    assert finished.stop_reason == "end_turn"
    assert finished.usage.input_tokens > 0
    assert finished.usage.output_tokens > 0
    assert finished.request_id.startswith("req_")
    assert finished.model == MODEL
    assert finished.content == [{"type": "text", "text": "hello over a socket"}]


async def test_a_mid_stream_error_event_from_the_fake_is_a_claude_error(
    standalone_server: str, gateway_to: Callable[[str], None]
) -> None:
    gateway_to(standalone_server)

    events, error = await collect(
        chat_request("[[fake error=overloaded_error error_at=5 tps=0]] Tell me a story")
    )

    assert isinstance(error, ClaudeError)
    assert error.code == "overloaded"
    assert error.api_error_type == "overloaded_error"
    assert error.request_id.startswith("req_")
    assert error.retryable
    assert events and all(isinstance(event, TextDelta) for event in events)
    assert "".join(event.text for event in events).strip()


# --- A raw server that misbehaves -------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """One HTTP/1.1 request: the request line, the headers (lower-cased) and the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *header_lines = head[:-4].split(b"\r\n")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return request_line, headers, body


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start a server on a free port that serves each connection with a handler.

    `start(handler)` returns the server's base URL; servers close at teardown.
    """
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


START_OF_A_REPLY = [
    sse(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01CutCutCut",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 21,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                    "service_tier": "standard",
                },
            },
        },
    ),
    sse(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    sse(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
    ),
    sse(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": ", wor"},
        },
    ),
]


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def hang_up(writer: asyncio.StreamWriter, how: str) -> None:
    """End the connection with a FIN ("close") or a RST ("abort")."""
    await writer.drain()
    if how == "abort":
        writer.transport.abort()
    else:
        writer.close()
        await writer.wait_closed()


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_a_connection_cut_mid_stream_is_a_connection_error(
    how: str,
    raw_server: Callable[[Handler], Awaitable[str]],
    gateway_to: Callable[[str], None],
) -> None:
    received: list[tuple[bytes, dict[str, str], bytes]] = []

    async def cut_after_two_deltas(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        received.append(await read_request(reader))
        writer.write(
            b"HTTP/1.1 200 OK\r\n"
            b"content-type: text/event-stream\r\n"
            b"request-id: req_cut\r\n"
            b"transfer-encoding: chunked\r\n"
            b"\r\n"
        )
        for event in START_OF_A_REPLY:
            writer.write(chunk(event))
            await writer.drain()
        # No content_block_stop, message_delta, message_stop, nor the final 0-chunk.
        # (The pause lets the client read the deltas before a RST could discard them.)
        await asyncio.sleep(0.05)
        await hang_up(writer, how)

    gateway_to(await raw_server(cut_after_two_deltas))
    events: list[StreamEvent] = []
    with pytest.raises(ClaudeError) as caught:
        async with ReplyStream(chat_request("Say hello")) as reply:
            assert reply.request_id == "req_cut"
            async for event in reply:
                events.append(event)

    assert type(caught.value) is ClaudeError
    assert caught.value.code == "connection"
    assert caught.value.api_error_type == "connection_error"
    assert caught.value.retryable
    assert events == [TextDelta("Hello"), TextDelta(", wor")]
    # What was received so far is still counted.
    usage = reply.partial_usage()
    assert usage.input_tokens == 21
    assert usage.output_tokens >= 1
    # The request really went over the wire, as the SDK sends it.
    (request_line, headers, body) = received[0]
    assert request_line == b"POST /v1/messages HTTP/1.1"
    assert headers["authorization"] == "Bearer test-key"
    sent = json.loads(body)
    assert sent["stream"] is True
    assert sent["model"] == MODEL


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_a_close_delimited_stream_cut_mid_reply_is_an_error(
    how: str,
    raw_server: Callable[[Handler], Awaitable[str]],
    gateway_to: Callable[[str], None],
) -> None:
    async def cut_without_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\n"
            b"content-type: text/event-stream\r\n"
            b"request-id: req_cut\r\n"
            b"connection: close\r\n"
            b"\r\n"
        )
        for event in START_OF_A_REPLY:
            writer.write(event)
            await writer.drain()
        await asyncio.sleep(0.05)
        await hang_up(writer, how)

    gateway_to(await raw_server(cut_without_length))
    events, error = await collect(chat_request("Say hello"))

    assert events[:2] == [TextDelta("Hello"), TextDelta(", wor")]
    assert not any(isinstance(event, ReplyFinished) for event in events)
    # Without message_stop the body ending cleanly is still a cut connection.
    assert type(error) is ClaudeError and error.code == "connection"


async def test_a_529_before_the_stream_is_an_overloaded_error(
    raw_server: Callable[[Handler], Awaitable[str]], gateway_to: Callable[[str], None]
) -> None:
    requests = 0

    async def overloaded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        nonlocal requests
        await read_request(reader)
        requests += 1
        body = json.dumps(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        ).encode()
        writer.write(
            b"HTTP/1.1 529 Overloaded\r\n"
            b"content-type: application/json\r\n"
            b"request-id: req_529\r\n"
            + f"content-length: {len(body)}\r\n".encode()
            + b"\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    gateway_to(await raw_server(overloaded))
    with pytest.raises(ClaudeError) as caught:
        async with ReplyStream(chat_request("Say hello")):
            pytest.fail("the stream should not start")

    error = caught.value
    assert type(error) is ClaudeError
    assert error.code == "overloaded"
    assert error.api_error_type == "overloaded_error"
    assert error.status == 529
    assert error.detail == "Overloaded"
    assert error.request_id == "req_529"
    assert requests == 1  # CLAUDE_MAX_RETRIES=0: no retry


async def test_an_unknown_delta_type_is_kept_and_logged(
    raw_server: Callable[[Handler], Awaitable[str]],
    gateway_to: Callable[[str], None],
    caplog,
) -> None:
    """A delta type newer than this code (say a citation) is neither shown nor
    dropped: it stays on its block in the stored content, and the log says so."""
    citation = {"type": "citations_delta", "citation": {"type": "char_location", "cited_text": "x"}}
    rest = [
        sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": citation}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse(
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
        ),
        sse("message_stop", {"type": "message_stop"}),
    ]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await read_request(reader)
        body = b"".join([*START_OF_A_REPLY, *rest])
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nrequest-id: req_new\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await hang_up(writer, "close")

    gateway_to(await raw_server(answer))
    with caplog.at_level("WARNING", logger="claude.stream"):
        events, error = await collect(chat_request("Cite something"))
    assert error is None
    finished = events[-1]
    assert isinstance(finished, ReplyFinished)
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("Hello"), TextDelta(", wor")]
    assert finished.content[0]["text"] == "Hello, wor"
    assert finished.content[0]["unrendered_deltas"] == [citation]
    assert "citations_delta" in caplog.text
