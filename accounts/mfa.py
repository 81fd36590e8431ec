"""Two-factor sign-in: required by a team (Team.mfa_required), and kept by everyone enrolled.

An owner or admin of such a team, and anyone who has enrolled a TOTP
authenticator, reaches only enrolment, verification and sign-out until this
session has passed a second factor: at sign-in (allauth's MFA step), on
enrolling, or on verifying afterwards (the session was signed in before the
rule, or through the admin's sign-in page, which has no such step). Which
session passed is kept in the session itself, and ends with it.
"""

from __future__ import annotations

from urllib.parse import urlencode

from allauth.mfa.models import Authenticator
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import Resolver404, resolve, reverse

from accounts.services import user_mfa_required

SESSION_KEY = "accounts_mfa_passed_user"

# What such a person may still open: enrolment (allauth asks for the password
# again first if the sign-in is older than a few minutes), the recovery codes
# it shows next, verification, and sign-out.
ALLOWED_URL_NAMES = frozenset(
    {
        "mfa_index",
        "mfa_activate_totp",
        "mfa_view_recovery_codes",
        "mfa_download_recovery_codes",
        "mfa_generate_recovery_codes",
        "mfa_reauthenticate",
        "mfa_authenticate",
        "account_reauthenticate",
        "openid_connect_login",
        "openid_connect_callback",
        "sso_callback",
        "logout",
        "account_logout",
    }
)


def session_mfa_passed_mark(request: HttpRequest, user) -> None:
    """This session passed a second factor as `user`."""
    if request is not None and hasattr(request, "session") and user is not None:
        request.session[SESSION_KEY] = user.pk


def session_mfa_passed(request: HttpRequest) -> bool:
    return request.session.get(SESSION_KEY) == request.user.pk


def user_totp_enrolled(user) -> bool:
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def session_mfa_missing(*, user, session) -> str | None:
    """What this signed-in session still lacks: "verify" (enrolled, but this
    session has not passed the second factor), "enrol" (a team requires it and
    there is none), or None. Also asked at a socket's handshake."""
    if not user.is_authenticated or session.get(SESSION_KEY) == user.pk:
        return None
    # Loaded with the user by accounts.backends (no query); asked if it was not.
    enrolled = getattr(user, "mfa_totp_enrolled", None)
    if enrolled is None:
        enrolled = user_totp_enrolled(user)
    if enrolled:
        # Enrolled, so asked at every sign-in; a session that skipped the step
        # (the admin's sign-in page has none) proves it here.
        return "verify"
    required = getattr(user, "mfa_team_required", None)
    if required is None:
        required = user_mfa_required(user=user)
    return "enrol" if required else None


def mfa_gate_target(request: HttpRequest) -> str | None:
    """Where a signed-in request must go instead, or None if it may go on."""
    if not request.user.is_authenticated or session_mfa_passed(request):
        return None
    try:
        name = resolve(request.path_info).url_name
    except Resolver404:
        name = None
    if name in ALLOWED_URL_NAMES:
        return None
    missing = session_mfa_missing(user=request.user, session=request.session)
    if missing is None:
        return None
    view = "mfa_reauthenticate" if missing == "verify" else "mfa_activate_totp"
    return f"{reverse(view)}?{urlencode({'next': request.get_full_path()})}"


class MfaRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        target = mfa_gate_target(request)
        if target is not None:
            return HttpResponseRedirect(target)
        enrolling = _is_enrolment(request) and not user_totp_enrolled(request.user)
        response = self.get_response(request)
        if enrolling and user_totp_enrolled(request.user):
            # Enrolling took a code from the new authenticator: the same proof.
            # (Marked here rather than on allauth's `authenticator_added`, which
            # is sent after commit, possibly after the session was saved.)
            session_mfa_passed_mark(request, request.user)
        return response


def _is_enrolment(request: HttpRequest) -> bool:
    if request.method != "POST" or not request.user.is_authenticated:
        return False
    try:
        return resolve(request.path_info).url_name == "mfa_activate_totp"
    except Resolver404:
        return False
