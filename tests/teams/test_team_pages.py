"""The team page, roles and removal, the switcher, presets and the audit log."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import AuditEvent, Membership, Team
from conversations.models import Conversation, Message, Preset

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_team_page_lists_members_with_roles_budget_and_presets(team_world):
    w = team_world
    Preset.objects.create(team=w.team, name="Support", model="claude-sonnet-5-5")
    page = _client(w.bob).get("/teams/acme/")
    assert page.status_code == 200
    text = page.content.decode()
    for name in ("Alice Archer", "erin", "dave", "frank"):
        assert name in text
    assert 'data-member="alice"' in text and "Owner" in text and "Admin" in text
    assert 'id="team-spent"' in text and 'data-preset="Support"' in text
    # A member manages nothing and sees no invitations or audit link.
    assert 'id="invite-form"' not in text and 'id="audit-link"' not in text


def test_other_teams_and_staff_get_404_on_the_team_page(team_world):
    assert _client(team_world.carol).get("/teams/acme/").status_code == 404
    assert _client(team_world.admin).get("/teams/acme/").status_code == 404
    assert _client(team_world.carol).get("/teams/no-such-team/").status_code == 404


def test_the_summaries_link_is_shown_to_who_may_open_that_page(team_world):
    page = _client(team_world.alice).get("/teams/acme/").content.decode()
    assert '<a href="/teams/acme/summaries/" id="summaries-link">' in page
    page = _client(team_world.bob).get("/teams/acme/").content.decode()  # a member: 404 there
    assert 'id="summaries-link"' not in page


def test_an_admin_changes_a_members_role_and_it_is_audited(team_world):
    w = team_world
    response = _client(w.erin).post(f"/teams/acme/members/{w.bob.pk}/role/", {"role": "admin"})
    assert response.status_code == 302
    assert Membership.objects.get(user=w.bob, team=w.team).role == "admin"
    event = AuditEvent.objects.get(action="role_changed")
    assert event.actor == w.erin and event.target == f"user:{w.bob.pk}"
    assert event.details == {"user": "bob", "from": "member", "to": "admin"}


def test_an_admin_cannot_touch_an_owner_or_make_one(team_world):
    w = team_world
    _client(w.erin).post(f"/teams/acme/members/{w.alice.pk}/role/", {"role": "member"})
    _client(w.erin).post(f"/teams/acme/members/{w.bob.pk}/role/", {"role": "owner"})
    _client(w.erin).post(f"/teams/acme/members/{w.alice.pk}/remove/")
    assert Membership.objects.get(user=w.alice, team=w.team).role == "owner"
    assert Membership.objects.get(user=w.bob, team=w.team).role == "member"


def test_a_member_cannot_change_roles(team_world):
    w = team_world
    response = _client(w.bob).post(f"/teams/acme/members/{w.dave.pk}/role/", {"role": "admin"})
    assert response.status_code == 403
    assert Membership.objects.get(user=w.dave, team=w.team).role == "member"


def test_the_team_keeps_at_least_one_owner(team_world):
    w = team_world
    client = _client(w.alice)
    client.post(f"/teams/acme/members/{w.alice.pk}/role/", {"role": "member"})
    client.post(f"/teams/acme/members/{w.alice.pk}/remove/")
    assert Membership.objects.get(user=w.alice, team=w.team).role == "owner"
    page = client.get("/teams/acme/").content.decode()
    assert "needs at least one owner" in page
    # With a second owner, the first may step down.
    client.post(f"/teams/acme/members/{w.erin.pk}/role/", {"role": "owner"})
    client.post(f"/teams/acme/members/{w.alice.pk}/role/", {"role": "member"})
    assert Membership.objects.get(user=w.alice, team=w.team).role == "member"


def test_a_removed_member_gets_404_at_once_everywhere_in_the_team(team_world, make_conversation):
    w = team_world
    own = make_conversation(owner=w.bob)
    bob = _client(w.bob)
    assert bob.get("/teams/acme/").status_code == 200
    assert bob.get(f"/c/{own.id}/").status_code == 200
    response = _client(w.alice).post(f"/teams/acme/members/{w.bob.pk}/remove/")
    assert response.status_code == 302
    for path in ("/teams/acme/", "/teams/acme/audit/", f"/c/{own.id}/", f"/c/{own.id}/share/"):
        assert bob.get(path).status_code == 404, path
    assert bob.post(f"/c/{own.id}/continue/").status_code == 404
    event = AuditEvent.objects.get(action="removed")
    assert event.actor == w.alice and event.details["user"] == "bob"


def test_a_member_may_leave(team_world):
    w = team_world
    response = _client(w.frank).post(f"/teams/acme/members/{w.frank.pk}/remove/")
    assert response.status_code == 302
    assert not Membership.objects.filter(user=w.frank, team=w.team).exists()
    assert AuditEvent.objects.get(action="removed").details["left"] is True


def test_the_switcher_moves_new_conversations_to_the_picked_team(team_world):
    w = team_world
    globex = Team.objects.get(slug="globex")
    Membership.objects.create(user=w.bob, team=globex, role="member")
    bob = _client(w.bob)
    home = bob.get("/").content.decode()
    assert 'id="team-switcher"' in home and "Switch to Globex" in home
    bob.post("/c/new/", {"model": "claude-sonnet-5-5"})
    assert Conversation.objects.get(owner=w.bob).team.slug == "acme"
    assert bob.post("/teams/globex/switch/").status_code == 302
    bob.post("/c/new/", {"model": "claude-sonnet-5-5"})
    newest = Conversation.objects.filter(owner=w.bob).order_by("-created_at").first()
    assert newest.team == globex
    # The sidebar lists a conversation once something was sent in it.
    for conversation in Conversation.objects.filter(owner=w.bob):
        Message.objects.create(conversation=conversation, position=0, role="user", text="hi")
    # The sidebar lists the picked team's conversations only.
    home = bob.get("/").content.decode()
    assert str(newest.id) in home
    assert str(Conversation.objects.get(owner=w.bob, team=w.team).id) not in home
    # A team one is not in cannot be picked.
    assert _client(w.carol).post("/teams/acme/switch/").status_code == 404


def test_presets_owners_and_admins_define_members_pick(team_world):
    w = team_world
    response = _client(w.erin).post(
        "/teams/acme/presets/new/",
        {
            "name": "Release notes",
            "model": "claude-opus-5-5",
            "system_prompt": "Write release notes.",
            "thinking_effort": "high",
        },
    )
    assert response.status_code == 302
    preset = Preset.objects.get(team=w.team, name="Release notes")
    assert AuditEvent.objects.get(action="preset_changed").details["op"] == "created"
    assert (
        _client(w.bob)
        .post("/teams/acme/presets/new/", {"name": "x", "model": "claude-opus-5-5"})
        .status_code
        == 403
    )
    assert _client(w.carol).get(f"/teams/acme/presets/{preset.pk}/").status_code == 404
    bob = _client(w.bob)
    assert b"Release notes" in bob.get("/").content
    response = bob.post("/c/new/", {"model": "claude-haiku-5-5", "preset": preset.pk})
    conversation = Conversation.objects.get(owner=w.bob)
    assert (conversation.model, conversation.system_prompt, conversation.thinking_effort) == (
        "claude-opus-5-5",
        "Write release notes.",
        "high",
    )
    assert conversation.preset == preset
    page = bob.get(response["Location"]).content.decode()
    assert "Preset: Release notes" in page
    # Another team's preset is refused, and nothing is created.
    other = Preset.objects.create(
        team=Team.objects.get(slug="globex"), name="G", model="claude-sonnet-5-5"
    )
    assert (
        bob.post("/c/new/", {"model": "claude-sonnet-5-5", "preset": other.pk}).status_code == 400
    )
    assert Conversation.objects.filter(owner=w.bob).count() == 1
    # Deleting the preset keeps the conversation's record of it.
    _client(w.alice).post(f"/teams/acme/presets/{preset.pk}/delete/")
    conversation.refresh_from_db()
    assert conversation.preset is None and conversation.preset_name == "Release notes"


def test_a_budget_change_is_audited(team_world):
    w = team_world
    _client(w.alice).post("/usage/team/acme/budget/", {"monthly_limit_usd": "25"})
    event = AuditEvent.objects.get(action="budget_changed")
    assert event.actor == w.alice and event.team == w.team
    assert event.details == {"from": None, "to": "25.00"}
    page = _client(w.bob).get("/teams/acme/").content.decode()
    assert "$25.00" in page


def test_the_audit_log_owners_see_their_team_staff_see_all(team_world):
    w = team_world
    _client(w.alice).post(f"/teams/acme/members/{w.frank.pk}/role/", {"role": "admin"})
    _client(w.carol).post("/usage/team/globex/budget/", {"monthly_limit_usd": "5"})
    owner_page = _client(w.alice).get("/teams/acme/audit/")
    assert owner_page.status_code == 200
    text = owner_page.content.decode()
    assert 'data-action="role_changed"' in text and 'data-action="budget_changed"' not in text
    assert _client(w.erin).get("/teams/acme/audit/").status_code == 403
    assert _client(w.bob).get("/teams/acme/audit/").status_code == 403
    assert _client(w.carol).get("/teams/acme/audit/").status_code == 404
    assert _client(w.admin).get("/teams/acme/audit/").status_code == 200
    everything = _client(w.admin).get("/audit/").content.decode()
    assert (
        'data-action="role_changed"' in everything and 'data-action="budget_changed"' in everything
    )
    assert _client(w.alice).get("/audit/").status_code == 404


def test_the_audit_log_filters_and_exports_exactly_the_rows_shown(team_world):
    w = team_world
    alice = _client(w.alice)
    alice.post(f"/teams/acme/members/{w.frank.pk}/role/", {"role": "admin"})
    alice.post("/usage/team/acme/budget/", {"monthly_limit_usd": "=1+1"})  # refused: not a number
    alice.post("/usage/team/acme/budget/", {"monthly_limit_usd": "9"})
    page = alice.get("/teams/acme/audit/", {"action": "role_changed"}).content.decode()
    assert 'data-action="role_changed"' in page and 'data-action="budget_changed"' not in page
    response = alice.get("/teams/acme/audit/", {"action": "budget_changed", "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["time_utc", "actor", "action", "team", "target", "ip", "details"]
    assert [r[2] for r in rows[1:]] == ["budget_changed"]
    assert rows[1][1] == "alice" and rows[1][3] == "acme" and '"to": "9.00"' in rows[1][6]
    assert Decimal("9") == Decimal(rows[1][6].split('"to": "')[1].split('"')[0])


def test_a_budget_set_in_the_admin_is_audited_too(team_world):
    w = team_world
    response = _client(w.admin).post(
        "/admin/usage/budget/add/", {"team": w.team.pk, "monthly_limit_usd": "12"}
    )
    assert response.status_code == 302, response.content[:500]
    event = AuditEvent.objects.get(action="budget_changed")
    assert event.actor == w.admin and event.team == w.team
    assert event.details == {"from": None, "to": "12.00"}


def test_seed_demo_gives_a_newcomer_a_preset_and_a_shared_conversation(db, settings):
    """`manage.py seed_demo` (what `make run` runs), twice: bob finds alice's
    conversation under "Shared with me" and the preset on the new-chat form."""
    from django.core.management import call_command

    from accounts.models import User

    settings.DEMO_PASSWORD = "pw-for-tests-123"
    for _ in range(2):
        call_command("seed_demo", stdout=io.StringIO())
    assert Preset.objects.count() == 1 and Conversation.objects.count() == 1
    home = _client(User.objects.get(username="bob")).get("/").content.decode()
    assert "Shared with me" in home and "Onboarding checklist for new teammates" in home
    assert ">Support replies</option>" in home
