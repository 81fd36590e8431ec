"""Pages about usage: my usage, a team owner's budget page, the composer's estimate.

Thin: authorise, call one service or selector, render.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Membership, Team
from claude.stream import ClaudeError
from claude.tokens import input_tokens_count
from conversations import selectors as conversation_selectors
from conversations.services import chat_request_for_draft
from usage import selectors, services
from usage.charts import daily_chart_svg
from usage.forms import BudgetForm, EstimateForm


@login_required
def my_usage(request: HttpRequest) -> HttpResponse:
    """This month's spend, budget, a daily chart and cost per conversation: mine only."""
    data = selectors.my_usage(user=request.user)
    chart = daily_chart_svg(
        days=data["days"], series=data["series"], title="My daily cost this month"
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
    current = selectors.budget_for_team(team=team)
    if request.method == "POST":
        form = BudgetForm(request.POST)
        if form.is_valid():
            services.budget_limit_set(team=team, limit_usd=form.cleaned_data["monthly_limit_usd"])
            return redirect("team_budget", slug=team.slug)
    else:
        form = BudgetForm(initial={"monthly_limit_usd": current.limit_usd})
    return render(
        request, "usage/team_budget.html", {"team": team, "current": current, "form": form}
    )


@require_POST
async def conversation_estimate(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """What the next message would cost, from the API's free token count.

    Owner only (404 otherwise). The count itself is logged as a $0 ledger row.
    """
    user = await request.auser()
    conversation = await sync_to_async(conversation_selectors.conversation_for_user)(
        user=user, conversation_id=conversation_id
    )
    if conversation is None:
        raise Http404("No such conversation.")
    form = EstimateForm(request.POST)
    if not form.is_valid() or len(form.cleaned_data["text"]) > settings.CHAT_MAX_MESSAGE_CHARS:
        return JsonResponse({"error": "Nothing to estimate."}, status=400)
    chat_request = await sync_to_async(chat_request_for_draft)(
        conversation=conversation, text=form.cleaned_data["text"]
    )
    try:
        tokens = await input_tokens_count(chat_request)
    except ClaudeError as exc:
        return JsonResponse({"error": exc.human_message}, status=502)
    estimate = await sync_to_async(services.estimate_record)(
        conversation=conversation, user_id=user.pk, input_tokens=tokens
    )
    return JsonResponse(
        {
            "input_tokens": estimate.input_tokens,
            "estimated_cost_usd": f"{estimate.estimated_cost_usd:.6f}",
            "max_cost_usd": f"{estimate.max_cost_usd:.6f}",
        }
    )
