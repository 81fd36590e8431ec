"""Every word of the account pages is marked for translation.

Under the pseudo-language (tests/i18n_pseudo.py) a marked string comes out as
⟦...⟧; a bare word left on a page is one no translator could reach. The pages:
sign-in (with its errors and single sign-on), the security page, two-factor's
pages (allauth's templates in the site's layouts), the password change, the
single sign-on error, and the 404 and 500 pages. The data a test puts there
itself (names, teams, the authenticator secret, recovery codes) is taken out
first: no catalog translates it.
"""

from __future__ import annotations

import re
import uuid

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.contrib.auth import SESSION_KEY
from django.test import Client, RequestFactory
from django.urls import path
from django.views.defaults import server_error

from accounts.models import User
from chatsite.urls import urlpatterns as site_urlpatterns
from tests.accounts.signin import PASSWORD, sign_in, totp_code
from tests.i18n_pseudo import (
    CLOSE,
    OPEN,
    page_unmarked_words,
    pseudo_language,  # noqa: F401  (the fixture)
)

ACTIVATE = "/accounts/2fa/totp/activate/"
AUTHENTICATE = "/accounts/2fa/authenticate/"
MFA_REAUTHENTICATE = "/accounts/2fa/reauthenticate/"
REAUTHENTICATE = "/accounts/reauthenticate/"
RECOVERY_CODES = "/accounts/2fa/recovery-codes/"
DEACTIVATE = "/accounts/2fa/totp/deactivate/"
SSO_NAME = "Acme SSO"


def _failing_view(request):
    raise RuntimeError("a view that fails")


# The site's routes and one that fails, for the 500 page through the middleware.
urlpatterns = [path("test-server-error/", _failing_view), *site_urlpatterns]


def _people(*users) -> list[str]:
    """What the pages show of a person: the username, the name they go by, the address."""
    names = []
    for user in users:
        names += [user.username, str(user), user.get_full_name(), user.email]
        names.append(getattr(user, "display_name", ""))
    return [name for name in names if name]


def _team_names(*users) -> list[str]:
    return [team.name for user in users for team in user.teams.all()]


def _data(*users) -> list[str]:
    return [*_people(*users), *_team_names(*users), SSO_NAME]


def _page(answer, status: int = 200) -> str:
    assert answer.status_code == status, (answer.status_code, answer.get("Location"))
    return answer.content.decode()


def _signed_in(user) -> Client:
    """Signed in with the password, as the sign-in page does (not force_login: the
    two-factor gate wants a session that went through it)."""
    client = Client()
    answer = sign_in(client, user.username)
    assert answer.status_code == 302, answer.content[:300]
    return client


def _enrolled(client) -> None:
    """Set up TOTP through its pages, each checked on the way: the password again,
    the activation page (a wrong code too), the recovery codes."""
    asked = client.get(ACTIVATE)
    assert asked.status_code == 302 and asked["Location"].startswith(REAUTHENTICATE)
    reauthenticate = _page(client.get(asked["Location"]))
    assert 'name="password"' in reauthenticate
    assert page_unmarked_words(reauthenticate, data=_data(_user_of(client))) == []
    again = client.post(asked["Location"], {"password": PASSWORD})
    assert again.status_code == 302 and again["Location"] == ACTIVATE
    activate = _page(client.get(ACTIVATE))
    secret = client.session["mfa.totp.secret"]
    assert secret in activate
    assert page_unmarked_words(activate, data=[*_data(_user_of(client)), secret]) == []
    wrong = _page(client.post(ACTIVATE, {"code": "000000"}))
    assert 'class="field-error"' in wrong
    assert page_unmarked_words(wrong, data=[*_data(_user_of(client)), secret]) == []
    answer = client.post(ACTIVATE, {"code": totp_code(secret)})
    assert answer.status_code == 302, answer.content[:300]
    codes_page = _page(client.get(RECOVERY_CODES))
    codes = _recovery_codes(_user_of(client))
    assert codes and all(code in codes_page for code in codes)
    assert page_unmarked_words(codes_page, data=[*_data(_user_of(client)), *codes]) == []


def _user_of(client) -> User:
    return User.objects.get(pk=client.session[SESSION_KEY])


def _recovery_codes(user) -> list[str]:
    authenticator = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    return RecoveryCodes(authenticator).get_unused_codes()


@pytest.fixture
def sso_on(settings):
    """A single sign-on provider on the sign-in page (its name is the site's data).
    The address is loopback's discard port: nothing here talks to it."""
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "sso",
                    "name": SSO_NAME,
                    "client_id": "teamchat-test-client",
                    "secret": "test-client-secret",
                    "settings": {"server_url": "http://127.0.0.1:9", "oauth_pkce_enabled": True},
                }
            ]
        }
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("pseudo_language")
class TestSignIn:
    def test_the_sign_in_page(self, world):
        html = _page(Client().get("/accounts/login/"))
        assert f"{OPEN}Sign in to Team chat{CLOSE}" in html
        assert page_unmarked_words(html) == []

    def test_a_failed_sign_in(self, world):
        html = _page(sign_in(Client(), "alice", "not-the-password"))
        assert 'role="alert"' in html
        assert page_unmarked_words(html, data=["alice"]) == []

    def test_signed_out_and_a_page_the_account_cannot_open(self, alice):
        signed_out = _page(Client().get("/accounts/login/?signed_out=1"))
        assert f"{OPEN}You have been signed out.{CLOSE}" in signed_out
        assert page_unmarked_words(signed_out) == []
        refused = _page(_signed_in(alice).get("/accounts/login/?next=/admin/"))
        assert f"{OPEN}Your account cannot open that page." in refused
        assert page_unmarked_words(refused, data=_data(alice)) == []

    @pytest.mark.usefixtures("sso_on")
    def test_the_sign_in_page_with_single_sign_on(self, world):
        html = _page(Client().get("/accounts/login/"))
        assert 'data-sso="sso"' in html
        assert f"{OPEN}Sign in with {SSO_NAME}{CLOSE}" in html
        assert page_unmarked_words(html, data=[SSO_NAME]) == []

    def test_single_sign_on_with_no_name_of_its_own(self, world, sso_on, settings):
        """OIDC_DISPLAY_NAME unset: the button names it in the page's words (the
        settings' default is lazy, as here)."""
        from django.utils.translation import gettext_lazy

        settings.SOCIALACCOUNT_PROVIDERS["openid_connect"]["APPS"][0]["name"] = gettext_lazy(
            "Single sign-on"
        )
        html = _page(Client().get("/accounts/login/"))
        assert f"{OPEN}Sign in with {OPEN}Single sign-on{CLOSE}{CLOSE}" in html
        assert page_unmarked_words(html) == []

    @pytest.mark.usefixtures("sso_on")
    def test_the_single_sign_on_error_page(self, world):
        html = _page(
            Client().get("/accounts/oidc/sso/login/callback/?error=server_error"), status=401
        )
        assert f"{OPEN}Single sign-on failed{CLOSE}" in html
        assert page_unmarked_words(html, data=[SSO_NAME]) == []

    @pytest.mark.usefixtures("sso_on")
    def test_a_cancelled_single_sign_on(self, world):
        html = _page(
            Client().get("/accounts/oidc/sso/login/callback/?error=access_denied"), status=401
        )
        assert page_unmarked_words(html, data=[SSO_NAME]) == []

    def test_the_second_factor_at_sign_in(self, alice):
        _enrolled(_signed_in(alice))
        client = Client()
        answer = sign_in(client, "alice")
        assert answer.status_code == 302 and answer["Location"] == AUTHENTICATE
        asked = _page(client.get(AUTHENTICATE))
        assert page_unmarked_words(asked, data=_data(alice)) == []
        wrong = _page(client.post(AUTHENTICATE, {"code": "000000"}))
        assert 'class="field-error"' in wrong
        assert page_unmarked_words(wrong, data=_data(alice)) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("pseudo_language")
class TestSecurity:
    def test_the_security_page_without_two_factor(self, alice):
        client = _signed_in(alice)
        html = _page(client.get("/accounts/security/"))
        assert 'id="team-mfa-acme"' in html  # alice owns Acme: its rule is here
        assert f"{OPEN}Set up two-factor{CLOSE}" in html
        assert page_unmarked_words(html, data=_data(alice)) == []

    def test_the_security_page_with_two_factor_and_a_saved_rule(self, alice):
        client = _signed_in(alice)
        _enrolled(client)
        saved = client.post("/accounts/security/", {"team": "acme", "mfa_required": "on"})
        html = _page(client.get(saved["Location"]))
        assert f"{OPEN}Manage two-factor and recovery codes{CLOSE}" in html
        assert f"{OPEN}Saved.{CLOSE}" in html
        assert page_unmarked_words(html, data=_data(alice)) == []
        index = _page(client.get("/accounts/2fa/"))
        assert page_unmarked_words(index, data=_data(alice)) == []

    def test_the_security_page_of_an_owner_whose_team_requires_it_after_deactivating(self, alice):
        """This session passed a second factor before the authenticator went, so
        the page still opens, and says why two-factor is wanted back."""
        client = _signed_in(alice)
        _enrolled(client)
        client.post("/accounts/security/", {"team": "acme", "mfa_required": "on"})
        deactivate = _page(client.get(DEACTIVATE))
        assert page_unmarked_words(deactivate, data=_data(alice)) == []
        assert client.post(DEACTIVATE).status_code == 302
        assert not Authenticator.objects.filter(user=alice, type=Authenticator.Type.TOTP).exists()
        html = _page(client.get("/accounts/security/"))
        assert f"{OPEN}Off. A team you own or run requires it." in html
        assert page_unmarked_words(html, data=_data(alice)) == []

    def test_a_session_asked_for_its_second_factor_again(self, alice):
        _enrolled(_signed_in(alice))
        stale = Client()
        stale.force_login(alice)  # a session that never passed the second factor
        html = _page(stale.get(MFA_REAUTHENTICATE))
        assert 'name="code"' in html
        assert page_unmarked_words(html, data=_data(alice)) == []

    def test_the_password_change_pages(self, bob):
        client = _signed_in(bob)
        form = _page(client.get("/accounts/password/"))
        assert f"{OPEN}Change your password{CLOSE}" in form
        assert page_unmarked_words(form, data=_data(bob)) == []
        refused = client.post(
            "/accounts/password/",
            {"old_password": "wrong", "new_password1": "a", "new_password2": "b"},
        )
        html = _page(refused)
        assert 'class="field-error"' in html
        assert page_unmarked_words(html, data=_data(bob)) == []
        done = _page(client.get("/accounts/password/done/"))
        assert f"{OPEN}Your password was changed{CLOSE}" in done
        assert page_unmarked_words(done, data=_data(bob)) == []


@pytest.mark.django_db
@pytest.mark.usefixtures("pseudo_language")
class TestErrorPages:
    def test_the_404_page(self, settings, alice):
        settings.DEBUG = False
        client = _signed_in(alice)
        html = _page(client.get(f"/c/{uuid.uuid4()}/"), status=404)
        assert f"{OPEN}We can’t find that page{CLOSE}" in html
        assert page_unmarked_words(html, data=_data(alice)) == []

    def test_the_404_page_signed_out(self, settings, world):
        settings.DEBUG = False
        answer = Client().get("/accounts/no-such-page/")
        html = _page(answer, status=404)
        assert f"{OPEN}Sign in{CLOSE}" in html
        assert page_unmarked_words(html) == []

    def test_the_500_page_as_django_renders_it(self):
        """server_error renders with no context at all: the words still come through."""
        answer = server_error(RequestFactory().get("/"))
        html = answer.content.decode()
        assert answer.status_code == 500
        assert f"{OPEN}Something went wrong on our side{CLOSE}" in html
        assert page_unmarked_words(html) == []

    @pytest.mark.urls(__name__)
    def test_the_500_page_of_a_failing_request(self, settings, world):
        settings.DEBUG = False
        client = Client(raise_request_exception=False)
        html = _page(client.get("/test-server-error/"), status=500)
        assert f"{OPEN}Something went wrong on our side{CLOSE}" in html
        assert re.search(r'<html lang="en', html)
        assert page_unmarked_words(html) == []
