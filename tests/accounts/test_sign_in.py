"""Signing in and out through allauth: the demo logins, the throttle on failed
attempts (the site's page and the admin's alike), password reset by e-mail, and
the audit log of it all."""

import re
import time as real_time
import types

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.core import mail

from accounts.models import AuditEvent
from tests.accounts.signin import PASSWORD, sign_in

pytestmark = pytest.mark.django_db

TOO_MANY = "Too many failed login attempts. Try again later."


@pytest.fixture
def clock(monkeypatch):
    """The throttle's clock, to be moved on past its window."""
    from allauth.core.internal import ratelimit

    shim = types.SimpleNamespace(
        offset=0.0,
        monotonic=real_time.monotonic,
        sleep=real_time.sleep,
    )
    shim.time = lambda: real_time.time() + shim.offset
    monkeypatch.setattr(ratelimit, "time", shim)
    return shim


def signed_in_as(client):
    return client.session.get(SESSION_KEY)


@pytest.mark.parametrize("who", ["alice", "bob", "carol", "admin"])
def test_the_demo_logins_sign_in_by_username(client, world, who):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b"Sign in to Team chat" in page.content and b'name="username"' in page.content
    answer = sign_in(client, who)
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert signed_in_as(client) == str(world[who].pk)
    assert client.get("/").status_code == 200


def test_an_email_address_signs_in_too_and_next_is_followed(client, alice):
    answer = client.post(
        "/accounts/login/?next=/usage/",
        {"username": "alice@example.com", "password": PASSWORD, "next": "/usage/"},
    )
    assert answer.status_code == 302 and answer["Location"] == "/usage/"
    assert signed_in_as(client) == str(alice.pk)


def test_a_wrong_password_says_so_keeps_the_name_and_is_audited(client, alice):
    answer = sign_in(client, "alice", "not-her-password", ip="203.0.113.9")
    assert answer.status_code == 200 and signed_in_as(client) is None
    text = answer.content.decode()
    assert "not correct" in text and 'value="alice"' in text
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert (event.actor, event.actor_name, event.ip) == (alice, "alice", "203.0.113.9")
    assert "not-her-password" not in str(event.details)


def test_sign_in_and_sign_out_are_audited_with_the_address(client, alice):
    sign_in(client, "alice", ip="198.51.100.4")
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN)
    assert (event.actor, event.ip, event.details["method"]) == (alice, "198.51.100.4", "password")
    answer = client.post("/accounts/logout/", REMOTE_ADDR="198.51.100.4")
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/?signed_out=1"
    out = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_OUT)
    assert (out.actor, out.ip) == (alice, "198.51.100.4")
    assert Session.objects.count() == 0
    page = client.get(answer["Location"])
    assert b"You have been signed out." in page.content


def test_an_unknown_name_is_audited_without_an_actor(client, world):
    sign_in(client, "mallory", "guess")
    event = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert (event.actor, event.actor_name) == (None, "mallory")


@pytest.mark.real_backends
@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_after_five_failures_even_the_right_password_waits_for_the_window(
    client, world, clock, path
):
    admin = world["admin"]
    for attempt in range(5):
        answer = sign_in(client, "admin", f"wrong-{attempt}", path=path)
        assert answer.status_code == 200 and TOO_MANY not in answer.content.decode()
    refused = sign_in(client, "admin", PASSWORD, path=path)
    assert refused.status_code == 200 and TOO_MANY in refused.content.decode()
    assert signed_in_as(client) is None
    throttled = AuditEvent.objects.filter(
        action=AuditEvent.Action.SIGN_IN_FAILED, details__reason="throttled"
    )
    assert throttled.count() == 1 and throttled.get().actor == admin
    clock.offset = 299
    assert TOO_MANY in sign_in(client, "admin", PASSWORD, path=path).content.decode()
    clock.offset = 301
    answer = sign_in(client, "admin", PASSWORD, path=path)
    assert answer.status_code == 302 and signed_in_as(client) == str(admin.pk)


def test_the_two_sign_in_pages_share_one_count(client, world, clock):
    """Failures on the site's page count against the admin's, and the other way:
    switching pages is no way around the throttle, nor is typing the address
    instead of the name."""
    for attempt in range(3):
        sign_in(client, "admin", f"wrong-{attempt}", path="/admin/login/")
    for attempt in range(2):
        sign_in(client, "admin@example.com", f"wrong-{attempt}")
    for path in ("/accounts/login/", "/admin/login/"):
        assert TOO_MANY in sign_in(client, "admin", PASSWORD, path=path).content.decode()
    # Another account is not held up by it.
    assert sign_in(client, "bob").status_code == 302


def test_one_address_trying_many_accounts_is_held_up(client, world, settings):
    for n in range(settings.AUTH_LOGIN_FAILURES_PER_IP):
        sign_in(client, f"nobody-{n}", "guess", ip="192.0.2.50")
    assert TOO_MANY in sign_in(client, "alice", ip="192.0.2.50").content.decode()
    assert sign_in(client, "alice", ip="192.0.2.51").status_code == 302


def test_a_right_password_does_not_reset_the_count(client, world):
    """A success in between gives back its own attempt only, so a guesser who
    also knows one right password gets no more guesses."""
    for attempt in range(4):
        sign_in(client, "bob", f"wrong-{attempt}")
    assert sign_in(client, "bob").status_code == 302
    client.post("/accounts/logout/")
    sign_in(client, "bob", "wrong-again")
    assert TOO_MANY in sign_in(client, "bob").content.decode()


def test_the_admin_page_still_signs_staff_in_and_refuses_others(client, world):
    answer = sign_in(client, "bob", path="/admin/login/?next=/admin/")
    assert answer.status_code == 200 and signed_in_as(client) is None
    assert "staff account" in answer.content.decode()
    answer = client.post(
        "/admin/login/?next=/admin/", {"username": "admin", "password": PASSWORD, "next": "/admin/"}
    )
    assert answer.status_code == 302 and answer["Location"] == "/admin/"
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.SIGN_IN, actor=world["admin"], details__path="/admin/login/"
    ).exists()


def test_password_reset_by_email_sets_a_new_password_and_closes_old_sessions(
    client, alice, django_capture_on_commit_callbacks
):
    other = type(client)()
    sign_in(other, "alice")
    assert other.get("/").status_code == 200
    page = client.get("/accounts/password/reset/")
    assert page.status_code == 200 and b"Team chat" in page.content
    answer = client.post("/accounts/password/reset/", {"email": "alice@example.com"})
    assert answer.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"] and message.subject.startswith("[Team chat]")
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+/)", message.body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    action = form_page.redirect_chain[-1][0] if form_page.redirect_chain else link
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            action, {"password1": "a-brand-new-password-42", "password2": "a-brand-new-password-42"}
        )
    assert done.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a-brand-new-password-42")
    # The session signed in with the old password no longer stands.
    assert other.get("/").status_code == 302
    assert sign_in(type(client)(), "alice", "a-brand-new-password-42").status_code == 302


def test_an_unknown_address_gets_the_same_answer_and_no_mail(client, world):
    answer = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert answer.status_code == 302 and len(mail.outbox) == 0


def test_there_is_no_self_sign_up(client, world):
    page = client.get("/accounts/signup/")
    assert b"Sign Up Closed" in page.content or b"closed" in page.content.lower()
    client.post(
        "/accounts/signup/",
        {
            "username": "eve",
            "email": "eve@example.com",
            "password1": "a-long-password-9",
            "password2": "a-long-password-9",
        },
    )
    assert not type(world["alice"]).objects.filter(username="eve").exists()
