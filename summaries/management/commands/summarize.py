"""`python manage.py summarize`: start a batch summary job from the command line, or
show one. Thin: parse, call the summaries services, print.

    summarize --team SLUG [--user NAME] [--since YYYY-MM-DD] [--until YYYY-MM-DD]
              [--model M] [--instruction TEXT] [--wait] [--json]
    summarize --show JOB_ID [--json]
"""

from __future__ import annotations

import datetime as dt
import json
import time

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Team, User
from summaries import services
from summaries.models import SummaryJob

WAIT_STEP_SECONDS = 1.0


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD).") from None


def job_report(job: SummaryJob) -> dict:
    """The one JSON object `--json` prints."""
    progress = services.job_progress(job_id=job.pk)
    return {
        "job_id": job.pk,
        "status": progress.status,
        "counts": {
            "succeeded": progress.succeeded,
            "errored": progress.errored,
            "expired": progress.expired,
            "canceled": progress.canceled,
            "processing": progress.processing,
        },
        "cost_usd": f"{progress.cost_usd:.6f}",
        "conversations": [
            {"conversation_id": str(cid), "status": status, "reason": reason}
            for cid, status, reason in job.requests.order_by("id").values_list(
                "conversation_uuid", "status", "reason"
            )
        ],
    }


class Command(BaseCommand):
    help = "Start a batch summary job over a team's conversations (or --show one)."

    def add_arguments(self, parser):
        parser.add_argument("--team", help="The team's slug (its conversations, billed to it).")
        parser.add_argument("--user", help="Only this person's conversations (username).")
        parser.add_argument("--since", type=_date, help="Updated on or after (YYYY-MM-DD, UTC).")
        parser.add_argument("--until", type=_date, help="Updated on or before (YYYY-MM-DD, UTC).")
        parser.add_argument("--model", default="", help="Model id (default: Haiku).")
        parser.add_argument("--instruction", default="", help="What the summary should say.")
        parser.add_argument(
            "--wait", action="store_true", help="Run the job to its end, then print."
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument("--show", type=int, metavar="JOB_ID", help="Print a job's state.")

    def handle(self, *args, **options):
        if options["show"] is not None:
            job = SummaryJob.objects.filter(pk=options["show"]).first()
            if job is None:
                raise CommandError(f"No summary job {options['show']}.")
            return self._print(job, options)
        if not options["team"]:
            raise CommandError("Give --team SLUG (or --show JOB_ID).")
        team = Team.objects.filter(slug=options["team"]).first()
        if team is None:
            raise CommandError(f"No team {options['team']!r}.")
        person = None
        if options["user"]:
            person = User.objects.filter(username=options["user"], memberships__team=team).first()
            if person is None:
                raise CommandError(f"{options['user']!r} is not in team {team.slug!r}.")
        try:
            job = services.summary_job_create(
                team=team,
                actor=None,
                source=SummaryJob.Source.COMMAND,
                model=options["model"],
                instruction=options["instruction"],
                person=person,
                since=options["since"],
                until=options["until"],
            )
        except services.SummaryInputError as exc:
            raise CommandError(exc.message) from None
        if options["wait"]:
            # Runs each step here as it falls due (a worker may do the same: every
            # step is safe twice), so --wait ends with or without a worker.
            while True:
                job.refresh_from_db()
                if not job.is_active:
                    break
                services.summary_job_advance(job_id=job.pk)
                job.refresh_from_db()
                if not job.is_active:
                    break
                time.sleep(WAIT_STEP_SECONDS)
        return self._print(job, options)

    def _print(self, job: SummaryJob, options) -> None:
        report = job_report(job)
        if options["json"]:
            self.stdout.write(json.dumps(report))
            return
        counts = report["counts"]
        self.stdout.write(
            f"Summary job {report['job_id']}: {report['status']}, "
            f"{len(report['conversations'])} conversations "
            f"({counts['succeeded']} succeeded, {counts['errored']} errored, "
            f"{counts['expired']} expired, {counts['canceled']} canceled, "
            f"{counts['processing']} processing), cost ${report['cost_usd']}"
        )
