"""The embedded default: a worker's verdict reaches the web process's sockets
although the in-memory channel layer cannot carry it across processes."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from conversations.attachments import relay
from conversations.models import Attachment
from infra.db_threads import db_async
from tests.conftest import receive_frames


@db_async
def _upload_committed(attachment_id):
    with transaction.atomic():
        relay.attachment_watch_after_commit(attachment_id)


def _check_ends_elsewhere(attachment_id) -> None:
    """What a worker in another process does: the row changes, and its broadcast
    goes nowhere (so none is sent here)."""
    Attachment.objects.filter(id=attachment_id).update(
        status=Attachment.Status.READY, kind="image", media_type="image/png", width=40, height=30
    )


@pytest.mark.django_db(transaction=True)
async def test_the_web_process_relays_a_check_that_ended_in_a_worker(alice, upload, socket_for):
    assert relay.relay_needed(), "the SQLite pass runs on the in-memory layer"
    attachment = await sync_to_async(upload)("diagram.png", b"\x89PNG not checked here")
    socket, connected = await socket_for(alice, attachment.conversation_id)
    assert connected
    await _upload_committed(attachment.id)
    await sync_to_async(_check_ends_elsewhere)(attachment.id)
    frames = await receive_frames(
        socket, until=lambda f: f["type"] == "attachment.updated", timeout=5
    )
    payload = frames[-1]["attachment"]
    assert (payload["id"], payload["status"], payload["width"]) == (str(attachment.id), "ready", 40)
    assert not relay._watches, "the watch ends with the check"


@pytest.mark.django_db(transaction=True)
async def test_a_deleted_upload_ends_its_watch_quietly(upload):
    attachment = await sync_to_async(upload)("notes.txt", b"hello\n")
    await _upload_committed(attachment.id)
    assert len(relay._watches) == 1
    await sync_to_async(Attachment.objects.filter(id=attachment.id).delete)()
    for _ in range(20):
        if not relay._watches:
            break
        await asyncio.sleep(0.2)
    assert not relay._watches


@pytest.mark.django_db(transaction=True)
@pytest.mark.real_backends
async def test_with_a_shared_channel_layer_nothing_is_watched(upload, settings):
    from channels.layers import get_channel_layer

    if relay.relay_needed():
        pytest.skip("about the Redis layer: runs in the Redis pass")
    assert get_channel_layer() is not None
    attachment = await sync_to_async(upload)("notes.txt", b"hello\n")
    await _upload_committed(attachment.id)
    assert not relay._watches


@pytest.mark.django_db(transaction=True)
async def test_the_sweep_of_unsent_uploads_tells_the_conversations_sockets(
    alice, upload, socket_for, settings
):
    """An upload never sent, swept after ATTACHMENT_UNSENT_KEEP_SECONDS: an open tab
    hears `attachment.deleted` for it and for nothing that was kept."""
    import datetime as dt

    from django.utils import timezone

    from conversations.attachments import pipeline

    old = timezone.now() - dt.timedelta(seconds=settings.ATTACHMENT_UNSENT_KEEP_SECONDS + 60)
    swept = await sync_to_async(upload)("old.txt", b"old\n")
    recent = await sync_to_async(upload)(
        "recent.txt", b"recent\n", conversation=await sync_to_async(lambda: swept.conversation)()
    )
    await sync_to_async(Attachment.objects.filter(id=swept.id).update)(created_at=old)
    socket, connected = await socket_for(alice, swept.conversation_id)
    assert connected

    assert await sync_to_async(pipeline.attachments_unsent_remove)() == 1
    frames = await receive_frames(
        socket, until=lambda f: f["type"] == "attachment.deleted", timeout=5
    )
    assert frames[-1] == {"type": "attachment.deleted", "attachment_id": str(swept.id)}
    assert await socket.receive_nothing(timeout=0.3)
    assert await sync_to_async(Attachment.objects.filter(id=recent.id).exists)()
