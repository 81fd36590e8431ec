"""Teams and their members: who is in which team with which role, and changing that.

Roles: an owner may do everything; an admin manages members and admins (not
owners), invitations, presets and the budget; a member chats. A team always
keeps at least one owner. Removing someone takes effect at once: their
sockets are asked to check their access on every web process
(`accounts.signals`, which also sees removals made in the admin), and every
page of the team answers them 404 from the next request.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext

from accounts.audit import audit_record
from accounts.models import AuditEvent, Membership, Team, User

# The session key of the team a person works in (the sidebar's team switcher).
CURRENT_TEAM_SESSION_KEY = "current_team_id"

MANAGER_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


class TeamActionRefused(Exception):
    """Something a person may not do to a team; `message` is for them."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class TeamSeat:
    """A person's place in a team, as the team's pages need it."""

    team: Team
    role: str

    @property
    def is_owner(self) -> bool:
        return self.role == Membership.Role.OWNER

    @property
    def is_manager(self) -> bool:
        return self.role in MANAGER_ROLES


def team_seat(*, user: User, slug: str) -> TeamSeat | None:
    """The team `slug` and the user's role in it, if they are a member; else None
    (callers answer 404: a team you are not in is not shown to exist)."""
    if not user.is_authenticated:
        return None
    membership = (
        Membership.objects.filter(user=user, team__slug=slug).select_related("team").first()
    )
    return TeamSeat(team=membership.team, role=membership.role) if membership else None


def team_list_for_user(*, user: User) -> list[Team]:
    """The teams a person is in, by name."""
    if not user.is_authenticated:
        return []
    return list(Team.objects.filter(memberships__user=user).order_by("name", "id"))


def team_is_member(*, user_id: int, team_id: int) -> bool:
    return Membership.objects.filter(user_id=user_id, team_id=team_id).exists()


def user_current_team(*, user: User, session) -> Team | None:
    """The team a person works in now: the one picked in the switcher (kept in the
    session) while they are still in it, else their oldest membership."""
    return user_team_state(user=user, session=session).current


@dataclass(frozen=True)
class TeamState:
    """A person's teams (oldest membership first) and the one they work in."""

    teams: list[Team]
    current: Team | None


def user_team_state(*, user: User, session) -> TeamState:
    """The person's teams and current team, in one query."""
    if not user.is_authenticated:
        return TeamState(teams=[], current=None)
    teams = [
        m.team
        for m in Membership.objects.filter(user=user)
        .select_related("team")
        .order_by("joined_at", "id")
    ]
    picked = session.get(CURRENT_TEAM_SESSION_KEY) if session is not None else None
    current = next((t for t in teams if t.pk == picked), teams[0] if teams else None)
    return TeamState(teams=sorted(teams, key=lambda t: (t.name.lower(), t.pk)), current=current)


def request_team_state(request) -> TeamState:
    """`user_team_state` of the request's user, read once per request (the sidebar's
    switcher and the page both ask)."""
    state = getattr(request, "_team_state", None)
    if state is None:
        state = user_team_state(user=request.user, session=request.session)
        request._team_state = state
    return state


def user_current_team_set(*, user: User, session, team: Team) -> None:
    """Work in `team` from now on (new conversations go to it); only a team one is in."""
    if not team_is_member(user_id=user.pk, team_id=team.pk):
        raise TeamActionRefused(gettext("You are not a member of that team."))
    session[CURRENT_TEAM_SESSION_KEY] = team.pk


def team_members(*, team: Team) -> list[Membership]:
    """The team's memberships with their people: owners, admins, then members, by name."""
    order = {Membership.Role.OWNER: 0, Membership.Role.ADMIN: 1, Membership.Role.MEMBER: 2}
    members = list(Membership.objects.filter(team=team).select_related("user"))
    return sorted(members, key=lambda m: (order.get(m.role, 3), str(m.user).lower()))


def _locked_memberships(team: Team) -> dict[int, Membership]:
    """Every membership of the team, locked until the transaction ends: two owners
    demoting each other at once must not leave the team with none."""
    Team.objects.select_for_update().filter(pk=team.pk).first()
    return {m.user_id: m for m in Membership.objects.filter(team=team).select_related("user")}


def _may_manage(actor_role: str | None, target_role: str, new_role: str | None = None) -> bool:
    if actor_role == Membership.Role.OWNER:
        return True
    if actor_role == Membership.Role.ADMIN:
        return target_role != Membership.Role.OWNER and new_role != Membership.Role.OWNER
    return False


@transaction.atomic
def team_role_set(
    *, team: Team, actor: User, member: User, role: str, ip: str | None = None
) -> Membership:
    """Give a member another role. Owners change anyone's; admins those of members
    and admins (never to owner); the last owner stays an owner."""
    if role not in Membership.Role.values:
        raise TeamActionRefused(gettext("Unknown role: %(role)s.") % {"role": role})
    memberships = _locked_memberships(team)
    mine = memberships.get(actor.pk)
    target = memberships.get(member.pk)
    if target is None:
        raise TeamActionRefused(
            gettext("%(member)s is not a member of %(team)s.") % {"member": member, "team": team}
        )
    if not _may_manage(mine.role if mine else None, target.role, role):
        raise TeamActionRefused(
            gettext("Only an owner can change an owner's role or make someone an owner.")
        )
    if target.role == role:
        return target
    owners = [m for m in memberships.values() if m.role == Membership.Role.OWNER]
    if target.role == Membership.Role.OWNER and len(owners) == 1:
        raise TeamActionRefused(
            gettext("%(team)s needs at least one owner: make someone else an owner first.")
            % {"team": team}
        )
    old_role = target.role
    target.role = role
    target.save(update_fields=["role"])
    audit_record(
        action=AuditEvent.Action.ROLE_CHANGED,
        actor=actor,
        team=team,
        target=f"user:{member.pk}",
        ip=ip,
        details={"user": member.get_username(), "from": old_role, "to": role},
    )
    return target


@transaction.atomic
def team_member_remove(*, team: Team, actor: User, member: User, ip: str | None = None) -> None:
    """Take someone out of the team (or leave it, when `member` is the actor).

    Owners remove anyone, admins members and admins; the last owner cannot
    leave. Their open sockets on the team's conversations close within a moment
    on every process (the Membership delete signal asks them to check), and
    the team's pages and conversations answer them 404 from now on."""
    memberships = _locked_memberships(team)
    mine = memberships.get(actor.pk)
    target = memberships.get(member.pk)
    if target is None:
        raise TeamActionRefused(
            gettext("%(member)s is not a member of %(team)s.") % {"member": member, "team": team}
        )
    leaving = actor.pk == member.pk
    if not leaving and not _may_manage(mine.role if mine else None, target.role):
        raise TeamActionRefused(gettext("Only an owner can remove an owner."))
    owners = [m for m in memberships.values() if m.role == Membership.Role.OWNER]
    if target.role == Membership.Role.OWNER and len(owners) == 1:
        raise TeamActionRefused(
            gettext("%(team)s needs at least one owner: make someone else an owner first.")
            % {"team": team}
        )
    target.delete()
    audit_record(
        action=AuditEvent.Action.REMOVED,
        actor=actor,
        team=team,
        target=f"user:{member.pk}",
        ip=ip,
        details={"user": member.get_username(), "role": target.role, "left": leaving},
    )


@transaction.atomic
def team_share_links_set(*, team: Team, actor: User, enabled: bool, ip: str | None = None) -> Team:
    """Let conversations of the team be opened by any signed-in member who has the
    link (owners only). Turning it off ends every such link at once
    (`conversations.signals` removes them)."""
    mine = Membership.objects.filter(team=team, user=actor).first()
    if mine is None or mine.role != Membership.Role.OWNER:
        raise TeamActionRefused(gettext("Only a team owner can change this."))
    return team_setting_store(
        team=team, actor=actor, field="share_links_enabled", value=enabled, ip=ip
    )


def team_setting_store(*, team: Team, actor: User, field: str, value, ip: str | None) -> Team:
    """Store one of the team's settings and audit the change (nothing when it is
    already so). The caller has checked that `actor` may; inside its transaction."""
    team = Team.objects.select_for_update().get(pk=team.pk)
    if getattr(team, field) == value:
        return team
    setattr(team, field, value)
    team.save(update_fields=[field])
    audit_record(
        action=AuditEvent.Action.SETTINGS_CHANGED,
        actor=actor,
        team=team,
        target=f"team:{team.pk}",
        ip=ip,
        details={field: value},
    )
    return team
