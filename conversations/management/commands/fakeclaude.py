"""`python manage.py fakeclaude`: serve the offline fake Claude API over HTTP.

For demos and load tests: point the site (or any SDK client) at it with
`ANTHROPIC_BASE_URL=http://127.0.0.1:8765`. Logging is kept to warnings and the
access log is off, because a benchmark pushes hundreds of streams through it.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

import uvicorn
from django.core.management.base import BaseCommand

from claude.fake import fake_app_from_env


class Command(BaseCommand):
    help = "Serve the offline fake of the Anthropic Messages API (see docs/fake-claude.md)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8765, help="Port (default 8765).")
        parser.add_argument(
            "--tps",
            type=float,
            default=None,
            help="Output tokens per second; 0 = as fast as possible "
            "(default: $FAKE_CLAUDE_TPS or 40).",
        )
        parser.add_argument(
            "--ttft-ms",
            type=int,
            default=None,
            help="Time to first token in ms (default: $FAKE_CLAUDE_TTFT_MS or 300).",
        )
        parser.add_argument(
            "--batch-seconds",
            type=float,
            default=None,
            help="Seconds a Message Batch takes to end (default: $FAKE_CLAUDE_BATCH_SECONDS or 5).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        app = fake_app_from_env()
        if options["tps"] is not None:
            app.default_tps = options["tps"]
        if options["ttft_ms"] is not None:
            app.default_ttft_ms = options["ttft_ms"]
        if options["batch_seconds"] is not None:
            app.batches.delay_seconds = options["batch_seconds"]
        host, port = options["host"], options["port"]
        self.stdout.write(
            f"Fake Claude API on http://{host}:{port} "
            f"({app.default_tps:g} tokens/s, {app.default_ttft_ms} ms to first token)"
        )
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
