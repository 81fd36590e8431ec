"""Reports on usage: the admin's "Usage & costs" and a person's own month.

The admin report reads only the daily rollup (a few thousand rows a month,
indexed by day), never the ledger, so its cost does not grow with the number of
calls.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Max, Sum
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import Team, User
from accounts.services import user_primary_team
from claude.providers import PROVIDER_LABELS
from usage.budgets import ZERO, budget_status
from usage.models import ApiCall, DailyUsage
from usage.periods import month_reset_at, month_start

# --- The admin's report -------------------------------------------------------------------

REPORT_COLUMNS = (
    ("name", _("Name")),
    ("calls", _("Calls")),
    ("input_tokens", _("Input tokens")),
    ("output_tokens", _("Output tokens")),
    ("cache_write_tokens", _("Cache write tokens")),
    ("cache_read_tokens", _("Cache read tokens")),
    ("cost_usd", _("Cost (USD)")),
    ("cache_savings_usd", _("Cache savings (USD)")),
    ("batch_savings_usd", _("Batch savings (USD)")),
    ("regional_premium_usd", _("Regional premium (USD)")),
    ("unpriced_calls", _("Unpriced calls")),
)
SORTABLE = {key for key, _label in REPORT_COLUMNS}

_SUMS = {
    "calls": Sum("calls"),
    "unpriced_calls": Sum("unpriced_calls"),
    "input_tokens": Sum("input_tokens"),
    "output_tokens": Sum("output_tokens"),
    "cache_write_5m": Sum("cache_write_5m_tokens"),
    "cache_write_1h": Sum("cache_write_1h_tokens"),
    "cache_read_tokens": Sum("cache_read_tokens"),
    "cost_usd": Sum("cost_usd"),
    "cache_savings_usd": Sum("cache_savings_usd"),
    "batch_savings_usd": Sum("batch_savings_usd"),
    "regional_premium_usd": Sum("regional_premium_usd"),
}


@dataclass
class ReportRow:
    key: object
    name: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: Decimal = ZERO
    cache_savings_usd: Decimal = ZERO
    batch_savings_usd: Decimal = ZERO
    regional_premium_usd: Decimal = ZERO
    unpriced_calls: int = 0

    def cells(self) -> list:
        return [getattr(self, key) for key, _label in REPORT_COLUMNS]


@dataclass
class UsageReport:
    start: dt.date
    end: dt.date
    by_user: list[ReportRow]
    by_team: list[ReportRow]
    by_model: list[ReportRow]
    total: ReportRow
    days: list[dt.date]
    # (label, cost per day in `days`), the largest first, at most 6 with "Others".
    series: list[tuple[str, list[Decimal]]] = field(default_factory=list)
    chart_by: str = "team"
    # Per provider, region and endpoint: where the calls went, and the premium paid.
    by_endpoint: list[ReportRow] = field(default_factory=list)


def _row_from(key, name: str, values: dict) -> ReportRow:
    return ReportRow(
        key=key,
        name=name,
        calls=values["calls"] or 0,
        input_tokens=values["input_tokens"] or 0,
        output_tokens=values["output_tokens"] or 0,
        cache_write_tokens=(values["cache_write_5m"] or 0) + (values["cache_write_1h"] or 0),
        cache_read_tokens=values["cache_read_tokens"] or 0,
        cost_usd=values["cost_usd"] or ZERO,
        cache_savings_usd=values["cache_savings_usd"] or ZERO,
        batch_savings_usd=values["batch_savings_usd"] or ZERO,
        regional_premium_usd=values["regional_premium_usd"] or ZERO,
        unpriced_calls=values["unpriced_calls"] or 0,
    )


def endpoint_name(provider: str, region: str, endpoint: str) -> str:
    """ "Amazon Bedrock, regional (eu-west-1)": where a row's calls went."""
    label = PROVIDER_LABELS.get(provider, provider)
    kind = (
        ApiCall.Endpoint(endpoint).label.lower()
        if endpoint in ApiCall.Endpoint.values
        else endpoint
    )
    return f"{label}, {kind}" + (f" ({region})" if region else "")


def _sorted(rows: list[ReportRow], sort: str) -> list[ReportRow]:
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    if key not in SORTABLE:
        key, descending = "cost_usd", True
    return sorted(
        rows,
        key=lambda r: getattr(r, key).lower() if key == "name" else getattr(r, key),
        reverse=descending,
    )


def usage_report(
    *,
    start: dt.date,
    end: dt.date,
    team_id: int | None = None,
    user_id: int | None = None,
    model: str = "",
    sort: str = "-cost_usd",
    chart_by: str = "team",
) -> UsageReport:
    """Totals per user, team and model for [start, end] (UTC days), and a daily series.

    Five GROUP BY queries on the rollup plus two small name lookups. Deleted
    people and teams stay in the totals as "deleted user #id".
    """
    rows = DailyUsage.objects.filter(day__gte=start, day__lte=end)
    if team_id is not None:
        rows = rows.filter(team_id=team_id)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    if model:
        rows = rows.filter(model=model)
    per_user = list(rows.values("user_id").order_by().annotate(**_SUMS))
    per_team = list(rows.values("team_id").order_by().annotate(**_SUMS))
    per_model = list(rows.values("model").order_by().annotate(**_SUMS))
    per_endpoint = list(rows.values("provider", "region", "endpoint").order_by().annotate(**_SUMS))
    chart_by = "user" if chart_by == "user" else "team"
    daily = list(rows.values("day", f"{chart_by}_id").order_by().annotate(cost=Sum("cost_usd")))

    users = {u.pk: str(u) for u in User.objects.filter(pk__in=[r["user_id"] for r in per_user])}
    teams = {t.pk: t.name for t in Team.objects.filter(pk__in=[r["team_id"] for r in per_team])}

    def user_name(pk: int) -> str:
        if not pk:
            return gettext("(no user)")
        return users.get(pk) or gettext("deleted user #%(id)s") % {"id": pk}

    def team_name(pk: int) -> str:
        if not pk:
            return gettext("(no team)")
        return teams.get(pk) or gettext("deleted team #%(id)s") % {"id": pk}

    by_user = _sorted([_row_from(r["user_id"], user_name(r["user_id"]), r) for r in per_user], sort)
    by_team = _sorted([_row_from(r["team_id"], team_name(r["team_id"]), r) for r in per_team], sort)
    by_model = _sorted([_row_from(r["model"], r["model"], r) for r in per_model], sort)
    by_endpoint = _sorted(
        [
            _row_from(
                (r["provider"], r["region"], r["endpoint"]),
                endpoint_name(r["provider"], r["region"], r["endpoint"]),
                r,
            )
            for r in per_endpoint
        ],
        sort,
    )
    total = ReportRow(key=None, name=gettext("Total"))
    for row in by_model:
        for key, _label in REPORT_COLUMNS[1:]:
            setattr(total, key, getattr(total, key) + getattr(row, key))

    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    namer = user_name if chart_by == "user" else team_name
    return UsageReport(
        start=start,
        end=end,
        by_user=by_user,
        by_team=by_team,
        by_model=by_model,
        total=total,
        by_endpoint=by_endpoint,
        days=days,
        series=daily_series(daily, days=days, key=f"{chart_by}_id", namer=namer),
        chart_by=chart_by,
    )


def daily_series(
    daily: list[dict], *, days: list[dt.date], key: str, namer, top: int = 5
) -> list[tuple[str, list[Decimal]]]:
    """Cost per day per series: the `top` biggest spenders, the rest as "Others"."""
    index = {day: i for i, day in enumerate(days)}
    per: dict = {}
    for row in daily:
        values = per.setdefault(row[key], [ZERO] * len(days))
        if row["day"] in index:
            values[index[row["day"]]] += row["cost"] or ZERO
    ranked = sorted(per.items(), key=lambda item: sum(item[1]), reverse=True)
    series = [(namer(k), values) for k, values in ranked[:top]]
    if len(ranked) > top:
        others = [ZERO] * len(days)
        for _name, values in ranked[top:]:
            others = [a + b for a, b in zip(others, values, strict=True)]
        series.append((gettext("Others"), others))
    return series


# --- My usage ----------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationCost:
    conversation_uuid: object
    title: str
    exists: bool
    calls: int
    cost_usd: Decimal
    last_at: dt.datetime


def my_usage(*, user: User, now: dt.datetime | None = None) -> dict:
    """A person's month: status, a daily series and cost per conversation. Every
    query is scoped to `user`."""
    now = now or timezone.now()
    month = month_start(now)
    end = (month_reset_at(month) - dt.timedelta(days=1)).date()
    team = user_primary_team(user=user)
    status = budget_status(user_id=user.pk, team_id=team.pk if team else None, now=now)
    days = [month + dt.timedelta(days=i) for i in range((end - month).days + 1)]
    daily = list(
        DailyUsage.objects.filter(user_id=user.pk, day__gte=month, day__lte=end)
        .values("day")
        .order_by()
        .annotate(cost=Sum("cost_usd"), user_id=Max("user_id"))
    )
    series = daily_series(daily, days=days, key="user_id", namer=lambda _: gettext("You"))
    month_begin = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
    # Titles through the ledger's own foreign key (usage does not import
    # conversations): NULL once the conversation is deleted, and shown only when
    # the conversation is still the person's own.
    rows = list(
        ApiCall.objects.filter(user=user, created_at__gte=month_begin)
        .values(
            "conversation_uuid", "conversation_id", "conversation__owner_id", "conversation__title"
        )
        .order_by()
        .annotate(calls=Count("id"), cost=Sum("cost_usd"), last_at=Max("created_at"))
        .order_by("-cost")[:200]
    )
    conversations = []
    for r in rows:
        exists = r["conversation_id"] is not None and r["conversation__owner_id"] == user.pk
        conversations.append(
            ConversationCost(
                conversation_uuid=r["conversation_uuid"],
                title=(r["conversation__title"] or gettext("New conversation"))
                if exists
                else gettext("(deleted conversation)"),
                exists=exists,
                calls=r["calls"],
                cost_usd=r["cost"] or ZERO,
                last_at=r["last_at"],
            )
        )
    return {
        "status": status,
        "month": month,
        "days": days,
        "series": series,
        "conversation_costs": conversations,
        "team": team,
    }
