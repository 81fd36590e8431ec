"""Writes on accounts and teams."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.translation import gettext

from accounts.audit import audit_record
from accounts.models import AuditEvent, Membership, Team, User
from accounts.teams import team_setting_store


def user_primary_team(*, user: User) -> Team | None:
    """The team a new conversation is billed to: the user's oldest membership."""
    membership = (
        Membership.objects.filter(user=user)
        .select_related("team")
        .order_by("joined_at", "id")
        .first()
    )
    return membership.team if membership else None


@transaction.atomic
def team_mfa_requirement_set(
    *, team: Team, required: bool, actor: User, ip: str | None = None
) -> Team:
    """Require (or stop requiring) two-factor sign-in of the team's owners and
    admins. Only an owner of the team may; anyone else gets PermissionDenied."""
    is_owner = Membership.objects.filter(team=team, user=actor, role=Membership.Role.OWNER).exists()
    if not is_owner:
        raise PermissionDenied(gettext("Only an owner of the team can change its two-factor rule."))
    return team_setting_store(team=team, actor=actor, field="mfa_required", value=required, ip=ip)


def user_mfa_required(*, user: User) -> bool:
    """Whether this person must sign in with a second factor: they own or run a
    team that requires it."""
    return Membership.objects.filter(
        user=user,
        role__in=[Membership.Role.OWNER, Membership.Role.ADMIN],
        team__mfa_required=True,
    ).exists()


@transaction.atomic
def team_join_by_email_domain(
    *, user: User, verified_emails: Iterable[str], ip: str | None = None
) -> list[Team]:
    """Join a new single sign-on person to the teams `OIDC_DOMAIN_TEAMS` names for
    the domains of their verified addresses, as a member. A rule naming a team
    that does not exist joins nobody."""
    rules: dict[str, str] = getattr(settings, "OIDC_DOMAIN_TEAMS", {}) or {}
    joined: list[Team] = []
    for email in verified_emails:
        domain = email.rpartition("@")[2].lower()
        slug = rules.get(domain)
        if not slug:
            continue
        team = Team.objects.filter(slug=slug).first()
        if team is None:
            continue
        _, created = Membership.objects.get_or_create(
            user=user, team=team, defaults={"role": Membership.Role.MEMBER}
        )
        if created:
            audit_record(
                action=AuditEvent.Action.JOINED,
                actor=user,
                team=team,
                target=f"user:{user.pk}",
                ip=ip,
                details={"via": "sso_email_domain", "domain": domain},
            )
            joined.append(team)
    return joined


@transaction.atomic
def demo_world_seed(*, password: str) -> dict[str, User]:
    """Create (or reset) the demo teams and people; safe to run again.

    Acme: alice (owner) and bob (member). Globex: carol (owner).
    `admin` is a superuser for the Django admin. Passwords are reset to `password`.
    """
    people: dict[str, User] = {}
    specs = [
        ("alice", "Alice Archer", "acme", Membership.Role.OWNER),
        ("bob", "Bob Baker", "acme", Membership.Role.MEMBER),
        ("carol", "Carol Chen", "globex", Membership.Role.OWNER),
    ]
    teams = {
        "acme": Team.objects.get_or_create(slug="acme", defaults={"name": "Acme"})[0],
        "globex": Team.objects.get_or_create(slug="globex", defaults={"name": "Globex"})[0],
    }
    for username, display_name, team_slug, role in specs:
        user, _ = User.objects.get_or_create(
            username=username,
            defaults={"display_name": display_name, "email": f"{username}@example.com"},
        )
        user.set_password(password)
        user.save()
        Membership.objects.update_or_create(
            user=user, team=teams[team_slug], defaults={"role": role}
        )
        people[username] = user
    admin_user, _ = User.objects.get_or_create(
        username="admin", defaults={"email": "admin@example.com", "display_name": "Admin"}
    )
    admin_user.is_staff = True
    admin_user.is_superuser = True
    admin_user.set_password(password)
    admin_user.save()
    people["admin"] = admin_user
    return people
