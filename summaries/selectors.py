"""Reads shared by the summaries' views, socket, admin and command.

Who may see what: a team's jobs, summaries and digest are its owners' and
admins' (and staff's); anyone else gets None, and the caller answers 404.
Members do not see them: a summary tells what a conversation said, and
conversations are private to their owner. The owner of a conversation sees its
latest summary on the conversation itself.
"""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Membership, Team, User
from conversations.models import Conversation
from summaries.models import Summary, SummaryDigest, SummaryJob, SummaryRequest

MANAGER_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


def team_for_manager(*, user: User, slug: str) -> Team | None:
    """The team if `user` is one of its owners or admins, else None."""
    if not user.is_authenticated:
        return None
    return Team.objects.filter(
        slug=slug, memberships__user=user, memberships__role__in=MANAGER_ROLES
    ).first()


def team_role(*, user: User, team: Team) -> str:
    """`owner`, `admin`, `member`, or "" for someone outside the team."""
    role = Membership.objects.filter(user=user, team=team).values_list("role", flat=True).first()
    return role or ""


def job_for_user(*, user: User, job_id: int | str) -> SummaryJob | None:
    """The job if `user` may see it (staff, or an owner or admin of its team)."""
    if not user.is_authenticated:
        return None
    try:
        pk = int(job_id)
    except (TypeError, ValueError):
        return None
    job = SummaryJob.objects.select_related("team", "created_by").filter(pk=pk).first()
    if job is None:
        return None
    if user.is_staff or team_role(user=user, team=job.team) in MANAGER_ROLES:
        return job
    return None


def job_list_for_team(*, team: Team, limit: int = 50) -> QuerySet[SummaryJob]:
    return SummaryJob.objects.filter(team=team).select_related("created_by")[:limit]


def job_requests(*, job: SummaryJob) -> QuerySet[SummaryRequest]:
    """A job's conversations with their outcome and summary, in the order started."""
    return job.requests.select_related("summary").order_by("id")


def latest_summary_for_conversation(*, conversation: Conversation) -> Summary | None:
    """What the conversation page shows at its top (the caller authorised it)."""
    return Summary.objects.filter(conversation=conversation).order_by("-created_at", "-id").first()


def digest_for_team(*, team: Team) -> SummaryDigest | None:
    return SummaryDigest.objects.filter(team=team).first()


def latest_digest_job(*, team: Team) -> SummaryJob | None:
    """The team's most recent weekly digest that has ended: the page shows it."""
    return (
        SummaryJob.objects.filter(
            team=team, source=SummaryJob.Source.DIGEST, status=SummaryJob.Status.ENDED
        )
        .order_by("-digest_week", "-id")
        .first()
    )


def socket_may_see_job(
    *, user_id: int, session_key: str | None, session_auth_hash: str, job_id: int
) -> bool:
    """Whether an open job socket may still see its job: the session stands (not
    signed out, same password, account active) and the person may see the job."""
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from accounts.sessions import session_stands

    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return False
    alive = Session.objects.filter(
        session_key=session_key or "", expire_date__gt=timezone.now()
    ).exists()
    if not session_stands(
        user_id=user_id,
        password_hash=user.password,
        session_key=session_key,
        session_auth_hash=session_auth_hash,
        session_row_alive=alive,
    ):
        return False
    return job_for_user(user=user, job_id=job_id) is not None
