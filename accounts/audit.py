"""The audit log's one way in (see `AuditEvent`)."""

from __future__ import annotations

from typing import Any

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
