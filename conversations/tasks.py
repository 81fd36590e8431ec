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
    # A failure that is not the file's (storage, the checking process) is tried
    # again; the attachment's own attempt count decides when it is rejected.
    autoretry_for=(Exception,),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def attachment_check_task(attachment_id: str, language: str | None = None) -> str:
    """Check and prepare one uploaded file; running it twice changes nothing.

    `language` is the uploader's (the upload request's): a rejection's reason is
    stored in it. Without one (a message queued before the argument existed, or
    by the sweep, which has no request) it is LANGUAGE_CODE."""
    from django.conf import settings
    from django.utils import translation

    from conversations.attachments.pipeline import attachment_check

    with translation.override(language or settings.LANGUAGE_CODE):
        return attachment_check(attachment_id=attachment_id)


@shared_task(name="conversations.tasks.attachments_sweep_task")
def attachments_sweep_task() -> int:
    """Start again, or reject, checks whose worker died (every minute)."""
    from conversations.attachments.pipeline import attachments_sweep

    return attachments_sweep()


@shared_task(name="conversations.tasks.attachments_unsent_remove_task")
def attachments_unsent_remove_task() -> int:
    """Remove uploads never sent, with their files (every hour)."""
    from conversations.attachments.pipeline import attachments_unsent_remove

    return attachments_unsent_remove()


@shared_task(name="conversations.tasks.conversation_title_task")
def conversation_title_task(conversation_id: str, reply_id: str | None = None) -> str | None:
    """Title a conversation after its first answer; running it twice changes nothing."""
    from conversations.titles import conversation_title_generate

    return conversation_title_generate(conversation_id=conversation_id, reply_id=reply_id)
