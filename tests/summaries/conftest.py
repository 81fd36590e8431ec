"""Fixtures for batch summaries: each test's own fake batch store, conversations
in Acme, and a driver that runs a job's steps here, in order, as workers would."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest

from conversations.models import Conversation, Message


@pytest.fixture(autouse=True)
def _own_batches(tmp_path, monkeypatch, settings):
    """The in-process fake keeps this test's batches in a folder of its own, and
    ends them at once."""
    from claude.client import claude_client_reset

    monkeypatch.setenv("FAKE_CLAUDE_BATCHES_DIR", str(tmp_path / "fake-batches"))
    monkeypatch.setenv("FAKE_CLAUDE_BATCH_SECONDS", "0")
    settings.SUMMARIES_SUBMIT_LEASE_SECONDS = 0
    settings.SUMMARIES_ORPHAN_SKEW_SECONDS = 0
    claude_client_reset()
    yield
    claude_client_reset()


@pytest.fixture
def acme(world):
    from accounts.models import Team

    return Team.objects.get(slug="acme")


@pytest.fixture
def globex(world):
    from accounts.models import Team

    return Team.objects.get(slug="globex")


@pytest.fixture
def chat(alice):
    """A conversation of `owner` (alice) with a question and an answer; `text` goes
    into the question (a fake control directive, for example)."""

    def make(text: str = "How do we ship the billing page?", *, owner=None, title="Billing"):
        from accounts.services import user_primary_team

        owner = owner or alice
        conversation = Conversation.objects.create(
            owner=owner, team=user_primary_team(user=owner), model="claude-sonnet-5-5", title=title
        )
        Message.objects.create(
            conversation=conversation,
            position=0,
            role="user",
            text=text,
            content=[{"type": "text", "text": text}],
        )
        Message.objects.create(
            conversation=conversation,
            position=1,
            role="assistant",
            text="Split it in two steps; Dana owns the first.",
        )
        return conversation

    return make


def run_job(job_id: int) -> None:
    """Every step of a job, here and now: build, submit, poll to the end, ingest."""
    from summaries import services
    from summaries.models import SummaryBatch

    services.summary_job_build(job_id=job_id)
    for batch in SummaryBatch.objects.filter(job_id=job_id, status="pending"):
        services.summary_batch_submit(batch_id=batch.pk)
    poll_and_ingest(job_id)


def poll_and_ingest(job_id: int) -> None:
    from summaries import services
    from summaries.models import SummaryBatch

    for batch in SummaryBatch.objects.filter(job_id=job_id, status="submitted"):
        for _ in range(20):
            SummaryBatch.objects.filter(pk=batch.pk).update(next_poll_at=None)
            services.summary_batch_poll(batch_id=batch.pk)
            batch.refresh_from_db()
            if batch.status == "ended":
                break
        services.summary_batch_ingest(batch_id=batch.pk)


HAIKU_IN = Decimal("0.10")
HAIKU_OUT = Decimal("0.50")


def haiku_batch_price(input_tokens: int, output_tokens: int) -> Decimal:
    """Half of Haiku 5.5's standard price, worked out here from the published rates."""
    standard = (input_tokens * HAIKU_IN + output_tokens * HAIKU_OUT) / Decimal(1_000_000)
    return (standard / 2).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
