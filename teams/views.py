"""Team pages: members and roles, invitations, budget and spend, presets, the
audit log. Thin: authorise through `accounts.teams.team_seat`, act through the
services of accounts (members, invitations), conversations (presets) and usage
(budget, report).

Who may do what is docs/permissions.md. Someone who is not in the team gets 404
from every page of it (as for a team that does not exist), staff included but
for the audit log; a member without the role an action needs gets 403.
"""

from __future__ import annotations

import csv
import datetime as dt

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import invites
from accounts.audit import (
    AUDIT_CSV_HEADER,
    audit_csv_row,
    audit_events,
    audit_record,
    request_ip,
)
from accounts.models import AuditEvent, Invite, Membership, Team, User
from accounts.teams import (
    TeamActionRefused,
    TeamSeat,
    team_member_remove,
    team_members,
    team_role_set,
    team_seat,
    team_share_links_set,
    user_current_team_set,
)
from conversations import presets
from conversations.models import Conversation
from teams.forms import AuditFilterForm, InviteAcceptForm, InviteForm, PresetForm
from usage import budgets, report
from usage.periods import month_start

# Backends that send nothing anywhere: the team page then shows each pending
# invitation's link, so a laptop run needs no mail server.
_LOCAL_MAIL_BACKENDS = {
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
}


def _seat(request: HttpRequest, slug: str) -> TeamSeat:
    seat = team_seat(user=request.user, slug=slug)
    if seat is None:
        raise Http404("No such team.")
    return seat


def _manager_seat(request: HttpRequest, slug: str) -> TeamSeat:
    seat = _seat(request, slug)
    if not seat.is_manager:
        raise PermissionDenied("Only the team's owners and admins can do this.")
    return seat


@login_required
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The team page: members and roles, pending invitations, this month's budget
    and spend (per person too), presets, and links to the audit log and summaries."""
    seat = _seat(request, slug)
    team = seat.team
    month = month_start()
    spend = report.usage_report(start=month, end=dt.datetime.now(dt.UTC).date(), team_id=team.pk)
    pending = invites.invites_pending(team=team) if seat.is_manager else []
    show_links = settings.EMAIL_BACKEND in _LOCAL_MAIL_BACKENDS
    site = request.build_absolute_uri("/").rstrip("/")
    pending_rows = [
        {"invite": i, "link": site + invites.invite_path(i) if show_links else ""} for i in pending
    ]
    return render(
        request,
        "teams/detail.html",
        {
            "team": team,
            "seat": seat,
            "members": team_members(team=team),
            "roles": Membership.Role.choices,
            "pending": pending_rows,
            "invite_form": InviteForm(),
            "invite_days": settings.TEAM_INVITE_DAYS,
            "budget": budgets.budget_for_team(team=team),
            "spend_by_user": spend.by_user,
            "presets": presets.preset_list(team=team),
            "model_labels": dict(presets.preset_model_choices()),
            "conversation_count": Conversation.objects.filter(team=team).count(),
            "conversations": None,
        },
    )


@login_required
@require_POST
def team_switch(request: HttpRequest, slug: str) -> HttpResponse:
    """Work in this team: the sidebar and new conversations follow it."""
    seat = _seat(request, slug)
    user_current_team_set(user=request.user, session=request.session, team=seat.team)
    return redirect("home")


@login_required
@require_POST
def team_invite(request: HttpRequest, slug: str) -> HttpResponse:
    seat = _manager_seat(request, slug)
    form = InviteForm(request.POST)
    if not form.is_valid():
        flash.error(request, _("Enter a valid e-mail address and a role."))
        return redirect("team_detail", slug=slug)
    try:
        invite = invites.invite_create(
            team=seat.team,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            invited_by=request.user,
            site_url=request.build_absolute_uri("/"),
            ip=request_ip(request),
        )
    except invites.InviteRefused as exc:
        flash.error(request, exc.message)
    else:
        flash.success(request, _("Invitation sent to %(email)s.") % {"email": invite.email})
    return redirect("team_detail", slug=slug)


@login_required
@require_POST
def team_invite_revoke(request: HttpRequest, slug: str, invite_id: int) -> HttpResponse:
    seat = _manager_seat(request, slug)
    invite = get_object_or_404(Invite, pk=invite_id, team=seat.team)
    invites.invite_revoke(invite=invite, actor=request.user, ip=request_ip(request))
    flash.success(
        request, _("The invitation to %(email)s was withdrawn.") % {"email": invite.email}
    )
    return redirect("team_detail", slug=slug)


@login_required
@require_POST
def team_member_role(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    seat = _manager_seat(request, slug)
    member = get_object_or_404(User, pk=user_id, memberships__team=seat.team)
    try:
        membership = team_role_set(
            team=seat.team,
            actor=request.user,
            member=member,
            role=request.POST.get("role", ""),
            ip=request_ip(request),
        )
    except TeamActionRefused as exc:
        flash.error(request, exc.message)
    else:
        flash.success(
            request,
            _("%(member)s is now %(role)s.")
            % {"member": member, "role": membership.get_role_display().lower()},
        )
    return redirect("team_detail", slug=slug)


@login_required
@require_POST
def team_member_remove_view(request: HttpRequest, slug: str, user_id: int) -> HttpResponse:
    """Remove a member (owners and admins), or leave (anyone, for themselves)."""
    seat = _seat(request, slug)
    leaving = user_id == request.user.pk
    if not leaving and not seat.is_manager:
        raise PermissionDenied("Only the team's owners and admins can remove members.")
    member = get_object_or_404(User, pk=user_id, memberships__team=seat.team)
    try:
        team_member_remove(
            team=seat.team, actor=request.user, member=member, ip=request_ip(request)
        )
    except TeamActionRefused as exc:
        flash.error(request, exc.message)
        return redirect("team_detail", slug=slug)
    if leaving:
        flash.success(request, _("You left %(team)s.") % {"team": seat.team.name})
        return redirect("home")
    flash.success(
        request,
        _("%(member)s was removed from %(team)s.") % {"member": member, "team": seat.team.name},
    )
    return redirect("team_detail", slug=slug)


@login_required
@require_POST
def team_settings(request: HttpRequest, slug: str) -> HttpResponse:
    """Owners only: whether conversations may be opened by link by signed-in members."""
    seat = _seat(request, slug)
    if not seat.is_owner:
        raise PermissionDenied("Only a team owner can change this.")
    team_share_links_set(
        team=seat.team,
        actor=request.user,
        enabled=request.POST.get("share_links_enabled") == "on",
        ip=request_ip(request),
    )
    flash.success(request, _("Team settings saved."))
    return redirect("team_detail", slug=slug)


@login_required
def team_preset_edit(request: HttpRequest, slug: str, preset_id: int | None = None) -> HttpResponse:
    """Owners and admins create (no id) or change a preset."""
    seat = _manager_seat(request, slug)
    preset = None
    if preset_id is not None:
        preset = presets.preset_for_team(team=seat.team, preset_id=preset_id)
        if preset is None:
            raise Http404("No such preset.")
    error = ""
    if request.method == "POST":
        form = PresetForm(request.POST)
        if form.is_valid():
            try:
                presets.preset_save(
                    team=seat.team,
                    actor=request.user,
                    preset=preset,
                    ip=request_ip(request),
                    **form.cleaned_data,
                )
            except presets.PresetRefused as exc:
                error = exc.message
            else:
                flash.success(
                    request, _("Preset %(name)s saved.") % {"name": form.cleaned_data["name"]}
                )
                return redirect("team_detail", slug=slug)
        else:
            error = _("Check the fields below.")
    else:
        initial = (
            {
                "name": preset.name,
                "model": preset.model,
                "system_prompt": preset.system_prompt,
                "thinking_effort": preset.thinking_effort,
            }
            if preset
            else {"model": settings.CLAUDE_DEFAULT_MODEL}
        )
        form = PresetForm(initial=initial)
    return render(
        request,
        "teams/preset_form.html",
        {"team": seat.team, "preset": preset, "form": form, "error": error, "conversations": None},
        status=400 if error else 200,
    )


@login_required
@require_POST
def team_preset_delete(request: HttpRequest, slug: str, preset_id: int) -> HttpResponse:
    seat = _manager_seat(request, slug)
    preset = presets.preset_for_team(team=seat.team, preset_id=preset_id)
    if preset is None:
        raise Http404("No such preset.")
    presets.preset_delete(preset=preset, actor=request.user, ip=request_ip(request))
    flash.success(request, _("Preset %(name)s deleted.") % {"name": preset.name})
    return redirect("team_detail", slug=slug)


def _audit_page(request: HttpRequest, *, team: Team | None) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    events = audit_events(
        team=team,
        all_teams=team is None,
        action=filters.get("action") or "",
        actor=filters.get("actor") or "",
        since=filters.get("since"),
        until=filters.get("until"),
    )
    if request.GET.get("format") == "csv":
        audit_record(
            action=AuditEvent.Action.EXPORTED,
            actor=request.user,
            team=team,
            target=f"team:{team.pk}" if team else "audit:all",
            ip=request_ip(request),
            details={"what": "audit log", "filters": request.GET.urlencode()},
        )
        return _audit_csv(events, name=team.slug if team else "all")
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "teams/audit.html",
        {
            "team": team,
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "actions": AuditEvent.Action.choices,
            "conversations": None,
        },
    )


def _audit_csv(events, *, name: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="audit-{name}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(AUDIT_CSV_HEADER)
    for event in events.iterator(chunk_size=2000):
        writer.writerow(audit_csv_row(event))
    return response


@login_required
def team_audit(request: HttpRequest, slug: str) -> HttpResponse:
    """The team's audit log: its owners, and staff (any team). Filterable; `?format=csv`
    exports exactly the filtered rows."""
    if request.user.is_staff:
        team = Team.objects.filter(slug=slug).first()
        if team is None:
            raise Http404("No such team.")
    else:
        seat = _seat(request, slug)
        if not seat.is_owner:
            raise PermissionDenied("Only the team's owners can read its audit log.")
        team = seat.team
    return _audit_page(request, team=team)


@login_required
def audit_all(request: HttpRequest) -> HttpResponse:
    """Staff: every event, of every team and of none (sign-ins)."""
    if not request.user.is_staff:
        raise Http404("No such page.")
    return _audit_page(request, team=None)


def invite_accept(request: HttpRequest, token: str) -> HttpResponse:
    """An invitation's link: join (signed in as the invited person), sign in first (an
    account with that address exists), or create an account (none does). A link
    that is withdrawn, used, expired or opened by someone else says so."""
    try:
        check = invites.invite_check(token=token, user=request.user)
    except invites.InviteRefused as exc:
        status = {"not_found": 404, "wrong_account": 403}.get(exc.code, 410)
        return render(
            request,
            "teams/invite.html",
            {"refused": exc, "conversations": None},
            status=status,
        )
    form = InviteAcceptForm(request.POST or None) if check.next_step == "sign_up" else None
    error = ""
    if request.method == "POST" and check.next_step in ("join", "sign_up"):
        if form is not None and not form.is_valid():
            error = _("Check the fields below.")
        else:
            data = form.cleaned_data if form is not None else {}
            if data and data["password"] != data["password_again"]:
                error = _("The two passwords differ.")
            else:
                try:
                    user, membership = invites.invite_accept(
                        token=token,
                        user=request.user,
                        ip=request_ip(request),
                        username=data.get("username", ""),
                        display_name=data.get("display_name", ""),
                        password=data.get("password", ""),
                    )
                except invites.InviteRefused as exc:
                    error = exc.message
                else:
                    if not request.user.is_authenticated:
                        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                    user_current_team_set(user=user, session=request.session, team=membership.team)
                    flash.success(
                        request, _("Welcome to %(team)s.") % {"team": membership.team.name}
                    )
                    return redirect("team_detail", slug=membership.team.slug)
    return render(
        request,
        "teams/invite.html",
        {
            "check": check,
            "invite": check.invite,
            "form": form,
            "error": error,
            "login_url": f"{reverse('login')}?{urlencode({'next': request.path})}",
            "conversations": None,
        },
        status=400 if error else 200,
    )
