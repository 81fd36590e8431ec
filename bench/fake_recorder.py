"""The standalone fake Claude, with a stopwatch on its wire.

`python -m bench.fake_recorder --port P` serves the same fake app as
`manage.py fakeclaude` (`create_fake_app`, under uvicorn, no access log), wrapped
in a thin ASGI layer that records, for every `POST /v1/messages`:

* when the request arrived (`time.time()`), and a marker found in its body
  (`r<run>s<stream>x`, put in the user's text by the benchmark), and
* every response body chunk with the time it was handed to the server.

Nothing is parsed while streaming (the fake must stay lean); `GET /bench/records`
parses the recorded SSE bytes afterwards and returns, per marker, the request
time and the cumulative length of text emitted after each chunk, then forgets
them. So the benchmark knows exactly when each token left the fake.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import time
from typing import Any

MARKER = re.compile(rb"r\d+s\d+x")


class Recorder:
    def __init__(self, app: Any) -> None:
        self.app = app
        # marker -> (request time, [(send time, body bytes), ...])
        self.records: dict[str, tuple[float, list[tuple[float, bytes]]]] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/bench/records":
            await self._send_records(send)
            return
        arrived = time.time()
        body: list[bytes] = []
        chunks: list[tuple[float, bytes]] = []

        async def receive_recorded() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
            return message

        async def send_recorded(message: dict) -> None:
            if message["type"] == "http.response.body":
                chunks.append((time.time(), message.get("body", b"")))
            await send(message)

        try:
            await self.app(scope, receive_recorded, send_recorded)
        finally:
            found = MARKER.search(b"".join(body))
            if found:
                self.records[found.group().decode()] = (arrived, chunks)

    async def _send_records(self, send: Any) -> None:
        records, self.records = self.records, {}
        out = {marker: _parse(arrived, chunks) for marker, (arrived, chunks) in records.items()}
        payload = json.dumps(out).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _parse(arrived: float, chunks: list[tuple[float, bytes]]) -> dict[str, Any]:
    """Cumulative emitted text length after each chunk that carried text."""
    emitted: list[tuple[float, int]] = []
    length = 0
    buffer = b""
    for sent_at, data in chunks:
        buffer += data
        *events, buffer = buffer.split(b"\n\n")
        grew = False
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data: ") and b'"text_delta"' in line:
                    length += len(json.loads(line[6:])["delta"]["text"])
                    grew = True
        if grew:
            emitted.append((sent_at, length))
    return {"arrived": arrived, "emitted": emitted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tps", type=float, default=50)
    parser.add_argument("--ttft-ms", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django
    import uvicorn

    django.setup()
    from claude.fake import create_fake_app

    app = Recorder(create_fake_app(default_tps=args.tps, default_ttft_ms=args.ttft_ms))
    # The harness must not add pauses of its own to what it measures: a full
    # collection over the growing records stalled this process for 120 ms, which
    # showed up as "added time to first token". Records are freed by /bench/records.
    gc.collect()
    gc.freeze()
    gc.disable()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
