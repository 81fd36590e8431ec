"""Pages about usage: my usage and a team owner's budget page.

Thin: authorise, call one service or selector, render.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext

from accounts.audit import request_ip
from accounts.models import Membership, Team
from usage import budgets, report
from usage.charts import daily_chart_svg
from usage.forms import BudgetForm


@login_required
def my_usage(request: HttpRequest) -> HttpResponse:
    """This month's spend, budget, a daily chart and cost per conversation: mine only."""
    data = report.my_usage(user=request.user)
    chart = daily_chart_svg(
        days=data["days"], series=data["series"], title=gettext("My daily cost this month")
    )
    managed = Team.objects.filter(
        memberships__user=request.user,
        memberships__role__in=[Membership.Role.OWNER, Membership.Role.ADMIN],
    )
    return render(
        request,
        "usage/my_usage.html",
        {**data, "chart": chart, "managed_teams": managed, "conversations": None},
    )


def _managed_team(request: HttpRequest, slug: str) -> Team:
    team = Team.objects.filter(
        slug=slug,
        memberships__user=request.user,
        memberships__role__in=[Membership.Role.OWNER, Membership.Role.ADMIN],
    ).first()
    if team is None:
        raise Http404("No such team.")
    return team


@login_required
def team_budget(request: HttpRequest, slug: str) -> HttpResponse:
    """A team's owner or admin sets its monthly budget; anyone else gets 404."""
    team = _managed_team(request, slug)
    current = budgets.budget_for_team(team=team)
    if request.method == "POST":
        form = BudgetForm(request.POST)
        if form.is_valid():
            budgets.budget_limit_set(
                team=team,
                limit_usd=form.cleaned_data["monthly_limit_usd"],
                actor=request.user,
                ip=request_ip(request),
            )
            return redirect("team_budget", slug=team.slug)
    else:
        form = BudgetForm(initial={"monthly_limit_usd": current.limit_usd})
    return render(
        request, "usage/team_budget.html", {"team": team, "current": current, "form": form}
    )
