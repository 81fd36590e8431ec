"""The team's summaries page and a job's page. Thin: authorise through selectors,
write through services, render. Someone who may not see the team or job gets 404."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.audit import request_ip
from accounts.models import Membership
from summaries import selectors, services
from summaries.forms import DigestForm, SummaryJobForm
from summaries.models import SummaryJob

# Conversations listed per page of a job (a job may hold 100,000).
JOB_PAGE_SIZE = 200


def _team_or_404(request: HttpRequest, slug: str):
    team = selectors.team_for_manager(user=request.user, slug=slug)
    if team is None:
        raise Http404("No such team.")
    return team


def _page(request: HttpRequest, team, *, form, estimate=None, error="", status=200):
    digest = selectors.digest_for_team(team=team)
    digest_job = selectors.latest_digest_job(team=team)
    return render(
        request,
        "summaries/team_summaries.html",
        {
            "team": team,
            "form": form,
            "estimate": estimate,
            "error": error,
            "jobs": selectors.job_list_for_team(team=team),
            "digest": digest,
            "digest_job": digest_job,
            "digest_requests": (
                selectors.job_requests(job=digest_job).filter(status="succeeded")
                if digest_job
                else []
            ),
            "is_owner": selectors.team_role(user=request.user, team=team) == Membership.Role.OWNER,
            "conversations": None,
        },
        status=status,
    )


@login_required
def team_summaries(request: HttpRequest, slug: str) -> HttpResponse:
    """A team's owner or admin previews a job (count, tokens, cost, saving), then
    starts it; the team's jobs and its weekly digest. Anyone else: 404."""
    team = _team_or_404(request, slug)
    if request.method != "POST":
        return _page(request, team, form=SummaryJobForm(team=team))
    form = SummaryJobForm(request.POST, team=team)
    if not form.is_valid():
        return _page(request, team, form=form, status=400)
    choice = form.cleaned_data
    selection = {
        "team": team,
        "model": choice["model"],
        "instruction": choice["instruction"],
        "person": choice["person"],
        "since": choice["since"],
        "until": choice["until"],
    }
    try:
        if request.POST.get("action") == "start":
            job = services.summary_job_create(
                **selection,
                actor=request.user,
                source=SummaryJob.Source.WEB,
                ip=request_ip(request),
            )
            return redirect("summary_job", job_id=job.pk)
        estimate = services.summary_preview(**selection)
    except services.SummaryInputError as exc:
        return _page(request, team, form=form, error=exc.message, status=400)
    return _page(request, team, form=form, estimate=estimate)


@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    """A job's live progress (over its socket), cancel, and each conversation's
    outcome and summary with its cost."""
    job = selectors.job_for_user(user=request.user, job_id=job_id)
    if job is None:
        raise Http404("No such job.")
    progress = services.job_progress(job_id=job.pk)
    page = Paginator(selectors.job_requests(job=job), JOB_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "summaries/job.html",
        {
            "job": job,
            "progress": progress,
            "requests": page,
            "ws_path": f"/ws/summaries/{job.pk}/",
            "can_cancel": job.is_active and job.cancel_requested_at is None,
            "conversations": None,
            "poll_seconds": settings.SUMMARIES_PROGRESS_SECONDS,
        },
    )


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = selectors.job_for_user(user=request.user, job_id=job_id)
    if job is None:
        raise Http404("No such job.")
    services.summary_job_cancel(job=job, actor=request.user)
    return redirect("summary_job", job_id=job.pk)


@login_required
@require_POST
def digest_update(request: HttpRequest, slug: str) -> HttpResponse:
    """The team's owner turns the weekly digest on or off."""
    team = _team_or_404(request, slug)
    form = DigestForm(request.POST)
    form.is_valid()
    try:
        services.digest_set(
            team=team, actor=request.user, enabled=bool(form.cleaned_data.get("enabled"))
        )
    except services.SummaryInputError as exc:
        return _page(request, team, form=SummaryJobForm(team=team), error=exc.message, status=403)
    return redirect("team_summaries", slug=team.slug)
