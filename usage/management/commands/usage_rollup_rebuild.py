"""Recompute the daily usage rollup from the ledger (repair, or after a bulk import)."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand

from usage.ledger import usage_rollup_rebuild


class Command(BaseCommand):
    help = "Rebuild usage.DailyUsage from usage.ApiCall (optionally for a range of days)."

    def add_arguments(self, parser):
        parser.add_argument("--start", type=dt.date.fromisoformat)
        parser.add_argument("--end", type=dt.date.fromisoformat)

    def handle(self, *args, **options):
        rows = usage_rollup_rebuild(start=options["start"], end=options["end"])
        self.stdout.write(f"{rows} daily rows rebuilt")
