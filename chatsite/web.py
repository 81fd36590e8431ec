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
    """
    import daphne.http_protocol

    class FormsUnparsedWebRequest(daphne.http_protocol.WebRequest):
        def __init__(self, *args, **kwargs):
            kwargs["parsePOSTFormSubmission"] = False
            super().__init__(*args, **kwargs)

    # daphne's HTTPFactory looks the class up here for every connection.
    daphne.http_protocol.WebRequest = FormsUnparsedWebRequest


if __name__ == "__main__":
    main()
