"""The sweeper task: wired to the service and on the beat schedule.

It runs here through Celery's own task machinery (`apply`), not a second live
worker: two `start_worker` threads in one test process do not both consume
(the second never sees its queue), and the reaper's test already proves the
worker + filesystem-broker wiring both tasks share.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.utils import timezone

from conversations import services
from conversations.models import Message
from usage.models import BudgetCounter, BudgetReservation
from usage.tasks import budget_sweep_task


@pytest.mark.django_db
def test_sweeper_task_releases_the_hold_of_a_killed_process(alice, make_conversation):
    """A reply whose process died leaves a hold; the beat task expires it."""
    sent = services.message_send(conversation=make_conversation(), author=alice, text="hi")
    Message.objects.filter(id=sent.assistant_message.id).update(status="interrupted")
    BudgetReservation.objects.update(created_at=timezone.now() - dt.timedelta(hours=1))
    assert budget_sweep_task.apply().get() == 1
    assert BudgetReservation.objects.get().status == BudgetReservation.Status.EXPIRED
    assert BudgetCounter.objects.get(scope=f"user:{alice.pk}").reserved_usd == 0


def test_sweeper_is_on_the_beat_schedule():
    entries = {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "usage.tasks.budget_sweep_task" in entries
