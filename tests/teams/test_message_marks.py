"""What the team pages, invitations, usage and summaries say from Python (flash
notes, refusals, statuses, the chart) is marked for translation.

Under the pseudo-language (tests/i18n_pseudo.py) a marked message comes out as
⟦...⟧; a bare word is one no translator could reach. Names, addresses and
amounts the test made are its data and are taken out first.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone, translation

from accounts import invites
from accounts.models import AuditEvent, Invite, Membership
from accounts.teams import TeamActionRefused, team_member_remove, team_role_set
from summaries import services as summary_services
from summaries.models import SummaryJob
from teams.forms import AuditFilterForm
from tests.i18n_pseudo import (
    CLOSE,
    OPEN,
    PseudoTranslation,
    pseudo_language,  # noqa: F401  (the fixture)
    unmarked_words,
)
from usage.admin import _csv as usage_csv
from usage.charts import daily_chart_svg
from usage.report import usage_report

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _flash(response) -> list[str]:
    """The notes the page after a redirect shows."""
    assert response.status_code == 200
    found = re.findall(r'<p class="flash[^"]*">(.*?)</p>', response.content.decode(), re.S)
    assert found, "no flash note on the page"
    return [html.unescape(note) for note in found]


def _people(world) -> list[str]:
    names = []
    for user in vars(world).values():
        if hasattr(user, "username"):
            names += [user.username, str(user), user.email]
    return [name for name in names if name]


@pytest.mark.usefixtures("pseudo_language")
def test_the_team_pages_flash_notes_are_marked(team_world):
    w = team_world
    owner = _client(w.alice)
    data = [*_people(w), w.team.name, "newcomer@example.com", "Reviewer"]
    notes = []
    notes += _flash(
        owner.post(
            "/teams/acme/invites/", {"email": "newcomer@example.com", "role": "member"}, follow=True
        )
    )
    invite = Invite.objects.get(email="newcomer@example.com")
    notes += _flash(owner.post(f"/teams/acme/invites/{invite.pk}/revoke/", follow=True))
    notes += _flash(owner.post("/teams/acme/invites/", {"email": "not an address"}, follow=True))
    notes += _flash(
        owner.post(f"/teams/acme/members/{w.bob.pk}/role/", {"role": "admin"}, follow=True)
    )
    notes += _flash(owner.post(f"/teams/acme/members/{w.frank.pk}/remove/", follow=True))
    notes += _flash(owner.post("/teams/acme/settings/", {}, follow=True))
    notes += _flash(
        owner.post(
            "/teams/acme/presets/new/",
            {"name": "Reviewer", "model": "claude-sonnet-5-5", "thinking_effort": ""},
            follow=True,
        )
    )
    assert len(notes) == 7, notes
    assert [unmarked_words(note, data) for note in notes] == [[]] * 7, notes
    # The role in "bob is now admin" is the role's own (marked) label.
    assert f"{OPEN}Admin{CLOSE}".lower() in notes[3].lower()


@pytest.mark.usefixtures("pseudo_language")
def test_refusals_of_the_team_and_invitation_services_are_marked(team_world):
    w = team_world
    data = [*_people(w), w.team.name]
    refusals = []
    for call in (
        lambda: team_role_set(team=w.team, actor=w.bob, member=w.alice, role="member"),
        lambda: team_role_set(team=w.team, actor=w.alice, member=w.alice, role="member"),
        lambda: team_role_set(team=w.team, actor=w.alice, member=w.bob, role="emperor"),
        lambda: team_member_remove(team=w.team, actor=w.erin, member=w.alice),
        lambda: team_role_set(team=w.team, actor=w.alice, member=w.carol, role="member"),
    ):
        with pytest.raises(TeamActionRefused) as refused:
            call()
        refusals.append(refused.value.message)
    invite = invites.invite_create(
        team=w.team, email="late@example.com", invited_by=w.alice, site_url="http://testserver"
    )
    token = invites.invite_path(invite).rstrip("/").rsplit("/", 1)[-1]
    for change, user in (
        ({"expires_at": timezone.now() - dt.timedelta(days=1)}, w.bob),
        ({"expires_at": timezone.now() + dt.timedelta(days=1)}, w.bob),  # someone else's
        ({"accepted_at": timezone.now()}, w.bob),
        ({"revoked_at": timezone.now()}, w.bob),
    ):
        Invite.objects.filter(pk=invite.pk).update(**change)
        with pytest.raises(invites.InviteRefused) as refused:
            invites.invite_check(token=token, user=user)
        refusals.append(refused.value.message)
    with pytest.raises(invites.InviteRefused) as refused:
        invites.invite_check(token="not-a-token", user=w.bob)
    refusals.append(refused.value.message)
    for email, role, by in (
        ("bob@example.com", "member", w.alice),
        ("x@example.com", "owner", w.erin),
    ):
        with pytest.raises(invites.InviteRefused) as refused:
            invites.invite_create(
                team=w.team, email=email, role=role, invited_by=by, site_url="http://testserver"
            )
        refusals.append(refused.value.message)
    data += ["emperor", "l***@example.com", "late@example.com"]
    left = {message: words for message in refusals if (words := unmarked_words(message, data))}
    assert left == {}, refusals
    assert all(message.startswith(OPEN) for message in refusals)


@pytest.mark.usefixtures("pseudo_language")
def test_the_invitation_mail_is_marked(team_world, mailoutbox, django_capture_on_commit_callbacks):
    w = team_world
    with django_capture_on_commit_callbacks(execute=True):
        invites.invite_create(
            team=w.team, email="mail@example.com", invited_by=w.alice, site_url="http://testserver"
        )
    (mail,) = mailoutbox
    link = re.search(r"http://testserver/\S+", mail.body).group(0)
    data = [*_people(w), w.team.name, "mail@example.com", link]
    assert unmarked_words(mail.subject, data) == []
    # The expiry's month name is the language's (date_format), not strftime's English.
    assert unmarked_words(mail.body.replace("UTC", ""), data) == [], mail.body


@pytest.mark.usefixtures("pseudo_language")
def test_audit_actions_roles_and_statuses_are_marked():
    labels = [
        *(str(label) for _, label in AuditEvent.Action.choices),
        *(str(label) for _, label in Membership.Role.choices),
        *(str(label) for _, label in SummaryJob.Status.choices),
        *(str(label) for _, label in SummaryJob.Source.choices),
    ]
    assert [label for label in labels if unmarked_words(label)] == []


@pytest.mark.usefixtures("pseudo_language")
def test_a_jobs_progress_frame_is_json_in_the_pages_language(acme, alice):
    job = SummaryJob.objects.create(team=acme, created_by=alice, model="m", instruction="i")
    frame = json.loads(json.dumps(summary_services.job_progress(job_id=job.pk).as_frame()))
    assert frame["status_label"] == f"{OPEN}Preparing requests{CLOSE}"


@pytest.mark.usefixtures("pseudo_language")
def test_the_usage_chart_speaks_the_pages_language():
    empty = daily_chart_svg(days=[dt.date(2026, 12, 1)], series=[], title="Title")
    assert f"{OPEN}No spend in this period{CLOSE}" in empty


def test_the_usage_charts_dates_are_the_languages():
    with translation.override("de"):
        drawn = daily_chart_svg(
            days=[dt.date(2026, 3, 1)], series=[("Du", [Decimal("1.5")])], title="T"
        )
    assert "1 Mär" in drawn  # Django's own German month names, not strftime's English


def test_date_pickers_keep_iso_dates_in_every_language():
    """A date field of type=date must be given YYYY-MM-DD, or the browser shows it empty."""
    with translation.override("de"):
        form = AuditFilterForm({"since": "2026-12-01"})
        assert form.is_valid()
        assert 'value="2026-12-01"' in str(form["since"])
        assert 'value="2026-12-01"' in str(
            AuditFilterForm(initial={"since": dt.date(2026, 12, 1)})["since"]
        )


@pytest.fixture
def pseudo_german(monkeypatch):
    """German is the pseudo-language; English stays English."""
    from django.utils.translation import trans_real

    english = trans_real.translation
    pseudo = PseudoTranslation()
    monkeypatch.setattr(
        trans_real,
        "translation",
        lambda language: pseudo if language == "de" else english(language),
    )


def test_the_usage_csv_header_stays_english(pseudo_german, world):
    with translation.override("de"):
        report = usage_report(start=dt.date(2026, 12, 1), end=dt.date(2026, 12, 31))
        rows = list(csv.reader(io.StringIO(usage_csv(report).content.decode())))
    assert rows[0][:3] == ["table", "Name", "Calls"]  # what scripts read
    assert rows[-1][:2] == ["total", f"{OPEN}Total{CLOSE}"]  # what people read


@pytest.mark.usefixtures("pseudo_language")
def test_summary_refusals_are_marked(acme, alice, bob, carol):
    for call in (
        lambda: summary_services.summary_job_create(
            team=acme, actor=alice, since=dt.date(2026, 2, 1), until=dt.date(2026, 1, 1)
        ),
        lambda: summary_services.summary_job_create(team=acme, actor=alice, person=carol),
        lambda: summary_services.digest_set(team=acme, actor=bob, enabled=True),
    ):
        with pytest.raises(summary_services.SummaryInputError) as refused:
            call()
        assert unmarked_words(refused.value.message) == [], refused.value.message
