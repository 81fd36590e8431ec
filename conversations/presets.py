"""Team presets: a name, a model, a system prompt and thinking, defined by a team's
owners and admins and picked by its members when they start a chat."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils.translation import gettext

from accounts.audit import audit_record
from accounts.models import AuditEvent, Membership, Team, User
from claude.catalog import model_choices, model_info
from conversations.models import Conversation, Preset

NAME_MAX_CHARS = 100


class PresetRefused(Exception):
    """A preset that cannot be saved; `message` is for the person."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def preset_model_choices() -> list[tuple[str, str]]:
    """The models a preset may name, as (id, label), for forms above this layer."""
    return list(model_choices())


def preset_list(*, team: Team | None) -> list[Preset]:
    """The team's presets by name ([] for no team)."""
    if team is None:
        return []
    return list(Preset.objects.filter(team=team).order_by("name", "id"))


def preset_for_team(*, team: Team, preset_id) -> Preset | None:
    """One preset of this team, or None (another team's is not found either)."""
    try:
        return Preset.objects.filter(team=team, pk=int(preset_id)).first()
    except (TypeError, ValueError):
        return None


def _manager_check(team: Team, actor: User) -> None:
    if not Membership.objects.filter(
        team=team, user=actor, role__in=[Membership.Role.OWNER, Membership.Role.ADMIN]
    ).exists():
        raise PresetRefused(gettext("Only the team's owners and admins can change its presets."))


def _cleaned(name: str, model: str, system_prompt: str, thinking_effort: str) -> dict:
    name = " ".join(name.split())[:NAME_MAX_CHARS]
    if not name:
        raise PresetRefused(gettext("A preset needs a name."))
    info = model_info(model)
    if info is None:
        raise PresetRefused(gettext("Unknown model %(model)s.") % {"model": repr(model)})
    if thinking_effort not in Conversation.ThinkingEffort.values:
        raise PresetRefused(
            gettext("Unknown thinking effort %(effort)s.") % {"effort": repr(thinking_effort)}
        )
    if info.thinking == "none":
        thinking_effort = ""
    return {
        "name": name,
        "model": model,
        "system_prompt": system_prompt.strip(),
        "thinking_effort": thinking_effort,
    }


def preset_save(
    *,
    team: Team,
    actor: User,
    name: str,
    model: str,
    system_prompt: str = "",
    thinking_effort: str = "",
    preset: Preset | None = None,
    ip: str | None = None,
) -> Preset:
    """Create a preset of `team`, or with `preset`, change it. Conversations started
    from it before keep what they were started with."""
    _manager_check(team, actor)
    fields = _cleaned(name, model, system_prompt, thinking_effort)
    try:
        with transaction.atomic():
            if preset is None:
                preset = Preset.objects.create(team=team, created_by=actor, **fields)
                op = "created"
            else:
                for key, value in fields.items():
                    setattr(preset, key, value)
                preset.save()
                op = "updated"
            audit_record(
                action=AuditEvent.Action.PRESET_CHANGED,
                actor=actor,
                team=team,
                target=f"preset:{preset.pk}",
                ip=ip,
                details={"op": op, **{k: v for k, v in fields.items() if k != "system_prompt"}},
            )
    except IntegrityError:
        raise PresetRefused(
            gettext("%(team)s already has a preset called %(name)s.")
            % {"team": team.name, "name": fields["name"]}
        ) from None
    return preset


@transaction.atomic
def preset_delete(*, preset: Preset, actor: User, ip: str | None = None) -> None:
    """Delete a preset; conversations started from it keep its name."""
    _manager_check(preset.team, actor)
    audit_record(
        action=AuditEvent.Action.PRESET_CHANGED,
        actor=actor,
        team=preset.team,
        target=f"preset:{preset.pk}",
        ip=ip,
        details={"op": "deleted", "name": preset.name},
    )
    preset.delete()
