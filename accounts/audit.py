"""The audit log's one way in (see `AuditEvent`)."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet

from accounts.models import AuditEvent, Team, User


def request_ip(request) -> str | None:
    """The client's address as the web server saw it (REMOTE_ADDR; a proxy in
    front must set it, for example daphne's --proxy-headers)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    action: str,
    actor: User | None = None,
    actor_name: str = "",
    team: Team | None = None,
    target: str = "",
    ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Call it inside the transaction of what it records, so
    the event exists exactly when the change does."""
    if actor is not None and not actor_name:
        actor_name = actor.get_username()
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_name=actor_name[:150],
        team=team,
        target=target[:200],
        ip=ip,
        details=details or {},
    )


def audit_events(
    *,
    team: Team | None = None,
    all_teams: bool = False,
    action: str = "",
    actor: str = "",
    since=None,
    until=None,
) -> QuerySet[AuditEvent]:
    """The log, newest first: one team's (a team owner's view) or, with `all_teams`,
    everything, sign-ins included (staff). Filters: an action, an actor's name
    (contains, any case), and a UTC date range (inclusive)."""
    events = AuditEvent.objects.all() if all_teams else AuditEvent.objects.filter(team=team)
    if action:
        events = events.filter(action=action)
    if actor:
        events = events.filter(actor_name__icontains=actor)
    if since:
        events = events.filter(created_at__date__gte=since)
    if until:
        events = events.filter(created_at__date__lte=until)
    return events.select_related("team").order_by("-created_at", "-id")


AUDIT_CSV_HEADER = ["time_utc", "actor", "action", "team", "target", "ip", "details"]


def audit_csv_row(event: AuditEvent) -> list[str]:
    """One event as a CSV row (AUDIT_CSV_HEADER). A cell that a spreadsheet would
    run as a formula is prefixed with a quote."""
    cells = [
        event.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        event.actor_name,
        event.action,
        event.team.slug if event.team else "",
        event.target,
        event.ip or "",
        json.dumps(event.details, sort_keys=True, ensure_ascii=False),
    ]
    return ["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in cells]
