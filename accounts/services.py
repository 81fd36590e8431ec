"""Writes on accounts and teams."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Membership, Team, User


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
