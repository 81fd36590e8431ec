"""The server-sent events reader (`claude.sse.sse_events`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable

import pytest

from claude.sse import sse_events

MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_01XyZ",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    },
}
TEXT_DELTA = {
    "type": "content_block_delta",
    "index": 0,
    "delta": {"type": "text_delta", "text": "Héllo, wörld \u2014 a ☃"},
}
# Two real Anthropic-style events, LF line endings, one ping and a comment between.
STREAM = (
    f"event: message_start\ndata: {json.dumps(MESSAGE_START)}\n\n"
    'event: ping\ndata: {"type": "ping"}\n\n'
    ": keep-alive\n\n"
    f"event: content_block_delta\ndata: {json.dumps(TEXT_DELTA, ensure_ascii=False)}\n\n"
).encode()
EXPECTED = [
    ("message_start", json.dumps(MESSAGE_START).encode()),
    ("ping", b'{"type": "ping"}'),
    ("content_block_delta", json.dumps(TEXT_DELTA, ensure_ascii=False).encode()),
]


async def feed(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def parse(chunks: Iterable[bytes]) -> list[tuple[str, bytes]]:
    return [event async for event in sse_events(feed(chunks))]


async def parse_bytes(raw: bytes) -> list[tuple[str, bytes]]:
    return await parse([raw])


def byte_chunks(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


# --- Chunk boundaries -----------------------------------------------------------


async def test_the_unsplit_stream_parses_to_its_events() -> None:
    events = await parse_bytes(STREAM)
    assert events == EXPECTED
    # The data is the JSON, byte for byte (multi-byte UTF-8 intact).
    assert json.loads(events[2][1])["delta"]["text"] == "Héllo, wörld \u2014 a ☃"


async def test_a_split_at_every_byte_offset_gives_the_same_events() -> None:
    for offset in range(len(STREAM) + 1):
        chunks = [STREAM[:offset], STREAM[offset:]]
        assert await parse(chunks) == EXPECTED, f"split at {offset}"


async def test_one_byte_chunks_give_the_same_events() -> None:
    assert await parse(byte_chunks(STREAM)) == EXPECTED


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"], ids=["crlf", "cr"])
async def test_other_line_endings_split_at_every_offset(newline: bytes) -> None:
    # A trailing event that is never finished keeps the last real terminator
    # from being the last byte of the stream (see the CR-at-end test below).
    raw = STREAM.replace(b"\n", newline) + b"event: unfinished"
    assert await parse_bytes(raw) == EXPECTED
    for offset in range(len(raw) + 1):
        assert await parse([raw[:offset], raw[offset:]]) == EXPECTED, f"split at {offset}"
    assert await parse(byte_chunks(raw)) == EXPECTED


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
async def test_events_are_yielded_as_soon_as_their_blank_line_arrives(newline: bytes) -> None:
    """An event does not wait for the next chunk (the reader must not hold it back)."""
    chunks = [
        b"event: a\ndata: 1\n\n".replace(b"\n", newline),
        b"event: b\ndata: 2\n\n".replace(b"\n", newline),
    ]
    pulled = 0

    async def counting() -> AsyncIterator[bytes]:
        nonlocal pulled
        for chunk in chunks:
            pulled += 1
            yield chunk

    seen: list[tuple[str, int]] = []
    async for name, _data in sse_events(counting()):
        seen.append((name, pulled))
    assert seen == [("a", 1), ("b", 2)]


# --- Line endings ---------------------------------------------------------------


async def test_crlf_line_endings() -> None:
    raw = b"event: one\r\ndata: x\r\n\r\nevent: two\r\ndata: y\r\n\r\n"
    assert await parse_bytes(raw) == [("one", b"x"), ("two", b"y")]


async def test_a_crlf_split_between_two_chunks_is_one_line_end() -> None:
    # If the CR and LF were taken as two line ends, the blank line would come
    # early and "data: y" would land in an event of its own, named "message".
    chunks = [b"event: one\r", b"\ndata: x\r", b"\ndata: y\r", b"\n\r", b"\n"]
    assert await parse(chunks) == [("one", b"x\ny")]


async def test_a_crlf_split_with_the_event_continuing_in_the_next_chunk() -> None:
    chunks = [b"event: one\r\ndata: x\r", b"\n\r", b"\nevent: two\r", b"\ndata: y\r\n\r\n"]
    assert await parse(chunks) == [("one", b"x"), ("two", b"y")]


async def test_bare_cr_line_endings() -> None:
    raw = b"event: one\rdata: x\rdata: z\r\revent: two\rdata: y\r\r: after"
    assert await parse_bytes(raw) == [("one", b"x\nz"), ("two", b"y")]


async def test_mixed_line_endings_in_one_stream() -> None:
    raw = b"event: one\r\ndata: x\rdata: y\n\r\nevent: two\ndata: z\r\r\n\n"
    assert await parse_bytes(raw) == [("one", b"x\ny"), ("two", b"z")]


async def test_cr_cr_across_chunks_is_a_blank_line() -> None:
    chunks = [b"event: one\rdata: x\r", b"\r", b"event: two\rdata: y\r", b"\r", b"x"]
    assert await parse(chunks) == [("one", b"x"), ("two", b"y")]


async def test_an_event_ended_by_cr_cr_at_the_end_of_the_stream() -> None:
    """The CR held back in case an LF follows is a line end once the stream ends."""
    assert await parse_bytes(b"event: one\rdata: x\r\r") == [("one", b"x")]


async def test_an_empty_event_name_is_message() -> None:
    assert await parse_bytes(b"event:\ndata: x\n\n") == [("message", b"x")]


# --- Fields ---------------------------------------------------------------------


async def test_multi_line_data_is_joined_with_newlines() -> None:
    raw = b"event: multi\ndata: first\ndata: second\ndata:\ndata: fourth\n\n"
    assert await parse_bytes(raw) == [("multi", b"first\nsecond\n\nfourth")]


async def test_data_with_and_without_a_space_after_the_colon() -> None:
    raw = b"data:tight\n\ndata: spaced\n\ndata:  two spaces\n\ndata: a:b: c\n\n"
    assert await parse_bytes(raw) == [
        ("message", b"tight"),
        ("message", b"spaced"),
        # Only the first space is removed.
        ("message", b" two spaces"),
        # Only the first colon separates the field from its value.
        ("message", b"a:b: c"),
    ]


async def test_event_with_and_without_a_space_after_the_colon() -> None:
    raw = b"event:tight\ndata: 1\n\nevent: spaced\ndata: 2\n\n"
    assert await parse_bytes(raw) == [("tight", b"1"), ("spaced", b"2")]


async def test_comments_id_and_retry_are_ignored() -> None:
    raw = (
        b": ping\n"
        b"id: 42\n"
        b"event: content_block_stop\n"
        b": data: not data, a comment\n"
        b"retry: 3000\n"
        b'data: {"type":"content_block_stop","index":0}\n'
        b"unknown: field\n"
        b"\n"
    )
    assert await parse_bytes(raw) == [
        ("content_block_stop", b'{"type":"content_block_stop","index":0}')
    ]


async def test_an_event_without_an_event_line_is_named_message() -> None:
    raw = b"data: plain\n\nevent: named\ndata: x\n\ndata: plain again\n\n"
    assert await parse_bytes(raw) == [
        ("message", b"plain"),
        ("named", b"x"),
        # The name does not carry over from the previous event.
        ("message", b"plain again"),
    ]


async def test_a_block_without_data_yields_nothing() -> None:
    raw = b"".join(
        [
            b"event: no_data\n\n",
            b": only a comment\n\n",
            b"id: 7\nretry: 10\n\n",
            b"\n\n\n",
            b"event: real\ndata: 1\n\n",
        ]
    )
    assert await parse_bytes(raw) == [("real", b"1")]


async def test_an_incomplete_event_at_the_end_is_dropped() -> None:
    for tail in (b'event: cut\ndata: {"partial"', b"event: cut\ndata: whole line\n"):
        raw = b"event: done\ndata: 1\n\n" + tail
        assert await parse_bytes(raw) == [("done", b"1")], tail
        assert await parse(byte_chunks(raw)) == [("done", b"1")], tail


async def test_empty_chunks_are_skipped_not_taken_as_the_end() -> None:
    chunks = [b"", b"event: a\r", b"", b"\ndata: 1\r", b"", b"\n\r", b"", b"\n", b""]
    assert await parse(chunks) == [("a", b"1")]
    assert await parse([b"", b""]) == []
    assert await parse([]) == []
