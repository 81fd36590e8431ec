"""Invitations by e-mail: a single-use link that expires, for the invited address only."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.utils import timezone

from accounts.models import AuditEvent, Invite, Membership, User

pytestmark = pytest.mark.django_db


def _client(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _invite(alice, email="newbie@example.com", role="member") -> tuple[Invite, str]:
    """alice invites through the team page; the link as the e-mail carries it."""
    client = _client(alice)
    with TestCase.captureOnCommitCallbacks(execute=True):  # the mail goes after commit
        response = client.post("/teams/acme/invites/", {"email": email, "role": role})
    assert response.status_code == 302
    invite = Invite.objects.get(email=email, accepted_at__isnull=True, revoked_at__isnull=True)
    link = re.search(r"http://testserver(/invites/\S+/)", mail.outbox[-1].body).group(1)
    return invite, link


def test_an_invitation_is_mailed_with_a_link_that_expires_in_seven_days(alice):
    invite, _ = _invite(alice)
    message = mail.outbox[-1]
    assert message.to == ["newbie@example.com"]
    assert "Acme" in message.subject
    assert (
        dt.timedelta(days=6, hours=23) < invite.expires_at - timezone.now() <= dt.timedelta(days=7)
    )
    event = AuditEvent.objects.get(action="invited")
    assert event.actor == alice and event.team.slug == "acme"
    assert event.details == {"email": "newbie@example.com", "role": "member"}


def test_the_pending_invitation_and_its_link_show_on_the_team_page(alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    _, link = _invite(alice)
    page = _client(alice).get("/teams/acme/").content.decode()
    assert "newbie@example.com" in page
    assert link in page


def test_accepting_creates_the_account_and_joins_the_team(alice):
    invite, link = _invite(alice)
    client = _client()
    page = client.get(link)
    assert page.status_code == 200 and b"Create my account" in page.content
    response = client.post(
        link,
        {
            "username": "newbie",
            "display_name": "New Bie",
            "password": "a-long-new-password-1",
            "password_again": "a-long-new-password-1",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/teams/acme/"
    user = User.objects.get(username="newbie")
    assert user.email == "newbie@example.com" and user.check_password("a-long-new-password-1")
    assert Membership.objects.get(user=user).role == "member"
    invite.refresh_from_db()
    assert invite.accepted_by == user
    # Signed in as the new account: the team page opens.
    assert client.get("/teams/acme/").status_code == 200
    assert AuditEvent.objects.filter(action="joined", actor=user, team__slug="acme").exists()


def test_an_existing_account_joins_after_signing_in(alice, carol):
    _, link = _invite(alice, email=carol.email, role="admin")
    anonymous = _client()
    page = anonymous.get(link)
    assert b"Sign in to accept" in page.content
    signed_in = _client(carol)
    assert signed_in.post(link).status_code == 302
    assert Membership.objects.get(user=carol, team__slug="acme").role == "admin"


def test_a_reused_link_fails_clearly(alice, carol):
    _, link = _invite(alice, email=carol.email)
    assert _client(carol).post(link).status_code == 302
    again = _client(carol).get(link)
    assert again.status_code == 410
    assert "already used" in again.content.decode()
    assert Membership.objects.filter(user=carol, team__slug="acme").count() == 1


def test_an_expired_link_fails_clearly(alice, carol):
    invite, link = _invite(alice, email=carol.email)
    Invite.objects.filter(pk=invite.pk).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    response = _client(carol).post(link)
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert not Membership.objects.filter(user=carol, team__slug="acme").exists()


def test_a_link_forwarded_to_someone_else_fails_clearly(alice, carol):
    """carol was invited; bob (signed in, another address) opens her link."""
    dave = User.objects.create_user(username="dave", email="dave@example.com", password="x" * 12)
    _, link = _invite(alice, email=carol.email)
    response = _client(dave).post(link)
    assert response.status_code == 403
    text = response.content.decode()
    assert "was sent to c***@example.com" in text and "signed in as dave" in text
    assert not Membership.objects.filter(user=dave, team__slug="acme").exists()
    # The invited person can still use it.
    assert _client(carol).post(link).status_code == 302


def test_a_tampered_or_withdrawn_link_fails(alice, carol):
    invite, link = _invite(alice, email=carol.email)
    assert _client(carol).get(link[:-3] + "xx/").status_code == 404
    _client(alice).post(f"/teams/acme/invites/{invite.pk}/revoke/")
    response = _client(carol).get(link)
    assert response.status_code == 410 and "withdrawn" in response.content.decode()


def test_a_new_invitation_replaces_the_old_link(alice, carol):
    _, first = _invite(alice, email=carol.email)
    _, second = _invite(alice, email=carol.email)
    assert first != second
    assert _client(carol).get(first).status_code == 410
    assert _client(carol).post(second).status_code == 302


def test_members_cannot_invite_and_admins_cannot_invite_owners(alice, bob):
    assert (
        _client(bob)
        .post("/teams/acme/invites/", {"email": "x@example.com", "role": "member"})
        .status_code
        == 403
    )
    Membership.objects.filter(user=bob).update(role="admin")
    _client(bob).post("/teams/acme/invites/", {"email": "x@example.com", "role": "owner"})
    assert not Invite.objects.filter(email="x@example.com").exists()
    assert not mail.outbox


def test_two_accepts_at_once_use_the_link_once(alice):
    """The second of two tabs finds the invitation used (the row is locked)."""
    _, link = _invite(alice)
    data = {
        "username": "newbie",
        "password": "a-long-new-password-1",
        "password_again": "a-long-new-password-1",
    }
    assert _client().post(link, data).status_code == 302
    second = _client().post(link, {**data, "username": "newbie2"})
    assert second.status_code == 410
    assert not User.objects.filter(username="newbie2").exists()


def test_a_bad_new_password_keeps_the_invitation_usable(alice):
    _, link = _invite(alice)
    response = _client().post(
        link, {"username": "newbie", "password": "short", "password_again": "short"}
    )
    assert response.status_code == 400 and b"too short" in response.content
    assert not User.objects.filter(username="newbie").exists()
    assert _client().get(link).status_code == 200
