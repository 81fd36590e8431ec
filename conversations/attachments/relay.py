"""A worker's verdict on a file, to this web process's sockets, where the channel
layer cannot carry it.

On the embedded default (no REDIS_URL) every process has its own in-memory
channel layer, so the `attachment.updated` a worker broadcasts when a check ends
reaches no socket: the worker has none. The web process that took the upload
then watches the row until its check ends and broadcasts the frame itself. With
Redis the worker's own frame arrives, and this does nothing.

Hand-written: channels has no cross-process layer that needs no server, and one
row read every half second per file being checked costs a laptop nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from channels.layers import get_channel_layer
from django.conf import settings

from conversations.models import Attachment
from conversations.streaming.frames import attachment_updated
from conversations.streaming.publisher import broadcast
from infra.channel_layers import LocalChannelLayer
from infra.db_threads import after_commit_on_loop, db_async
from infra.rows import rows_select

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5

# Strong references to the watches running on this process's loop (it keeps weak ones).
_watches: set[asyncio.Task] = set()


def relay_needed() -> bool:
    """True when a worker's broadcasts cannot reach this process's sockets."""
    return isinstance(get_channel_layer(), LocalChannelLayer)


def attachment_watch_after_commit(attachment_id: uuid.UUID) -> None:
    """Once the upload commits, watch its check from this web process (only where
    the channel layer is process-local)."""
    if not relay_needed():
        return

    async def start() -> None:
        # after_commit_on_loop waits for this; the watch itself runs on.
        task = asyncio.ensure_future(_watch(attachment_id))
        _watches.add(task)
        task.add_done_callback(_watches.discard)

    after_commit_on_loop(start)


_FIELDS = ("id", "conversation", "name", "size", "status", "reason", "kind", "media_type",
           "pages", "width", "height", "message")


@db_async
def _attachment_read(attachment_id: uuid.UUID) -> Attachment | None:
    found = rows_select(Attachment, _FIELDS, where={"id": attachment_id})
    return found[0] if found else None


async def _watch(attachment_id: uuid.UUID) -> None:
    # As long as the sweep may still retry it; past that it is rejected anyway.
    deadline = settings.ATTACHMENT_CHECK_STALE_SECONDS * (settings.ATTACHMENT_CHECK_MAX_ATTEMPTS + 1)
    for _ in range(int(deadline / POLL_SECONDS)):
        await asyncio.sleep(POLL_SECONDS)
        try:
            attachment = await _attachment_read(attachment_id)
        except Exception:
            logger.exception("Could not read attachment %s to relay its check", attachment_id)
            continue
        if attachment is None:
            return  # deleted: its conversation's sockets were told, or it was removed
        if attachment.status != Attachment.Status.CHECKING:
            await broadcast(attachment.conversation_id, attachment_updated(attachment))
            return
