"""The web process: daphne, on uvloop.

    python -m chatsite.web -b 0.0.0.0 -p 8000 chatsite.asgi:application

It takes daphne's own arguments. uvloop is the event loop that Twisted, and so
daphne, Channels and every streaming reply, runs on: its C loop, timers and
sockets cut the web process's CPU per frame and per upstream event enough to
hold 200 streams at p99 121/51 ms added time to first token where the stock
loop gave 440/344 ms (the same host, alternate runs of `make bench`).
"""

from __future__ import annotations

import asyncio


def main() -> None:
    try:
        import uvloop
    except ImportError:  # not built for this platform (Windows): the stock loop
        uvloop = None
    if uvloop is not None:
        # Before daphne is imported: it makes its event loop at import time.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from daphne.cli import CommandLineInterface

    _websocket_errors_close_cleanly()
    _request_bodies_left_to_django()
    CommandLineInterface.entrypoint()


def _websocket_errors_close_cleanly() -> None:
    """A websocket that breaks the protocol (a message over daphne's 1 MiB
    `--websocket-max-message-size`) gets a close frame with the reason (1009,
    "message too big"), not a dropped TCP connection.

    Autobahn, under daphne, drops the connection by default (`failByDrop`) and
    daphne has no option for it: a client then sees 1006 and no reason
    (measured: 1.1, 3 and 9 MB frames all ended that way). Hand-written for that.
    """
    import daphne.server
    from daphne.ws_protocol import WebSocketFactory

    class CleanCloseWebSocketFactory(WebSocketFactory):
        def setProtocolOptions(self, **options):  # noqa: N802 (autobahn's name)
            super().setProtocolOptions(failByDrop=False, **options)

    daphne.server.WebSocketFactory = CleanCloseWebSocketFactory


def _request_bodies_left_to_django() -> None:
    """Twisted's Request parses every multipart POST body itself (into `args`,
    with the stdlib `email` parser) before daphne hands the body on; daphne never
    reads what it parsed. For a 30 MB upload that cost the web process 360 MB of
    memory at its peak (measured with tracemalloc: the `email` parser's copies),
    and 33 MB without it. Django parses the body anyway, streaming, to disk.

    And Twisted receives the whole body before daphne sees the request at all,
    then daphne queues all of it for the application at once: a 100 MiB body
    cost the process about 100 MiB, signed in or not, before any check of ours
    could run. No request on this site takes a body past the upload's
    (`uploads.attachment_request_max_bytes`), so one whose Content-Length says
    more is answered 413 as soon as its headers are in (`gotLength`, which the
    channel calls before the first byte of body), and a body without a length
    (chunked) is cut once it passes that size.
    """
    import daphne.http_protocol

    class BoundedWebRequest(daphne.http_protocol.WebRequest):
        refused = False
        body_received = 0

        def __init__(self, *args, **kwargs):
            kwargs["parsePOSTFormSubmission"] = False
            super().__init__(*args, **kwargs)

        def gotLength(self, length):  # noqa: N802 (Twisted's name)
            if length is not None and length > _request_max_bytes():
                super().gotLength(0)  # an empty body for what is never read
                self._refuse(length)
                return
            super().gotLength(length)

        def handleContentChunk(self, data):  # noqa: N802
            if self.refused:
                return  # the rest of what the client had already sent: dropped
            self.body_received += len(data)
            if self.body_received > _request_max_bytes():
                self.content.close()
                self._refuse(None)
                return
            super().handleContentChunk(data)

        def requestReceived(self, command, path, version):  # noqa: N802
            if not self.refused:
                super().requestReceived(command, path, version)

        def _refuse(self, length: int | None) -> None:
            """413 with the upload's JSON reason, written straight to the socket
            (the request never reaches the application), then the connection is
            closed: the rest of the body is never read."""
            import json

            from conversations.attachments.uploads import attachment_too_large

            self.refused = True
            body = json.dumps(attachment_too_large(length).as_json()).encode()
            self.channel.transport.write(
                b"HTTP/1.1 413 Request Entity Too Large\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (len(body), body)
            )
            _close_after_linger(self.channel)

    # daphne's HTTPFactory looks the class up here for every connection.
    daphne.http_protocol.WebRequest = BoundedWebRequest


def _request_max_bytes() -> int:
    # Read per request (settings are set up once daphne has loaded the app).
    from conversations.attachments.uploads import attachment_request_max_bytes

    return attachment_request_max_bytes()


# How long a refused request's connection stays open, reading and dropping what
# the client keeps sending, before it is closed. Closed at once, the unread
# bytes make the kernel answer with a reset, and a client still sending (a
# browser's upload) may lose the 413 it was sent and report a network error.
REFUSED_LINGER_SECONDS = 2.0


def _close_after_linger(channel) -> None:
    from twisted.internet import reactor

    channel.transport.loseWriteConnection()  # the answer, then end of stream
    reactor.callLater(REFUSED_LINGER_SECONDS, channel.transport.abortConnection)


if __name__ == "__main__":
    main()
