"""TOTP two-factor: enrolling, signing in with it, and a team that requires it of
its owners and admins. Codes come from the secret, as an authenticator app's."""

import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth import SESSION_KEY
from django.core.exceptions import PermissionDenied
from django.test import Client

from accounts.models import AuditEvent, Membership
from accounts.services import team_mfa_requirement_set
from conversations.models import Conversation
from tests.accounts.signin import PASSWORD, sign_in, totp_code

pytestmark = pytest.mark.django_db

ACTIVATE = "/accounts/2fa/totp/activate/"
AUTHENTICATE = "/accounts/2fa/authenticate/"
REAUTHENTICATE = "/accounts/2fa/reauthenticate/"
REAUTHENTICATE_PASSWORD = "/accounts/reauthenticate/"
# Every kind of page a person reaches: chat, a conversation, usage, the
# security page, the admin, a write.
PAGES = ["/", "/usage/", "/accounts/security/", "/admin/", "/accounts/password/"]


def enrol(client, password: str = PASSWORD) -> str:
    """Set up TOTP as the page asks (the password again first, as allauth asks
    before any change to the second factor); return the secret."""
    asked = client.get(ACTIVATE)
    assert asked.status_code == 302 and asked["Location"].startswith(REAUTHENTICATE_PASSWORD)
    again = client.post(asked["Location"], {"password": password})
    assert again.status_code == 302 and again["Location"] == ACTIVATE, again.content[:300]
    page = client.get(ACTIVATE)
    assert page.status_code == 200
    secret = client.session["mfa.totp.secret"]
    assert secret in page.content.decode()  # shown for typing into an app by hand
    answer = client.post(ACTIVATE, {"code": totp_code(secret)})
    assert answer.status_code == 302, answer.content[:400]
    return secret


def secret_of(user) -> str:
    from allauth.mfa.utils import decrypt

    authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    return decrypt(authenticator.data["secret"])


def forget_used_codes(user, code):
    """A code is good once; let the next step of a test use the same 30 seconds."""
    from django.core.cache import cache

    cache.delete(f"allauth.mfa.totp.used?user={user.pk}&code={code}")


def signed_in_as(client):
    return client.session.get(SESSION_KEY)


def gate_of(client, path):
    answer = client.get(path)
    return answer.status_code, answer.get("Location", "")


def test_enrolled_sign_in_asks_for_a_code_before_anything(client, alice):
    sign_in(client, "alice")
    enrol(client)
    assert Authenticator.objects.filter(user=alice, type=Authenticator.Type.TOTP).exists()
    # Still usable right after enrolling: enrolling took a code.
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")

    fresh = Client()
    answer = sign_in(fresh, "alice")
    assert answer.status_code == 302 and answer["Location"] == AUTHENTICATE
    assert signed_in_as(fresh) is None
    for path in PAGES:
        assert fresh.get(path).status_code == 302 and signed_in_as(fresh) is None
    wrong = fresh.post(AUTHENTICATE, {"code": "000000"}, REMOTE_ADDR="10.4.4.4")
    assert wrong.status_code == 200 and "Incorrect code" in wrong.content.decode()
    failed = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert failed.details["reason"] == "bad_second_factor" and failed.ip == "10.4.4.4"
    answer = fresh.post(AUTHENTICATE, {"code": totp_code(secret_of(alice))})
    assert answer.status_code == 302 and signed_in_as(fresh) == str(alice.pk)
    assert fresh.get("/").status_code == 200
    event = AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).latest("id")
    assert event.details["method"] == "password+mfa"


def test_an_owner_requires_mfa_and_an_unenrolled_admin_reaches_only_enrolment(alice, bob):
    acme = alice.teams.get(slug="acme")
    Membership.objects.filter(user=bob, team=acme).update(role=Membership.Role.ADMIN)
    owner = Client()
    sign_in(owner, "alice")
    enrol(owner)
    answer = owner.post("/accounts/security/", {"team": "acme", "mfa_required": "on"})
    assert answer.status_code == 302
    acme.refresh_from_db()
    assert acme.mfa_required
    change = AuditEvent.objects.get(action=AuditEvent.Action.SETTINGS_CHANGED)
    assert (change.actor, change.team, change.details) == (alice, acme, {"mfa_required": True})

    admin = Client()
    sign_in(admin, "bob")  # signed in: the password was right
    for path in PAGES + ["/c/new/", "/accounts/2fa/totp/deactivate/"]:
        status, location = gate_of(admin, path)
        assert status == 302 and location.startswith(f"{ACTIVATE}?next="), path
    # POSTs too: nothing is written.
    assert admin.post("/c/new/", {"model": "claude-sonnet-5-5"})["Location"].startswith(ACTIVATE)
    assert not Conversation.objects.filter(owner=bob).exists()
    # Sign-out works.
    assert admin.post("/accounts/logout/")["Location"] == "/accounts/login/?signed_out=1"
    sign_in(admin, "bob")
    enrol(admin)
    assert admin.get("/").status_code == 200
    assert admin.get("/usage/").status_code == 200


def test_a_session_from_before_the_rule_must_verify_once(client, alice):
    sign_in(client, "alice")
    secret = enrol(client)
    stale = Client()
    stale.force_login(alice)  # a session that never passed the second factor
    status, location = gate_of(stale, "/usage/")
    assert status == 302 and location == f"{REAUTHENTICATE}?next=%2Fusage%2F"
    assert stale.get(REAUTHENTICATE).status_code == 200
    answer = stale.post(f"{REAUTHENTICATE}?next=/usage/", {"code": totp_code(secret)})
    assert answer.status_code == 302 and answer["Location"] == "/usage/"
    assert stale.get("/usage/").status_code == 200


def test_the_admin_sign_in_page_does_not_skip_the_second_factor(world):
    admin_user = world["admin"]
    first = Client()
    sign_in(first, "admin")
    enrol(first)
    page = Client()
    answer = page.post(
        "/admin/login/?next=/admin/",
        {"username": "admin", "password": "pw-for-tests-123", "next": "/admin/"},
    )
    assert answer.status_code == 302
    status, location = gate_of(page, "/admin/")
    assert status == 302 and location.startswith(REAUTHENTICATE)
    code = totp_code(secret_of(admin_user))
    forget_used_codes(admin_user, code)
    page.post(f"{REAUTHENTICATE}?next=/admin/", {"code": code})
    assert page.get("/admin/").status_code == 200


def test_members_are_not_held_to_the_rule(alice, bob):
    acme = alice.teams.get(slug="acme")
    team_mfa_requirement_set(team=acme, required=True, actor=alice)
    client = Client()
    sign_in(client, "bob")
    assert client.get("/").status_code == 200


def test_only_an_owner_sets_the_rule(alice, bob, carol):
    acme = alice.teams.get(slug="acme")
    with pytest.raises(PermissionDenied):
        team_mfa_requirement_set(team=acme, required=True, actor=bob)
    with pytest.raises(PermissionDenied):
        team_mfa_requirement_set(team=acme, required=True, actor=carol)
    acme.refresh_from_db()
    assert not acme.mfa_required
    client = Client()
    client.force_login(carol)
    assert client.post("/accounts/security/", {"team": "acme", "mfa_required": "on"}).status_code == 404
    client.force_login(bob)
    page = client.get("/accounts/security/")
    assert page.status_code == 200 and b'name="mfa_required"' not in page.content
    assert client.post("/accounts/security/", {"team": "acme", "mfa_required": "on"}).status_code == 404
    acme.refresh_from_db()
    assert not acme.mfa_required
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SETTINGS_CHANGED).exists()


def test_turning_the_rule_off_lets_an_unenrolled_owner_in_again(alice):
    acme = alice.teams.get(slug="acme")
    team_mfa_requirement_set(team=acme, required=True, actor=alice)
    client = Client()
    sign_in(client, "alice")
    assert gate_of(client, "/")[1].startswith(ACTIVATE)
    team_mfa_requirement_set(team=acme, required=False, actor=alice)
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SETTINGS_CHANGED).count() == 2


def test_a_code_from_the_step_before_is_still_taken_and_older_ones_are_not(client, alice):
    """Typed as the 30 seconds ran out, a code arrives in the next step."""
    import time

    sign_in(client, "alice")
    asked = client.get(ACTIVATE)
    client.post(asked["Location"], {"password": PASSWORD})
    client.get(ACTIVATE)
    secret = client.session["mfa.totp.secret"]
    too_old = client.post(ACTIVATE, {"code": totp_code(secret, at=time.time() - 90)})
    assert too_old.status_code == 200 and not Authenticator.objects.filter(user=alice).exists()
    late = client.post(ACTIVATE, {"code": totp_code(secret, at=time.time() - 30)})
    assert late.status_code == 302 and Authenticator.objects.filter(user=alice).exists()
