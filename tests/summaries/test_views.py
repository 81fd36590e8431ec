"""Who may see and start what: a team's owner or admin previews, starts and follows
its jobs; members and other teams get 404; staff use the admin action. A
conversation shows its latest summary at its top."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse

from accounts.models import Membership
from summaries import services
from summaries.models import SummaryJob
from tests.conftest import ORIGIN, session_cookie_for
from tests.summaries.conftest import run_job

pytestmark = [pytest.mark.django_db]


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_owner_previews_then_starts_a_job(acme, alice, chat):
    chat()
    chat("Second one")
    client = signed_in(alice)
    url = reverse("team_summaries", args=["acme"])
    page = client.get(url)
    assert page.status_code == 200 and b"summary-start" not in page.content
    preview = client.post(url, {"model": "claude-haiku-5-5", "action": "preview"})
    assert preview.status_code == 200
    estimate = preview.context["estimate"]
    assert estimate.conversations == 2
    html = preview.content.decode()
    assert 'id="estimate-count">2<' in html and "Saving" in html and "summary-start" in html
    assert SummaryJob.objects.count() == 0
    started = client.post(url, {"model": "claude-haiku-5-5", "action": "start"})
    job = SummaryJob.objects.get()
    assert started.status_code == 302 and started["Location"] == f"/summaries/{job.pk}/"
    assert (job.created_by, job.team, job.source, job.conversations_count) == (
        alice,
        acme,
        "web",
        2,
    )


def test_an_admin_of_the_team_may_start_a_job(acme, bob, chat):
    Membership.objects.filter(user=bob, team=acme).update(role="admin")
    chat()
    response = signed_in(bob).post(
        reverse("team_summaries", args=["acme"]), {"model": "claude-haiku-5-5", "action": "start"}
    )
    assert response.status_code == 302 and SummaryJob.objects.get().created_by == bob


def test_members_and_other_teams_get_404_and_start_nothing(acme, bob, carol, chat):
    chat()
    url = reverse("team_summaries", args=["acme"])
    for user in (bob, carol):
        client = signed_in(user)
        assert client.get(url).status_code == 404
        assert client.post(url, {"model": "claude-haiku-5-5", "action": "start"}).status_code == 404
    assert SummaryJob.objects.count() == 0
    assert Client().get(url).status_code == 302  # signed out: to the sign-in page


def test_nobody_sees_another_teams_job(acme, alice, bob, carol, world, chat):
    chat()
    job = services.summary_job_create(team=acme, actor=alice)
    run_job(job.pk)
    url = reverse("summary_job", args=[job.pk])
    page = signed_in(alice).get(url)
    assert page.status_code == 200
    assert page.context["progress"].succeeded == 1
    assert b"Billing" in page.content
    for user in (bob, carol):
        assert signed_in(user).get(url).status_code == 404
        assert signed_in(user).post(reverse("summary_job_cancel", args=[job.pk])).status_code == 404
    assert signed_in(world["admin"]).get(url).status_code == 200  # staff
    assert signed_in(carol).get("/summaries/999999/").status_code == 404


def test_cancel_from_the_job_page(acme, alice, chat):
    chat("[[fake hold=1]] waits")
    job = services.summary_job_create(team=acme, actor=alice)
    response = signed_in(alice).post(reverse("summary_job_cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.cancel_requested_at is not None


def test_a_conversation_shows_its_latest_summary_at_its_top(acme, alice, bob, chat):
    conversation = chat()
    job = services.summary_job_create(team=acme, actor=alice)
    run_job(job.pk)
    page = signed_in(alice).get(reverse("conversation_detail", args=[conversation.id]))
    html = page.content.decode()
    assert 'id="conversation-summary"' in html
    assert html.index('id="conversation-summary"') < html.index('id="messages"')
    assert (
        signed_in(bob).get(reverse("conversation_detail", args=[conversation.id])).status_code
        == 404
    )


def test_the_owner_turns_the_digest_on_and_an_admin_cannot(acme, alice, bob):
    url = reverse("summary_digest", args=["acme"])
    assert signed_in(alice).post(url, {"enabled": "on"}).status_code == 302
    assert acme.digest.enabled is True
    Membership.objects.filter(user=bob, team=acme).update(role="admin")
    assert signed_in(bob).post(url, {}).status_code == 403
    acme.digest.refresh_from_db()
    assert acme.digest.enabled is True


def test_staff_summarise_selected_conversations_from_the_admin(acme, world, chat, carol):
    first, second = chat(), chat("Globex question", owner=carol)
    client = signed_in(world["admin"])
    url = reverse("admin:conversations_conversation_changelist")
    selected = {"action": "summarise_selected", "_selected_action": [str(first.id), str(second.id)]}
    confirm = client.post(url, selected)
    assert confirm.status_code == 200 and b"Summarise conversations" in confirm.content
    assert SummaryJob.objects.count() == 0
    done = client.post(url, {**selected, "confirm": "yes"})
    assert done.status_code == 302
    jobs = {job.team.slug: job for job in SummaryJob.objects.all()}
    assert set(jobs) == {"acme", "globex"}
    assert all(job.source == "admin" and job.created_by == world["admin"] for job in jobs.values())


@pytest.mark.django_db(transaction=True)
async def test_the_job_socket_sends_progress_to_who_may_see_it_only(world, settings):
    from channels.db import database_sync_to_async as sync_to_async

    from accounts.models import Team
    from chatsite.asgi import application
    from conversations.demo import demo_conversations_seed

    settings.SUMMARIES_PROGRESS_SECONDS = 0.1
    alice, carol = world["alice"], world["carol"]

    def make_job():
        demo_conversations_seed(count=3)
        return services.summary_job_create(team=Team.objects.get(slug="acme"), actor=alice)

    job = await sync_to_async(make_job)()

    async def open_socket(user):
        cookie = await sync_to_async(session_cookie_for)(user)
        communicator = WebsocketCommunicator(
            application,
            f"/ws/summaries/{job.pk}/",
            headers=[(b"cookie", cookie.encode()), (b"origin", ORIGIN.encode())],
        )
        connected, _ = await communicator.connect(timeout=5)
        return communicator, connected

    theirs, refused_connected = await open_socket(carol)
    assert refused_connected is False
    mine, connected = await open_socket(alice)
    assert connected
    first = json.loads(await mine.receive_from(timeout=5))
    assert first["type"] == "job.progress" and first["total"] == 3 and first["ended"] is False
    await sync_to_async(run_job)(job.pk)
    frames = [first]
    while not frames[-1]["ended"]:
        frames.append(json.loads(await mine.receive_from(timeout=5)))
    assert frames[-1]["succeeded"] == 3 and frames[-1]["status"] == "ended"
    assert frames[-1]["cost_usd"] != "0.000000"
    await mine.disconnect()
