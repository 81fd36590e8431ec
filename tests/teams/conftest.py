"""The team world: the demo world plus the people a team's permissions tell apart.

Acme: alice (owner), erin (admin), bob (member, owns the conversation under
test), dave (member it is shared with), frank (member it is not shared with),
gina (was a member, removed). Globex: carol (owner). admin: staff, in no team.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture
def acme(world):
    from accounts.models import Team

    return Team.objects.get(slug="acme")


@pytest.fixture
def team_world(world, acme):
    from accounts.models import Membership, User

    people = dict(world)
    for username, role in (
        ("erin", "admin"),
        ("dave", "member"),
        ("frank", "member"),
        ("gina", "member"),
    ):
        user = User.objects.create_user(
            username=username, email=f"{username}@example.com", password="pw-for-tests-123"
        )
        Membership.objects.create(user=user, team=acme, role=role)
        people[username] = user
    return SimpleNamespace(team=acme, **people)


def member_remove(team, actor, member):
    from accounts.teams import team_member_remove

    team_member_remove(team=team, actor=actor, member=member)
