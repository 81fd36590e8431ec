"""Celery tasks: thin wrappers that call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="conversations.tasks.generation_reap_task")
def generation_reap_task() -> int:
    """Mark replies left streaming by a dead process as interrupted (runs every minute)."""
    from conversations.services import generation_reap

    return generation_reap()


@shared_task(
    name="conversations.tasks.attachment_check_task",
    # A worker killed mid-check leaves the message unacknowledged, so the broker
    # delivers it again (settings: acks late, reject on worker lost).
    acks_late=True,
)
def attachment_check_task(attachment_id: str) -> str:
    """Check and prepare one uploaded file; running it twice changes nothing."""
    from conversations.attachments.pipeline import attachment_check

    return attachment_check(attachment_id=attachment_id)
