"""Celery tasks: thin wrappers that call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="usage.tasks.budget_sweep_task")
def budget_sweep_task() -> int:
    """Release budget holds left open by a process that died mid-call (every 5 minutes)."""
    from usage.budgets import budget_sweep

    return budget_sweep()
