"""An offline fake of the Anthropic Messages API, for tests, demos and benchmarks.

In-process: `httpx2.AsyncClient(transport=StreamingASGITransport(app=create_fake_app()))`
as the SDK's `http_client`; standalone: `python manage.py fakeclaude --port 8765`.
See docs/fake-claude.md.
"""

from __future__ import annotations

from .app import FakeClaude, create_fake_app, fake_app_from_env
from .transport import StreamingASGITransport

__all__ = ["FakeClaude", "StreamingASGITransport", "create_fake_app", "fake_app_from_env"]
