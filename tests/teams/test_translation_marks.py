"""Every word of the team, usage and summaries pages is marked for translation.

Under the pseudo-language (tests/i18n_pseudo.py) a marked string comes out as
⟦...⟧; a bare word left on a page is one no translator could reach. The data a
test puts there itself (people, teams, titles, e-mail addresses, the models'
names, what Claude wrote) is taken out first: no catalog translates it.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import AuditEvent, Invite, Team
from accounts.services import user_primary_team
from claude.providers import model_choices
from conversations.models import Conversation, Message, Preset
from conversations.presets import preset_model_choices
from summaries import services as summaries
from summaries.models import Summary, SummaryJob
from tests.i18n_pseudo import (
    CLOSE,
    OPEN,
    page_text,
    page_unmarked_words,
    pseudo_language,  # noqa: F401  (the fixture)
)
from tests.summaries.conftest import _own_batches, run_job  # noqa: F401  (the fixture)
from usage.budgets import budget_limit_set
from usage.ledger import ledger_record
from usage.models import ApiCall

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pseudo_language")]

# The models' ids (a job names its model by id) and the names the pickers show.
MODELS = [
    *(name for pair in model_choices() for name in pair),
    *(name for pair in preset_model_choices() for name in pair),
]


# In the admin's app list: allauth's two-factor model names itself, with no
# verbose_name for a catalog to translate (its word, not ours).
THIRD_PARTY = ["Authenticators"]

def _client(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _people(*users) -> list[str]:
    """What the pages show of a person: the username, the name they go by, the address."""
    names = []
    for user in users:
        if not hasattr(user, "username"):
            continue
        names += [
            user.username,
            str(user),
            user.get_full_name(),
            getattr(user, "display_name", ""),
            user.email,
        ]
    return [name for name in names if name]


def _teams() -> list[str]:
    return list(Team.objects.values_list("name", flat=True))


def _everyone(world) -> list[str]:
    return [*_people(*vars(world).values()), *_teams(), *MODELS]


def _chat(owner, *, title: str, text: str) -> Conversation:
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
        conversation=conversation, position=1, role="assistant", text="Ship it in two steps."
    )
    return conversation


def _bill(user, conversation, usd: str) -> None:
    call = ApiCall.objects.create(
        user=user,
        team=conversation.team,
        conversation=conversation,
        conversation_uuid=conversation.id,
        model=conversation.model,
        input_tokens=1200,
        output_tokens=300,
        cache_read_tokens=400,
        cache_savings_usd=Decimal("0.000900"),
        cost_usd=Decimal(usd),
    )
    ledger_record(call=call)


def _invite(alice, email: str, role: str = "member") -> str:
    """alice invites `email` from the team page; the link as the e-mail carries it."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = _client(alice).post("/teams/acme/invites/", {"email": email, "role": role})
    assert response.status_code == 302
    return re.search(r"http://testserver(/invites/\S+/)", mail.outbox[-1].body).group(1)


def _stored_details() -> list[str]:
    """An audit event's target and details, as the log shows them: stored as the service
    wrote them (ids, keys), the log's data rather than words of the page. Whole
    cells, so that a key ("to", "from") takes no word out of the page's own text."""
    cells = []
    for event in AuditEvent.objects.all():
        cells.append(event.target)
        cells.append("; ".join(f"{key}: {value}" for key, value in event.details.items()))
    return cells


def _what_claude_wrote() -> list[str]:
    return [
        line for summary in Summary.objects.all() for line in page_text(summary.html).splitlines()
    ]


# --- Teams -----------------------------------------------------------------------------

PRESET = "Release notes"
PROMPT = "Write release notes for the support team."


def test_the_team_page_as_its_owner(team_world):
    """Members, spend per person, a pending invitation with its link, presets, the
    sharing setting, and the flash the invitation left."""
    w = team_world
    Preset.objects.create(team=w.team, name=PRESET, model="claude-opus-5-5", system_prompt=PROMPT)
    _bill(w.bob, _chat(w.bob, title="Billing", text="How do we bill?"), "1.250000")
    budget_limit_set(team=w.team, limit_usd=Decimal("10"))
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = _client(w.alice).post(
            "/teams/acme/invites/", {"email": "newbie@example.com", "role": "admin"}, follow=True
        )
    html = response.content.decode()
    assert 'class="team-flash"' in html and 'data-invite="newbie@example.com"' in html
    assert 'id="spend-table"' in html and f'data-preset="{PRESET}"' in html
    assert 'name="share_links_enabled"' in html and 'id="audit-link"' in html
    data = [*_everyone(w), PRESET, PROMPT, "newbie@example.com", *_invite_links(html)]
    assert page_unmarked_words(html, data=data) == []


def _invite_links(html: str) -> list[str]:
    return re.findall(r'class="invite-link" type="text" readonly value="([^"]+)"', html)


def test_the_team_page_as_a_member_and_as_an_admin_without_presets(team_world):
    """A member: no management, a button to leave. An admin: no invitation pending
    and no preset yet, each saying so."""
    member = _client(team_world.bob).get("/teams/acme/").content.decode()
    assert 'id="invite-form"' not in member and f"{OPEN}No presets yet.{CLOSE}" in member
    assert page_unmarked_words(member, data=_everyone(team_world)) == []
    admin = _client(team_world.erin).get("/teams/acme/").content.decode()
    assert f"{OPEN}No pending invitations.{CLOSE}" in admin
    assert page_unmarked_words(admin, data=_everyone(team_world)) == []


def test_the_audit_log_of_a_team_and_of_everything(team_world):
    w = team_world
    alice = _client(w.alice)
    alice.post(f"/teams/acme/members/{w.frank.pk}/role/", {"role": "admin"})
    alice.post("/usage/team/acme/budget/", {"monthly_limit_usd": "9"})
    alice.post("/teams/acme/settings/", {"share_links_enabled": "on"})
    # More than a page of them: the pager shows.
    for _ in range(100):
        audit_record(
            action=AuditEvent.Action.EXPORTED,
            actor=w.alice,
            team=w.team,
            target=f"team:{w.team.pk}",
            details={"what": "audit log"},
        )
    page = alice.get("/teams/acme/audit/").content.decode()
    assert 'class="pager"' in page
    data = [*_everyone(w), *_stored_details()]
    assert page_unmarked_words(page, data=data) == []
    second = alice.get("/teams/acme/audit/", {"page": 2}).content.decode()
    assert 'data-action="role_changed"' in second
    assert page_unmarked_words(second, data=data) == []
    nothing = alice.get("/teams/acme/audit/", {"actor": "nobody"}).content.decode()
    assert f"{OPEN}Nothing recorded that matches these filters.{CLOSE}" in nothing
    assert page_unmarked_words(nothing, data=[*data, "nobody"]) == []
    invalid = alice.get("/teams/acme/audit/", {"since": "not-a-date"}).content.decode()
    assert 'class="form-errors"' in invalid
    assert page_unmarked_words(invalid, data=[*data, "not-a-date"]) == []
    everything = _client(w.admin).get("/audit/", {"action": "role_changed"}).content.decode()
    assert 'data-action="role_changed"' in everything
    assert page_unmarked_words(everything, data=data) == []


def test_the_invitation_pages_valid_and_refused(team_world, settings):
    w = team_world
    sign_up = _invite(w.alice, "newbie@example.com")
    sign_in = _invite(w.alice, w.carol.email, role="admin")
    data = [*_everyone(w), "newbie@example.com"]
    # No account for the address: the sign-up form.
    html = _client().get(sign_up).content.decode()
    assert 'id="invite-sign-up"' in html
    assert page_unmarked_words(html, data=data) == []
    # The sign-up form sent back with its errors.
    refused = _client().post(sign_up, {"username": "", "password": "a", "password_again": "b"})
    html = refused.content.decode()
    assert refused.status_code == 400 and 'id="invite-error"' in html
    assert page_unmarked_words(html, data=data) == []
    # An account has the address: sign in first, then join.
    html = _client().get(sign_in).content.decode()
    assert 'id="invite-sign-in"' in html
    assert page_unmarked_words(html, data=data) == []
    html = _client(w.carol).get(sign_in).content.decode()
    assert 'id="invite-join"' in html
    assert page_unmarked_words(html, data=data) == []
    # Used, then expired: refused, each saying why.
    assert _client(w.carol).post(sign_in).status_code == 302
    used = _client(w.carol).get(sign_in)
    assert used.status_code == 410 and 'id="invite-refused"' in used.content.decode()
    assert page_unmarked_words(used.content.decode(), data=data) == []
    Invite.objects.filter(email="newbie@example.com").update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    expired = _client().get(sign_up)
    assert expired.status_code == 410 and 'data-code="expired"' in expired.content.decode()
    assert page_unmarked_words(expired.content.decode(), data=data) == []


def test_the_preset_form_new_edit_and_refused(team_world):
    w = team_world
    preset = Preset.objects.create(
        team=w.team, name=PRESET, model="claude-opus-5-5", system_prompt=PROMPT
    )
    alice = _client(w.alice)
    data = [*_everyone(w), PRESET, PROMPT]
    new = alice.get("/teams/acme/presets/new/").content.decode()
    assert 'id="preset-form"' in new
    assert page_unmarked_words(new, data=data) == []
    edit = alice.get(f"/teams/acme/presets/{preset.pk}/").content.decode()
    assert f'value="{PRESET}"' in edit
    assert page_unmarked_words(edit, data=data) == []
    refused = alice.post("/teams/acme/presets/new/", {"name": "", "model": "claude-opus-5-5"})
    assert refused.status_code == 400
    assert page_unmarked_words(refused.content.decode(), data=data) == []


# --- Usage -----------------------------------------------------------------------------


def test_my_usage_with_calls_and_a_personal_budget_near_its_end(alice, bob, make_conversation):
    garden = make_conversation(alice)
    garden.title = "Garden planning"
    garden.save()
    gone = make_conversation(alice)
    _bill(alice, garden, "8.500000")
    _bill(alice, gone, "0.250000")
    gone.delete()
    budget_limit_set(user=alice, limit_usd=Decimal("10"))
    html = _client(alice).get("/usage/").content.decode()
    assert 'data-level="warning"' in html and "<svg" in html and 'id="my-limit"' in html
    assert "/usage/team/acme/budget/" in html  # the teams alice manages
    data = [*_people(alice, bob), *_teams(), *MODELS, "Garden planning"]
    assert page_unmarked_words(html, data=data) == []


def test_my_usage_under_the_team_s_budget_and_without_calls(alice, bob):
    acme = alice.teams.get(slug="acme")
    budget_limit_set(team=acme, limit_usd=Decimal("5"))
    budget_limit_set(user=bob, limit_usd=Decimal("50"))
    html = _client(bob).get("/usage/").content.decode()
    assert "team budget" in html and "Your own:" in html
    assert page_unmarked_words(html, data=[*_people(alice, bob), *_teams(), *MODELS]) == []
    nothing = _client(alice).get("/usage/").content.decode()
    assert page_unmarked_words(nothing, data=[*_people(alice, bob), *_teams(), *MODELS]) == []


def test_the_team_budget_page_with_and_without_a_limit(alice, bob, make_conversation):
    data = [*_people(alice, bob), *_teams(), *MODELS]
    none = _client(alice).get("/usage/team/acme/budget/").content.decode()
    assert f'placeholder="{OPEN}No limit{CLOSE}"' in none
    assert page_unmarked_words(none, data=data) == []
    acme = alice.teams.get(slug="acme")
    budget_limit_set(team=acme, limit_usd=Decimal("25.50"))
    _bill(alice, make_conversation(alice), "3.000000")
    html = _client(alice).get("/usage/team/acme/budget/").content.decode()
    assert 'value="25.50"' in html
    assert page_unmarked_words(html, data=data) == []
    refused = _client(alice).post("/usage/team/acme/budget/", {"monthly_limit_usd": "-1"})
    assert 'class="field-error"' in refused.content.decode()
    assert page_unmarked_words(refused.content.decode(), data=data) == []


# --- Summaries -------------------------------------------------------------------------

TITLES = ["Billing page rollout", "Hiring plan"]


def _summarised_world(alice, bob):
    """Two conversations of Acme; an ended job (with its summaries), an ended weekly
    digest, and a job still processing whose cancel was asked for."""
    acme = alice.teams.get(slug="acme")
    _chat(alice, title=TITLES[0], text="How do we ship the billing page?")
    _chat(bob, title=TITLES[1], text="Whom do we hire first?")
    ended = summaries.summary_job_create(team=acme, actor=alice)
    run_job(ended.pk)
    summaries.digest_set(team=acme, actor=alice, enabled=True)
    monday = summaries.week_start(dt.date.today()) + dt.timedelta(days=7)
    summaries.digests_run(today=monday)
    digest = SummaryJob.objects.get(source=SummaryJob.Source.DIGEST)
    run_job(digest.pk)
    waiting = _chat(alice, title="Still waiting", text="[[fake hold=1]] waits")
    processing = summaries.summary_job_create(team=acme, actor=alice, conversation_ids=[waiting.id])
    summaries.summary_job_cancel(job=processing, actor=alice)
    return acme, ended, processing


def test_the_team_summaries_page_with_jobs_an_estimate_and_the_digest(alice, bob):
    _summarised_world(alice, bob)
    client = _client(alice)
    data = [*_people(alice, bob), *_teams(), *MODELS, *TITLES, "Still waiting"]
    html = client.get("/teams/acme/summaries/").content.decode()
    assert 'id="digest"' in html and 'id="summary-jobs"' in html
    assert page_unmarked_words(html, data=[*data, *_what_claude_wrote()]) == []
    preview = client.post(
        "/teams/acme/summaries/", {"model": "claude-haiku-5-5", "action": "preview"}
    )
    html = preview.content.decode()
    assert 'id="summary-estimate"' in html and 'id="summary-start"' in html
    assert page_unmarked_words(html, data=[*data, *_what_claude_wrote()]) == []


def test_a_summary_job_page_ended_and_processing(alice, bob):
    _, ended, processing = _summarised_world(alice, bob)
    client = _client(alice)
    data = [*_people(alice, bob), *_teams(), *MODELS, *TITLES, "Still waiting"]
    html = client.get(f"/summaries/{ended.pk}/").content.decode()
    assert 'data-status="succeeded"' in html and 'class="summary-item"' in html
    assert page_unmarked_words(html, data=[*data, *_what_claude_wrote()]) == []
    html = client.get(f"/summaries/{processing.pk}/").content.decode()
    assert f"{OPEN}(cancelling){CLOSE}" in html
    assert page_unmarked_words(html, data=data) == []
    Conversation.objects.filter(title=TITLES[1]).delete()
    html = client.get(f"/summaries/{ended.pk}/").content.decode()
    assert f"{OPEN}(deleted){CLOSE}" in html
    assert page_unmarked_words(html, data=[*data, *_what_claude_wrote()]) == []


def test_the_team_summaries_page_of_a_team_with_no_job_yet(carol):
    html = _client(carol).get("/teams/globex/summaries/").content.decode()
    assert f"{OPEN}No summary jobs yet.{CLOSE}" in html and 'id="summary-estimate"' not in html
    assert page_unmarked_words(html, data=[*_people(carol), *_teams(), *MODELS]) == []


# --- The admin -------------------------------------------------------------------------


def test_the_admin_s_summarise_action_asks_first(world, alice, carol):
    first = _chat(alice, title=TITLES[0], text="How do we ship the billing page?")
    second = _chat(carol, title=TITLES[1], text="Globex question")
    orphan = Conversation.objects.create(owner=alice, team=None, model="claude-sonnet-5-5")
    selected = {
        "action": "summarise_selected",
        "_selected_action": [str(first.id), str(second.id), str(orphan.id)],
    }
    response = _client(world["admin"]).post("/admin/conversations/conversation/", selected)
    html = response.content.decode()
    assert response.status_code == 200 and 'name="confirm" value="yes"' in html
    assert f"{OPEN}1 selected conversation belongs to no team and will be left out.{CLOSE}" in html
    data = [*_people(*world.values()), *_teams(), *MODELS, *THIRD_PARTY]
    assert page_unmarked_words(html, data=data) == []


def test_the_admin_index_and_the_usage_report(world, alice, bob, carol, make_conversation):
    _bill(alice, make_conversation(alice), "0.300000")
    _bill(carol, make_conversation(carol), "1.000000")
    unknown = ApiCall.objects.create(
        user=bob,
        team=bob.teams.get(),
        model="claude-nova-9",
        cost_usd=Decimal("0.05"),
        priced=False,
    )
    ledger_record(call=unknown)
    client = _client(world["admin"])
    data = [*_people(*world.values()), *_teams(), *MODELS, "claude-nova-9", *THIRD_PARTY]
    index = client.get("/admin/").content.decode()
    assert 'id="usage-link"' in index
    assert page_unmarked_words(index, data=data) == []
    report = client.get("/admin/usage-report/").content.decode()
    assert "table" in report and 'class="unpriced"' in report
    assert page_unmarked_words(report, data=data) == []
    empty = client.get("/admin/usage-report/", {"start": "2001-01-01", "end": "2001-01-31"})
    assert page_unmarked_words(empty.content.decode(), data=data) == []
