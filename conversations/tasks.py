"""Celery tasks: thin wrappers that call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="conversations.tasks.generation_reap_task")
def generation_reap_task() -> int:
    """Mark replies left streaming by a dead process as interrupted (runs every minute)."""
    from conversations.services import generation_reap

    return generation_reap()
