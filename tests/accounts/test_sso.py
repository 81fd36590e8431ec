"""OpenID Connect single sign-on against a local provider started by the test.

The whole authorization-code flow runs: the sign-in page's button, the redirect
to the provider, its redirect back with a code, and the site's own calls to the
provider's token, userinfo and JWKS endpoints over HTTP on 127.0.0.1.
"""

from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from django.contrib.auth import SESSION_KEY

from accounts.models import AuditEvent, Membership, User
from tests.accounts.oidc_provider import LocalOpenIDProvider

pytestmark = pytest.mark.django_db

CLIENT_ID = "teamchat-test-client"
SECRET = "test-client-secret"


@pytest.fixture(scope="module")
def idp():
    provider = LocalOpenIDProvider(client_id=CLIENT_ID, client_secret=SECRET).start()
    yield provider
    provider.stop()


@pytest.fixture(autouse=True)
def sso_settings(settings, idp):
    idp.forge_signature = False
    idp.audience = None
    idp.claims = {
        "sub": "idp-user-1001",
        "email": "dana@acme.example",
        "email_verified": True,
        "name": "Dana Diaz",
        "given_name": "Dana",
        "family_name": "Diaz",
        "preferred_username": "dana",
    }
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "sso",
                    "name": "Acme SSO",
                    "client_id": CLIENT_ID,
                    "secret": SECRET,
                    "settings": {
                        "server_url": idp.issuer,
                        "verified_email": False,
                        "oauth_pkce_enabled": True,
                    },
                }
            ]
        }
    }
    settings.OIDC_DOMAIN_TEAMS = {"acme.example": "acme"}


def sso_round_trip(client, idp, next_url: str = "/"):
    """Press "Sign in with Acme SSO", let the provider sign the person in, and come
    back with its code; return the site's answer to the callback."""
    page = client.get(f"/accounts/login/?next={next_url}")
    assert b"Sign in with Acme SSO" in page.content
    start = client.post("/accounts/oidc/sso/login/", {"next": next_url}, REMOTE_ADDR="10.9.8.7")
    assert start.status_code == 302, start.content[:500]
    authorize = start["Location"]
    assert authorize.startswith(f"{idp.issuer}/authorize?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"]  # PKCE
    back = httpx2.get(authorize, follow_redirects=False)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    assert callback.path == "/accounts/oidc/sso/login/callback/"
    return client.get(f"{callback.path}?{callback.query}", REMOTE_ADDR="10.9.8.7")


def signed_in_user(client) -> User | None:
    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id) if user_id else None


def test_a_new_person_signs_in_with_sso_and_joins_the_team_of_their_domain(client, idp, world):
    answer = sso_round_trip(client, idp)
    assert answer.status_code == 302 and answer["Location"] == "/"
    user = signed_in_user(client)
    assert user is not None
    assert (user.email, user.first_name, user.last_name) == ("dana@acme.example", "Dana", "Diaz")
    assert not user.has_usable_password()
    membership = Membership.objects.get(user=user)
    assert (membership.team.slug, membership.role) == ("acme", "member")
    joined = AuditEvent.objects.get(action=AuditEvent.Action.JOINED, actor=user)
    assert joined.team.slug == "acme" and joined.details["via"] == "sso_email_domain"
    sign_in = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN, actor=user)
    assert sign_in.ip == "10.9.8.7" and sign_in.details["method"] == "sso"
    # The chat opens for them.
    assert client.get("/").status_code == 200


def test_the_next_sso_sign_in_is_the_same_person(client, idp, world):
    sso_round_trip(client, idp)
    first = signed_in_user(client)
    client.post("/accounts/logout/")
    assert signed_in_user(client) is None
    sso_round_trip(client, idp)
    assert signed_in_user(client) == first
    assert User.objects.filter(email="dana@acme.example").count() == 1
    assert Membership.objects.filter(user=first).count() == 1


def test_an_unverified_address_joins_no_team(client, idp, world):
    idp.claims = {**idp.claims, "email_verified": False}
    sso_round_trip(client, idp)
    user = signed_in_user(client)
    assert user is not None and not Membership.objects.filter(user=user).exists()


def test_a_domain_without_a_rule_joins_no_team(client, idp, world):
    idp.claims = {**idp.claims, "email": "erin@elsewhere.example", "sub": "idp-user-2"}
    sso_round_trip(client, idp)
    user = signed_in_user(client)
    assert user is not None and user.email == "erin@elsewhere.example"
    assert not Membership.objects.filter(user=user).exists()


def test_a_verified_address_of_an_existing_account_signs_that_account_in(client, idp, alice):
    idp.claims = {**idp.claims, "sub": "idp-alice", "email": "alice@example.com"}
    sso_round_trip(client, idp)
    assert signed_in_user(client) == alice


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda idp: setattr(idp, "forge_signature", True), id="bad-signature"),
        pytest.param(lambda idp: setattr(idp, "audience", "another-client"), id="wrong-audience"),
    ],
)
def test_a_bad_id_token_is_refused(client, idp, world, break_it):
    break_it(idp)
    answer = sso_round_trip(client, idp)
    assert signed_in_user(client) is None
    assert answer.status_code in (200, 400, 401, 403)
    assert b"Single sign-on failed" in answer.content
    assert not User.objects.filter(email="dana@acme.example").exists()
    failed = AuditEvent.objects.get(action=AuditEvent.Action.SIGN_IN_FAILED)
    assert failed.details["method"] == "sso" and failed.ip == "10.9.8.7"
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SIGN_IN).exists()
    # The code was spent on the token endpoint: the provider did answer.
    assert idp.token_requests and idp.token_requests[-1]["code_verifier"]


def test_sso_is_not_offered_when_it_is_not_configured(client, settings, world):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b"Sign in with" not in page.content
    assert client.post("/accounts/oidc/sso/login/").status_code == 404
