"""Amazon Bedrock's streamed reply: the AWS event-stream binary framing.

`invoke-with-response-stream` answers `application/vnd.amazon.eventstream`:
binary messages, each

    total length (4) | headers length (4) | prelude CRC32 (4) | headers | payload | CRC32 (4)

with string headers `:message-type` (`event`, `exception` or `error`),
`:event-type` (`chunk`) or `:exception-type` (`throttlingException`, ...), and
`:content-type`. A `chunk`'s payload is JSON, `{"bytes": "<base64>"}`, and the
bytes are one Messages stream event (`{"type": "content_block_delta", ...}`).

`bedrock_events` reads them (botocore's `EventStreamBuffer` checks the framing
and both CRCs) into the `(name, data)` pairs `claude.sse.sse_events` yields for
an SSE stream, so `ReplyStream` treats both alike: an exception frame becomes
an `error` event, as the SDK's own decoder (`AWSEventStreamDecoder`) makes it.
`frame` writes one message (the fake uses it).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import AsyncIterator

_STRING = 7  # the header value type of a string


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string headers."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack("!B", len(raw_name)) + raw_name
        encoded += struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def chunk_frame(event: dict, padding: str = "") -> bytes:
    """A `chunk` event carrying one Messages stream event, base64 in JSON.

    Bedrock pads each payload with a `p` field of letters (so sizes do not tell
    the text); readers ignore it."""
    body = {"bytes": base64.b64encode(json.dumps(event).encode()).decode("ascii")}
    if padding:
        body["p"] = padding
    return frame(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"},
        json.dumps(body).encode(),
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    """An exception frame (`throttlingException`, `modelStreamErrorException`, ...)."""
    return frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode(),
    )


async def bedrock_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, str]]:
    """(event name, JSON data) for each message of an event stream.

    Raises ValueError (botocore's framing errors are ValueErrors too) on a
    broken frame: the stream cannot be trusted past it."""
    from botocore.eventstream import EventStreamBuffer, ParserError

    buffer = EventStreamBuffer()
    async for chunk in chunks:
        buffer.add_data(chunk)
        try:
            messages = list(buffer)
        except ParserError as exc:
            raise ValueError(f"malformed event stream: {exc}") from exc
        for message in messages:
            headers = message.headers
            kind = headers.get(":message-type")
            if kind in ("exception", "error"):
                yield "error", _error_data(headers, message.payload)
                continue
            if headers.get(":event-type") != "chunk":
                continue
            raw = base64.b64decode(json.loads(message.payload)["bytes"])
            data = raw.decode()
            name = json.loads(data).get("type")
            if isinstance(name, str):
                yield name, data


def _error_data(headers: dict, payload: bytes) -> str:
    """An exception frame as the API's mid-stream `error` event data."""
    error_type = headers.get(":exception-type") or headers.get(":error-code") or ""
    message = headers.get(":error-message") or ""
    try:
        body = json.loads(payload) if payload else {}
        message = body.get("message") or body.get("Message") or message
    except ValueError:
        pass
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message}})
