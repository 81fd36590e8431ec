"""How allauth signs people in here (settings ACCOUNT_ADAPTER, SOCIALACCOUNT_ADAPTER).

- No self sign-up: accounts come from an admin, an invite or a first single
  sign-on (the identity provider is the one that decides who may).
- The failed sign-in throttle is keyed on the account (whatever name or
  address was typed for it) and on the address the attempt came from; a refused
  attempt is in the audit log like any other failed one.
- A new single sign-on person whose verified address matches `OIDC_DOMAIN_TEAMS`
  joins that team as a member.
"""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.core.exceptions import ValidationError
from django.db.models import Q

from accounts.audit import audit_record, request_ip
from accounts.models import AuditEvent, User
from accounts.services import team_join_by_email_domain

# allauth's own notes on these are replaced by the site's ("You have been signed out.").
_QUIET_MESSAGES = {
    "account/messages/logged_in.txt",
    "account/messages/logged_out.txt",
}


def _login_of(credentials: dict[str, Any]) -> str:
    return str(credentials.get("email") or credentials.get("username") or "")


def _account_for_login(login: str) -> User | None:
    if not login:
        return None
    return (
        User.objects.filter(Q(username__iexact=login) | Q(email__iexact=login))
        .order_by("pk")
        .first()
    )


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return False

    def add_message(self, request, level, message_template=None, *args, **kwargs) -> None:
        if message_template in _QUIET_MESSAGES:
            return
        super().add_message(request, level, message_template, *args, **kwargs)

    def _get_login_attempts_cache_key(self, request, **credentials: Any) -> str:
        # One counter per account, whether "alice" or "alice@example.com" was
        # typed; a name with no account gets its own.
        login = _login_of(credentials).lower()
        account = _account_for_login(login)
        return f"user:{account.pk}" if account else f"login:{login}"

    def pre_authenticate(self, request, **credentials: Any) -> None:
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            login = _login_of(credentials)
            audit_record(
                action=AuditEvent.Action.SIGN_IN_FAILED,
                actor=_account_for_login(login),
                actor_name=login,
                ip=request_ip(request),
                details={"reason": "throttled", "path": request.path},
            )
            raise


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin) -> bool:
        return True

    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form)
        emails = [address.email for address in sociallogin.email_addresses if address.verified]
        team_join_by_email_domain(user=user, verified_emails=emails, ip=request_ip(request))
        return user

    def on_authentication_error(
        self, request, provider, error=None, exception=None, extra_context=None
    ) -> None:
        audit_record(
            action=AuditEvent.Action.SIGN_IN_FAILED,
            ip=request_ip(request),
            details={
                "method": "sso",
                "provider": getattr(provider, "id", str(provider)),
                "error": str(error or ""),
                "exception": type(exception).__name__ if exception else "",
            },
        )
        super().on_authentication_error(
            request, provider, error=error, exception=exception, extra_context=extra_context
        )
