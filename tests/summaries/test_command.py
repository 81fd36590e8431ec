"""`manage.py summarize` and `seed_demo --conversations N`, as written in the README."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from conversations.demo import DEMO_SHARED_TITLE
from conversations.models import Conversation
from summaries.models import SummaryJob

pytestmark = [pytest.mark.django_db]


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_seed_demo_adds_conversations_to_acme(world):
    out = run("seed_demo", "--conversations", "7")
    assert "Added 7 demo conversations" in out
    # Beside the conversation every seed shares with the team (conversations.demo).
    acme = Conversation.objects.filter(team__slug="acme").exclude(title=DEMO_SHARED_TITLE)
    assert acme.count() == 7
    assert all(c.messages.count() == 4 for c in acme)


def test_summarize_wait_json_prints_one_object_of_the_documented_shape(world, chat):
    chat()
    chat("[[fake error=overloaded_error]] this one errors")
    report = json.loads(run("summarize", "--team", "acme", "--wait", "--json"))
    assert set(report) == {"job_id", "status", "counts", "cost_usd", "conversations"}
    assert report["status"] == "ended"
    assert report["counts"] == {
        "succeeded": 1,
        "errored": 1,
        "expired": 0,
        "canceled": 0,
        "processing": 0,
    }
    job = SummaryJob.objects.get(pk=report["job_id"])
    assert report["cost_usd"] == f"{job.cost_usd:.6f}" and job.cost_usd > 0
    assert job.source == "command" and job.created_by is None
    statuses = sorted((c["status"], bool(c["reason"])) for c in report["conversations"])
    assert statuses == [("errored", True), ("succeeded", False)]
    shown = json.loads(run("summarize", "--show", str(job.pk), "--json"))
    assert shown == report


def test_summarize_without_wait_starts_and_shows_processing(world, chat):
    chat()
    out = run("summarize", "--team", "acme", "--since", "2020-01-01", "--until", "2099-12-31")
    assert out.startswith("Summary job ") and "1 processing" in out


def test_summarize_says_what_is_wrong(world, chat):
    with pytest.raises(CommandError, match="No team 'nope'"):
        run("summarize", "--team", "nope")
    with pytest.raises(CommandError, match="No conversations match"):
        run("summarize", "--team", "acme")
    with pytest.raises(CommandError, match="not in team"):
        run("summarize", "--team", "acme", "--user", "carol")
    with pytest.raises(CommandError, match="No summary job 12345"):
        run("summarize", "--show", "12345")
    with pytest.raises(CommandError, match="not a date"):
        run("summarize", "--team", "acme", "--since", "yesterday")
