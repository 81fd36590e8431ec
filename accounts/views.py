"""The account's security page: two-factor status, and for a team's owners the
rule that its owners and admins must use it. A thin adapter over the services."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.audit import request_ip
from accounts.mfa import user_totp_enrolled
from accounts.models import Membership
from accounts.services import team_mfa_requirement_set, user_mfa_required


@login_required
@require_http_methods(["GET", "POST"])
def security(request: HttpRequest) -> HttpResponse:
    owned = {
        m.team.slug: m.team
        for m in Membership.objects.filter(user=request.user, role=Membership.Role.OWNER)
        .select_related("team")
        .order_by("team__name")
    }
    if request.method == "POST":
        team = owned.get(request.POST.get("team", ""))
        if team is None:
            raise Http404("No such team of yours.")
        required = request.POST.get("mfa_required") == "on"
        team_mfa_requirement_set(
            team=team, required=required, actor=request.user, ip=request_ip(request)
        )
        return redirect(f"{request.path}?saved={team.slug}")
    return render(
        request,
        "account/security.html",
        {
            "totp_enrolled": user_totp_enrolled(request.user),
            "mfa_required": user_mfa_required(user=request.user),
            "owned_teams": list(owned.values()),
            "saved": request.GET.get("saved", ""),
        },
    )
