"""The channel layer of a single web process (no REDIS_URL)."""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer


class LocalChannelLayer(InMemoryChannelLayer):
    """Channels' in-memory layer, sweeping expired messages at most once a second.

    The stock layer scans every channel and group on every send and receive, so
    each frame costs O(open sockets): with 200 streams that scan was a quarter of
    the web process's CPU. Expiry is a safety net for channels nobody reads, so a
    sweep per second keeps it without paying for it per frame.
    """

    sweep_interval_seconds = 1.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < self.sweep_interval_seconds:
            return
        self._last_sweep = now
        super()._clean_expired()
