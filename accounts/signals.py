"""Account changes that must reach open sockets (see `accounts.sessions`), the
audit log's sign-in events, and the sessions that passed a second factor."""

from __future__ import annotations

from allauth.mfa import signals as mfa_signals
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.audit import audit_record, request_ip
from accounts.mfa import session_mfa_passed_mark
from accounts.models import AuditEvent, Membership, User
from accounts.sessions import access_check_after_commit


@receiver(user_logged_out)
def _sockets_check_on_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        access_check_after_commit(user.pk, ended_session=request.session.session_key)


@receiver(post_save, sender=User)
def _sockets_check_on_account_change(sender, instance: User, update_fields=None, **kwargs) -> None:
    # Signing in saves `last_login` only: nothing a socket depends on.
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    access_check_after_commit(instance.pk)


@receiver(post_delete, sender=User)
def _sockets_check_on_account_delete(sender, instance: User, **kwargs) -> None:
    access_check_after_commit(instance.pk)


# --- The audit log: every sign-in, failed sign-in and sign-out ---------------------


def _path(request) -> str:
    return getattr(request, "path", "") if request is not None else ""


@receiver(user_logged_in)
def _audit_sign_in(sender, request, user, **kwargs) -> None:
    audit_record(
        action=AuditEvent.Action.SIGN_IN,
        actor=user,
        target=f"user:{user.pk}",
        ip=request_ip(request),
        details={"path": _path(request), "method": _sign_in_method(request)},
    )


def _sign_in_method(request) -> str:
    """How this sign-in was proved, from allauth's record of the session's steps."""
    records = getattr(request, "session", {}).get("account_authentication_methods") or []
    methods = [str(record.get("method", "")) for record in records if isinstance(record, dict)]
    if "socialaccount" in methods:
        return "sso+mfa" if "mfa" in methods else "sso"
    return "password+mfa" if "mfa" in methods else "password"


@receiver(user_login_failed)
def _audit_sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    # Django has already replaced the password with asterisks.
    login = str(credentials.get("username") or credentials.get("email") or "")
    account = User.objects.filter(username__iexact=login).first() if login else None
    if account is None and "@" in login:
        account = User.objects.filter(email__iexact=login).order_by("pk").first()
    audit_record(
        action=AuditEvent.Action.SIGN_IN_FAILED,
        actor=account,
        actor_name=login,
        ip=request_ip(request),
        details={"reason": "bad_credentials", "path": _path(request)},
    )


@receiver(user_logged_out)
def _audit_sign_out(sender, request, user, **kwargs) -> None:
    if user is None:
        return
    audit_record(
        action=AuditEvent.Action.SIGN_OUT,
        actor=user,
        target=f"user:{user.pk}",
        ip=request_ip(request),
    )


@receiver(mfa_signals.authentication_failed)
def _audit_second_factor_failed(sender, request, user, authenticator=None, **kwargs) -> None:
    audit_record(
        action=AuditEvent.Action.SIGN_IN_FAILED,
        actor=user,
        target=f"user:{user.pk}",
        ip=request_ip(request),
        details={
            "reason": "bad_second_factor",
            "path": _path(request),
            "reauthentication": bool(kwargs.get("reauthentication")),
        },
    )


# --- A second factor passed in this session ---------------------------------------


@receiver(mfa_signals.authenticator_used)
def _mfa_passed_on_use(sender, request, user, **kwargs) -> None:
    session_mfa_passed_mark(request, user)


@receiver(post_delete, sender=Membership)
def _sockets_check_on_membership_end(sender, instance: Membership, **kwargs) -> None:
    # Out of a team (removed, left, or deleted in the admin): every socket of the
    # person asks again, and those on the team's conversations close.
    access_check_after_commit(instance.user_id)
