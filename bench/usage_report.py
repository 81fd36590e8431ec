"""Usage report benchmark: the admin's "Usage & costs" queries over a big ledger.

    .venv/bin/python bench/usage_report.py [--rows 1000000] [--refill] [--repeat 5]

Fills `usage_apicall` in its own PostgreSQL database (`teamchat_bench`,
created next to the one `DATABASE_URL` names; default
postgres://postgres@127.0.0.1:5432/test, which is never touched) with `--rows`
calls spread over 200 users in 20 teams, 6 models and the last 6 months
(`INSERT ... SELECT generate_series`, in one statement). It then builds the
daily rollup the way the product repairs it (`usage_rollup_rebuild`: one GROUP
BY over the ledger) and times, per range, every query the report page makes
(`usage_report`: per user, per team, per model, the daily chart series, names),
median of `--repeat` runs with a warm cache. For comparison it also times the
same per-user totals read straight from the ledger (what the page would cost
without the rollup), and one `ledger_record` (the per-call upsert on the hot path).
A second run reuses the rows unless `--refill`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "teamchat_bench"
USERS, TEAMS, DAYS = 200, 20, 182
MODELS = (
    # model, input $/M, output $/M, share of calls (weights)
    ("claude-sonnet-5-5", 2, 10, 40),
    ("claude-opus-5-5", 4, 20, 20),
    ("claude-haiku-5-5", "0.10", "0.50", 20),
    ("claude-sonnet-4-6", 3, 15, 10),
    ("claude-opus-4-6", 5, 25, 5),
    ("claude-haiku-4-5", 1, 5, 5),
)


def _bench_database(url: str) -> str:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def _setup(url: str) -> None:
    os.environ["DATABASE_URL"] = _bench_database(url)
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _people() -> None:
    from accounts.models import Membership, Team, User

    if User.objects.filter(username__startswith="bench-user-").count() == USERS:
        return
    teams = [
        Team.objects.get_or_create(slug=f"bench-team-{i:02d}", defaults={"name": f"Team {i:02d}"})[
            0
        ]
        for i in range(TEAMS)
    ]
    for i in range(USERS):
        user, _ = User.objects.get_or_create(username=f"bench-user-{i:03d}")
        Membership.objects.get_or_create(user=user, team=teams[i % TEAMS])


def _fill(rows: int) -> float:
    """One INSERT ... SELECT: user i is in team i % 20; each user on every model
    (by weight, independent of the user); cost from tokens."""
    from django.db import connection

    from accounts.models import Team, User

    user_ids = list(
        User.objects.filter(username__startswith="bench-user-")
        .order_by("username")
        .values_list("id", flat=True)
    )
    team_ids = list(
        Team.objects.filter(slug__startswith="bench-team-")
        .order_by("slug")
        .values_list("id", flat=True)
    )
    weights = []
    for model, inp, out, share in MODELS:
        weights.extend([(model, inp, out)] * share)
    model_case = " ".join(f"WHEN {i} THEN '{m}'" for i, (m, _, _) in enumerate(weights))
    in_case = " ".join(f"WHEN {i} THEN {inp}" for i, (_, inp, _) in enumerate(weights))
    out_case = " ".join(f"WHEN {i} THEN {out}" for i, (_, _, out) in enumerate(weights))
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE usage_apicall, usage_dailyusage RESTART IDENTITY")
        cursor.execute(
            f"""
            INSERT INTO usage_apicall (
                user_id, team_id, conversation_id, conversation_uuid, message_id, purpose, provider,
                region, endpoint, regional_premium_usd, model,
                input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
                cache_read_tokens, usage_estimated, cost_usd, batch, regional,
                cache_savings_usd, batch_savings_usd, price_key, priced, request_id,
                time_to_first_token_ms, duration_ms, stop_reason, error_type, created_at)
            SELECT u.uid, t.tid, NULL, NULL, NULL, 'chat', 'anthropic', '', 'global', 0, s.model,
                   s.inp, s.out, 0, 0, s.rd, false,
                   round((s.inp * s.in_rate + s.out * s.out_rate + s.rd * s.in_rate * 0.1) / 1e6, 6),
                   false, false, round(s.rd * s.in_rate * 0.9 / 1e6, 6), 0,
                   s.model || '@2024-01-01', true, '', 400, 3000, 'end_turn', '',
                   now() - (s.g::float8 / %s) * interval '{DAYS} days'
            FROM (
                SELECT g, (g * 7919) %% {USERS} AS ui,
                       CASE ((g / {USERS}) * 31) %% {len(weights)} {model_case} END AS model,
                       CASE ((g / {USERS}) * 31) %% {len(weights)} {in_case} END AS in_rate,
                       CASE ((g / {USERS}) * 31) %% {len(weights)} {out_case} END AS out_rate,
                       200 + (g * 13) %% 4000 AS inp, 50 + (g * 17) %% 1500 AS out,
                       ((g * 19) %% 5) * 2000 AS rd
                FROM generate_series(1::bigint, %s::bigint) AS g
            ) AS s
            JOIN unnest(%s::bigint[]) WITH ORDINALITY AS u(uid, ui1) ON u.ui1 = s.ui + 1
            JOIN unnest(%s::bigint[]) WITH ORDINALITY AS t(tid, ti1) ON t.ti1 = s.ui %% {TEAMS} + 1
            """,
            [rows, rows, user_ids, team_ids],
        )
        cursor.execute("ANALYZE usage_apicall")
    return time.perf_counter() - started


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--refill", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    _setup(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))

    from django.db import connection
    from django.db.models import Count, Sum
    from django.utils import timezone

    from usage.ledger import ledger_record, usage_rollup_rebuild
    from usage.models import ApiCall, DailyUsage
    from usage.report import usage_report

    _people()
    have = ApiCall.objects.count()
    if args.refill or have != args.rows:
        print(f"Filling {args.rows:,} ApiCall rows in {BENCH_DB} ...", flush=True)
        print(f"  insert: {_fill(args.rows):.1f} s", flush=True)
        started = time.perf_counter()
        built = usage_rollup_rebuild()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE usage_dailyusage")
        print(
            f"  rollup rebuild (one GROUP BY): {built:,} daily rows in {time.perf_counter() - started:.1f} s"
        )
    else:
        print(f"Reusing {have:,} ApiCall rows in {BENCH_DB} (--refill to start over)")

    today = timezone.now().date()
    ranges = {"1 month": today - dt.timedelta(days=30), "6 months": today - dt.timedelta(days=DAYS)}
    some_team = DailyUsage.objects.exclude(team_id=0).values_list("team_id", flat=True).first()
    results = []
    for label, start in ranges.items():
        days = DailyUsage.objects.filter(day__gte=start, day__lte=today).count()
        calls = DailyUsage.objects.filter(day__gte=start, day__lte=today).aggregate(n=Sum("calls"))[
            "n"
        ]
        report_ms = _median_ms(lambda s=start: usage_report(start=s, end=today), args.repeat)
        by_user_ms = _median_ms(
            lambda s=start: usage_report(start=s, end=today, chart_by="user"), args.repeat
        )
        team_ms = _median_ms(
            lambda s=start: usage_report(start=s, end=today, team_id=some_team), args.repeat
        )
        begin = dt.datetime.combine(start, dt.time(), dt.UTC)

        def raw(b=begin):
            list(
                ApiCall.objects.filter(created_at__gte=b)
                .values("user_id")
                .order_by()
                .annotate(n=Count("id"), usd=Sum("cost_usd"), inp=Sum("input_tokens"))
            )

        raw_ms = _median_ms(raw, max(1, args.repeat // 2))
        results.append((label, calls, days, report_ms, by_user_ms, team_ms, raw_ms))

    call = ApiCall.objects.order_by("-id").first()
    record_ms = _median_ms(lambda: ledger_record(call=call), args.repeat)

    print()
    print(
        f"{'range':<10} {'calls':>10} {'rollup rows':>12} {'page (chart/team)':>18} "
        f"{'chart/user':>11} {'one team':>9} {'ledger GROUP BY':>16}"
    )
    for label, calls, days, report_ms, by_user_ms, team_ms, raw_ms in results:
        print(
            f"{label:<10} {calls:>10,} {days:>12,} {report_ms:>15.1f} ms {by_user_ms:>8.1f} ms "
            f"{team_ms:>6.1f} ms {raw_ms:>13.1f} ms"
        )
    print(f"\nledger_record (per-call rollup upsert + spend): {record_ms:.2f} ms")
    print(
        "page = all queries of usage_report(): per user, per team, per model, daily series, names"
    )
    print("targets: 1 month < 300 ms, 6 months < 1000 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
