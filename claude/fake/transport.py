"""An httpx2 transport that runs an ASGI app in-process and streams its body.

httpx2's own `ASGITransport` waits for the app to finish and hands over the
whole body at once, so a streamed reply arrives in one piece: time to first
token, cancellation and mid-stream errors cannot be observed. This transport
returns the response as soon as the app sends its headers, then yields body
chunks as the app sends them. Closing the response early tells the app the
client has gone (`http.disconnect`) and cancels it, as a dropped connection
would on a real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx2

_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], _Receive, _Send], Awaitable[None]]

# Queue items after the body: end of body, or the app's exception.
_END = None


class _StreamingBody(httpx2.AsyncByteStream):
    """Yields what the app sends; closing it early disconnects and cancels the app."""

    def __init__(
        self,
        queue: asyncio.Queue[bytes | BaseException | None],
        task: asyncio.Task[None],
        disconnected: asyncio.Event,
    ) -> None:
        self._queue = queue
        self._task = task
        self._disconnected = disconnected
        self._finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is _END:
                self._finished = True
                return
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            yield item

    async def aclose(self) -> None:
        self._disconnected.set()
        # After a complete body the app may still be tidying up: leave it be.
        if not self._finished and not self._task.done():
            self._task.cancel()
            # wait() rather than await: the app's CancelledError is expected and
            # must not be mistaken for the caller being cancelled.
            await asyncio.wait({self._task})


class StreamingASGITransport(httpx2.AsyncBaseTransport):
    """Like `httpx2.ASGITransport` (same scope and request handling), but streaming.

    Exceptions raised by the app surface to the caller: before the headers from
    the request call, after them from reading the body.
    """

    def __init__(
        self,
        app: ASGIApp,
        root_path: str = "",
        client: tuple[str, int] = ("127.0.0.1", 123),
    ) -> None:
        self.app = app
        self.root_path = root_path
        self.client = client

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        assert isinstance(request.stream, httpx2.AsyncByteStream)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for (k, v) in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": self.client,
            "root_path": self.root_path,
        }

        request_body_chunks = request.stream.__aiter__()
        request_complete = False
        # Set when the body is complete or the client closed the response:
        # from then on receive() reports http.disconnect.
        disconnected = asyncio.Event()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = (
            asyncio.get_running_loop().create_future()
        )
        send_body = request.method != "HEAD"

        async def receive() -> dict[str, Any]:
            nonlocal request_complete
            if request_complete:
                await disconnected.wait()
                return {"type": "http.disconnect"}
            try:
                body = await request_body_chunks.__anext__()
            except StopAsyncIteration:
                request_complete = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": body, "more_body": True}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                assert not started.done(), "http.response.start sent twice"
                started.set_result((message["status"], list(message.get("headers", []))))
            elif message["type"] == "http.response.body":
                assert started.done(), "body sent before http.response.start"
                if disconnected.is_set():
                    return
                body = message.get("body", b"")
                if body and send_body:
                    queue.put_nowait(body)
                if not message.get("more_body", False):
                    queue.put_nowait(_END)
                    disconnected.set()

        async def run_app() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                if not started.done():
                    started.set_exception(exc)
                else:
                    queue.put_nowait(exc)
                return
            if not started.done():
                started.set_exception(RuntimeError("The ASGI app returned without a response."))
            elif not disconnected.is_set():
                queue.put_nowait(_END)

        task = asyncio.create_task(run_app())
        try:
            status, headers = await started
        except BaseException:
            task.cancel()
            raise
        return httpx2.Response(
            status, headers=headers, stream=_StreamingBody(queue, task, disconnected)
        )
