"""Invitations by e-mail: a single-use link that expires, sent through Django's
e-mail backend (on the embedded default, a file in `var/mail/`).

The link's token is the invitation's id and a random nonce, signed with the
site's secret key (`django.core.signing`): a row read from the database is not
enough to forge one, and a new invitation never revives an old link.
Accepting checks, in this order: the token is genuine, the invitation was not
withdrawn, not used, not expired, and it is accepted by the person it was sent
to (the signed-in account's e-mail address must be the invited one), so a
link forwarded to someone else fails with a message saying why.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext

from accounts.audit import audit_record
from accounts.models import AuditEvent, Invite, Membership, Team, User

_SALT = "accounts.invite"


class InviteRefused(Exception):
    """An invitation cannot be made or used; `message` says why, for the person.

    `code`: not_found, withdrawn, used, expired, wrong_account, bad_input."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


def invite_token(invite: Invite) -> str:
    """The secret part of the invitation's link."""
    return signing.Signer(salt=_SALT).sign(f"{invite.pk}.{invite.nonce}")


def invite_path(invite: Invite) -> str:
    return f"/invites/{invite_token(invite)}/"


def _masked(email: str) -> str:
    """ "b***@example.com": enough to recognise one's own address, not to learn another's."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def invite_create(
    *,
    team: Team,
    email: str,
    role: str = Membership.Role.MEMBER,
    invited_by: User,
    site_url: str,
    ip: str | None = None,
) -> Invite:
    """Invite `email` to `team` as `role` and send the link (after commit).

    Owners invite to any role; admins to member or admin. Someone already in the
    team is refused; an earlier pending invitation of the same address is
    withdrawn (its link stops working) and replaced."""
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise InviteRefused("bad_input", gettext("Enter a valid e-mail address.")) from None
    if role not in Membership.Role.values:
        raise InviteRefused("bad_input", gettext("Unknown role: %(role)s.") % {"role": role})
    mine = Membership.objects.filter(team=team, user=invited_by).first()
    if mine is None or mine.role not in (Membership.Role.OWNER, Membership.Role.ADMIN):
        raise InviteRefused("not_allowed", gettext("Only owners and admins can invite."))
    if role == Membership.Role.OWNER and mine.role != Membership.Role.OWNER:
        raise InviteRefused("not_allowed", gettext("Only an owner can invite an owner."))
    if Membership.objects.filter(team=team, user__email__iexact=email).exists():
        raise InviteRefused(
            "bad_input",
            gettext("%(email)s is already a member of %(team)s.") % {"email": email, "team": team},
        )
    now = timezone.now()
    with transaction.atomic():
        Invite.objects.filter(
            team=team, email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now)
        invite = Invite.objects.create(
            team=team,
            email=email,
            role=role,
            invited_by=invited_by,
            nonce=secrets.token_urlsafe(24),
            expires_at=now + dt.timedelta(days=settings.TEAM_INVITE_DAYS),
        )
        audit_record(
            action=AuditEvent.Action.INVITED,
            actor=invited_by,
            team=team,
            target=f"invite:{invite.pk}",
            ip=ip,
            details={"email": email, "role": role},
        )
        link = site_url.rstrip("/") + invite_path(invite)
        transaction.on_commit(lambda: _invite_mail_send(invite, link))
    return invite


def _invite_mail_send(invite: Invite, link: str) -> None:
    inviter = invite.invited_by.display_name or invite.invited_by.get_username()
    # In the language of the request that sent it (the inviter's).
    words = {
        "inviter": inviter,
        "team": invite.team.name,
        "role": invite.get_role_display().lower(),
        "link": link,
        "email": invite.email,
        "until": date_format(invite.expires_at, "j F Y, H:i"),
    }
    send_mail(
        subject=gettext("%(inviter)s invited you to %(team)s on Team chat") % words,
        message=gettext(
            "%(inviter)s invited you to join %(team)s on Team chat as %(role)s.\n\n"
            "Accept the invitation: %(link)s\n\n"
            "The link works once, for %(email)s, until %(until)s UTC.\n"
        )
        % words,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[invite.email],
    )


@transaction.atomic
def invite_revoke(*, invite: Invite, actor: User, ip: str | None = None) -> None:
    """Withdraw a pending invitation: its link stops working."""
    if invite.accepted_at is not None or invite.revoked_at is not None:
        return
    invite.revoked_at = timezone.now()
    invite.save(update_fields=["revoked_at"])
    audit_record(
        action=AuditEvent.Action.INVITE_REVOKED,
        actor=actor,
        team=invite.team,
        target=f"invite:{invite.pk}",
        ip=ip,
        details={"email": invite.email},
    )


def invites_pending(*, team: Team) -> list[Invite]:
    """Invitations of the team not yet used, withdrawn or expired, newest first."""
    return list(
        Invite.objects.filter(
            team=team,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).select_related("invited_by")
    )


@dataclass(frozen=True)
class InviteCheck:
    """What opening an invitation's link leads to.

    `next_step`: "join" (signed in as the invited person), "sign_in" (an
    account with that address exists: sign in first) or "sign_up" (none does:
    create one)."""

    invite: Invite
    next_step: str


def invite_check(*, token: str, user: User) -> InviteCheck:
    """The invitation of `token` if it can be accepted by `user` (possibly
    anonymous) now, or InviteRefused saying why."""
    invite = _invite_of_token(token)
    if invite.revoked_at is not None:
        raise InviteRefused(
            "withdrawn",
            gettext("This invitation was withdrawn. Ask the team's owner for a new one."),
        )
    if invite.accepted_at is not None:
        raise InviteRefused(
            "used",
            gettext(
                "This invitation was already used: each link works once. "
                "Sign in, or ask the team's owner for a new invitation."
            ),
        )
    if invite.expires_at <= timezone.now():
        raise InviteRefused(
            "expired",
            gettext(
                "This invitation expired on %(date)s (UTC). Ask the team's owner for a new one."
            )
            % {"date": date_format(invite.expires_at, "j F Y")},
        )
    if user.is_authenticated:
        if (user.email or "").strip().lower() != invite.email.lower():
            raise InviteRefused(
                "wrong_account",
                gettext(
                    "This invitation was sent to %(email)s, and you are signed in as "
                    "%(username)s. Sign out and open the link again, or ask for an "
                    "invitation to your own address."
                )
                % {"email": _masked(invite.email), "username": user.get_username()},
            )
        return InviteCheck(invite=invite, next_step="join")
    if User.objects.filter(email__iexact=invite.email).exists():
        return InviteCheck(invite=invite, next_step="sign_in")
    return InviteCheck(invite=invite, next_step="sign_up")


def _invite_of_token(token: str) -> Invite:
    not_found = InviteRefused(
        "not_found",
        gettext("This invitation link is not valid. Check that it was copied whole."),
    )
    try:
        value = signing.Signer(salt=_SALT).unsign(token)
    except signing.BadSignature:
        raise not_found from None
    pk, _, nonce = value.partition(".")
    invite = (
        Invite.objects.filter(pk=int(pk) if pk.isdigit() else 0)
        .select_related("team", "invited_by")
        .first()
    )
    if invite is None or not secrets.compare_digest(invite.nonce, nonce):
        raise not_found
    return invite


def invite_accept(
    *,
    token: str,
    user: User,
    ip: str | None = None,
    username: str = "",
    display_name: str = "",
    password: str = "",
) -> tuple[User, Membership]:
    """Use the invitation: the signed-in invited person joins the team; an
    anonymous visitor with no account gets one (`username`, `password`) with the
    invited address, and joins. Under a lock on the invitation, so two tabs
    accepting at once use it once."""
    with transaction.atomic():
        check = invite_check(token=token, user=user)
        invite = Invite.objects.select_for_update().get(pk=check.invite.pk)
        if invite.accepted_at is not None:  # used since the check, by the other tab
            raise InviteRefused(
                "used", gettext("This invitation was already used: each link works once.")
            )
        if check.next_step == "sign_in":
            raise InviteRefused(
                "sign_in", gettext("An account with this address exists: sign in to accept.")
            )
        if check.next_step == "sign_up":
            user = _account_create(
                email=invite.email,
                username=username,
                display_name=display_name,
                password=password,
            )
        membership, created = Membership.objects.get_or_create(
            user=user, team=invite.team, defaults={"role": invite.role}
        )
        invite.accepted_at = timezone.now()
        invite.accepted_by = user
        invite.save(update_fields=["accepted_at", "accepted_by"])
        audit_record(
            action=AuditEvent.Action.JOINED,
            actor=user,
            team=invite.team,
            target=f"user:{user.pk}",
            ip=ip,
            details={
                "invite": invite.pk,
                "role": membership.role,
                "new_account": check.next_step == "sign_up",
                "already_member": not created,
            },
        )
    return user, membership


def _account_create(*, email: str, username: str, display_name: str, password: str) -> User:
    username = username.strip()
    if not username:
        raise InviteRefused("bad_input", gettext("Choose a username."))
    try:
        User.username_validator(username)
    except ValidationError as exc:
        raise InviteRefused("bad_input", " ".join(exc.messages)) from None
    if User.objects.filter(username__iexact=username).exists():
        raise InviteRefused(
            "bad_input",
            gettext("The username %(username)s is taken; choose another.") % {"username": username},
        )
    candidate = User(username=username, email=email, display_name=display_name.strip()[:150])
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise InviteRefused("bad_input", " ".join(exc.messages)) from None
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError:
        raise InviteRefused(
            "bad_input",
            gettext("The username %(username)s is taken; choose another.") % {"username": username},
        ) from None
    return candidate
