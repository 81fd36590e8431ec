"""Price one call by hand, with the very function the ledger uses.

    python manage.py price --model claude-sonnet-5-5 --input 1200 --output 350 \
        --cache-read 40000 --at 2026-10-08
"""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from claude.pricing import Usage, cost, price_row_for


class Command(BaseCommand):
    help = "Print the USD cost of one call and the price row it used."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True)
        parser.add_argument("--input", type=int, default=0)
        parser.add_argument("--output", type=int, default=0)
        parser.add_argument("--cache-write-5m", type=int, default=0)
        parser.add_argument("--cache-write-1h", type=int, default=0)
        parser.add_argument("--cache-read", type=int, default=0)
        parser.add_argument("--batch", action="store_true")
        parser.add_argument("--regional", action="store_true")
        parser.add_argument("--at", help="YYYY-MM-DD, the day of the call (default: today)")

    def handle(self, *args, **options):
        try:
            at = dt.date.fromisoformat(options["at"]) if options["at"] else dt.date.today()
        except ValueError as exc:
            raise CommandError(f"--at must be YYYY-MM-DD: {exc}") from exc
        counts = [
            options[k]
            for k in ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
        ]
        if any(n < 0 for n in counts):
            raise CommandError("token counts cannot be negative")
        usage = Usage(*counts)
        result = cost(
            options["model"], usage, at=at, batch=options["batch"], regional=options["regional"]
        )
        row = price_row_for(options["model"], at=at)
        self.stdout.write(f"cost_usd: {result.usd:.6f}")
        self.stdout.write(
            f"price_row: {result.price_key}"
            + ("" if result.priced else "  (UNPRICED: unknown model, fallback rate)")
        )
        rates = result.rates
        self.stdout.write(
            f"rates_per_mtok: input {rates.input.normalize():f}, output {rates.output.normalize():f}, "
            f"cache_write_5m {rates.cache_write_5m.normalize():f}, "
            f"cache_write_1h {rates.cache_write_1h.normalize():f}, "
            f"cache_read {rates.cache_read.normalize():f}"
            + (" (prompt-size tier)" if result.tier else "")
        )
        modifiers = [
            m
            for m, on in (("batch -50%", options["batch"]), ("regional +10%", options["regional"]))
            if on
        ]
        if modifiers:
            self.stdout.write(f"modifiers: {', '.join(modifiers)}")
        if row is None:
            self.stdout.write(f"note: {options['model']} is not in the price table")
