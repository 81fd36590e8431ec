"""The ledger: record a call (settling its budget hold and adding it to the daily
rollup, in the transaction that wrote the `ApiCall`), rebuild the rollup, and
log the composer's free token count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from claude.pricing import Usage, cost, worst_case_cost
from claude.providers import endpoint, regional_premium
from infra.rows import rows_upsert_add
from usage.budgets import (
    ZERO,
    budget_draw_in_transaction,
    counters_spend_add,
    reservation_close,
    reservation_counters_settle,
)
from usage.models import ApiCall, BudgetReservation, DailyUsage

_ROLLUP_SUMS = (
    "calls",
    "unpriced_calls",
    "input_tokens",
    "output_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "cost_usd",
    "cache_savings_usd",
    "batch_savings_usd",
    "regional_premium_usd",
)
_ROLLUP_KEY = ("day", "user_id", "team_id", "model", "provider", "region", "endpoint")


def _rollup_upsert(*, key: dict, values: dict) -> None:
    """Add one call to its day's row in one statement, so concurrent writers never
    lose an addition (plain SQL: it runs at the end of every reply)."""
    rows_upsert_add(DailyUsage, [{**key, **values}], unique=_ROLLUP_KEY, add=_ROLLUP_SUMS)


def api_call_priced(
    *, model: str, usage: Usage, on: dt.date, batch: bool = False, **fields: Any
) -> ApiCall:
    """An unsaved ledger row for one call to `model` that used `usage`, priced by
    the price row in force `on` that day: this deployment's provider, region and
    endpoint, the regional premium where it applies, the batch price with `batch`.
    `fields` are the row's own (who, what for, request id, timings...)."""
    where = endpoint()
    premium = regional_premium(model)
    price = cost(model, usage, at=on, batch=batch, regional=premium)
    return ApiCall(
        provider=where.provider,
        region=where.region,
        endpoint=where.kind,
        model=model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_write_5m_tokens=usage.cache_write_5m_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cost_usd=price.usd,
        batch=batch,
        cache_savings_usd=price.cache_savings_usd,
        batch_savings_usd=price.batch_savings_usd,
        regional=premium,
        regional_premium_usd=price.regional_premium_usd,
        price_key=price.price_key,
        priced=price.priced,
        **fields,
    )


def _rollup_key(call: ApiCall) -> dict:
    """The daily rollup row a call adds to."""
    return {
        "day": call.created_at.astimezone(dt.UTC).date(),
        "user_id": call.user_id or 0,
        "team_id": call.team_id or 0,
        "model": call.model,
        "provider": call.provider,
        "region": call.region,
        "endpoint": call.endpoint,
    }


def _rollup_values(call: ApiCall) -> dict:
    """What one call adds to its rollup row."""
    return {
        "calls": 1,
        "unpriced_calls": 0 if call.priced else 1,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "cache_write_5m_tokens": call.cache_write_5m_tokens,
        "cache_write_1h_tokens": call.cache_write_1h_tokens,
        "cache_read_tokens": call.cache_read_tokens,
        "cost_usd": Decimal(call.cost_usd),
        "cache_savings_usd": Decimal(call.cache_savings_usd),
        "batch_savings_usd": Decimal(call.batch_savings_usd),
        "regional_premium_usd": Decimal(call.regional_premium_usd),
    }


def ledger_record_in_transaction(*, call: ApiCall, reservation_id=None) -> None:
    """Account one ledger row: settle its reservation (or, with none open, add its
    cost to the month's spend) and add it to the daily rollup.

    Call inside the transaction that created `call`, so the ledger, the budget
    and the rollup move together or not at all. `ledger_record` is the form that
    opens its own (a savepoint, when nested).
    """
    cost_usd = Decimal(call.cost_usd)
    settled = (
        reservation_close(reservation_id, actual=cost_usd, status=BudgetReservation.Status.SETTLED)
        if reservation_id
        else None
    )
    _rollup_upsert(key=_rollup_key(call), values=_rollup_values(call))
    # The budget counters last: their row locks are shared by every call of the
    # team, so they are held for as short a time as the transaction allows.
    if settled is not None:
        reservation_counters_settle(settled, cost_usd)
    elif cost_usd and call.user_id:
        counters_spend_add(
            user_id=call.user_id, team_id=call.team_id, amount=cost_usd, when=call.created_at
        )


ledger_record = transaction.atomic(ledger_record_in_transaction)


def ledger_record_batch_in_transaction(
    *, calls: list[ApiCall], reservation_id, user_id: int | None, team_id: int | None
) -> list[ApiCall]:
    """Write many ledger rows of one batch job at once (`calls`, unsaved) and
    account them: one INSERT, one rollup upsert per day, person, team and model,
    and one draw of their total on the job's budget hold.

    Call inside the transaction that records what they bill for (the summaries'
    results), so a result and its ledger row exist together or not at all.
    Returns the saved rows (with their ids)."""
    if not calls:
        return []
    saved = ApiCall.objects.bulk_create(calls)
    sums: dict[tuple, dict] = {}
    for call in saved:
        key = _rollup_key(call)
        row = sums.setdefault(tuple(key[k] for k in _ROLLUP_KEY), dict.fromkeys(_ROLLUP_SUMS, 0))
        for field, value in _rollup_values(call).items():
            row[field] += value
    rows_upsert_add(
        DailyUsage,
        [dict(zip(_ROLLUP_KEY, key, strict=True)) | values for key, values in sorted(sums.items())],
        unique=_ROLLUP_KEY,
        add=_ROLLUP_SUMS,
    )
    total = sum((Decimal(call.cost_usd) for call in saved), ZERO)
    # Last: the counter locks are shared by every call of the team.
    budget_draw_in_transaction(
        reservation_id=reservation_id,
        user_id=user_id,
        team_id=team_id,
        amount=total,
        when=saved[0].created_at,
    )
    return saved


@transaction.atomic
def usage_rollup_rebuild(
    *, start: dt.date | None = None, end: dt.date | None = None, batch_size: int = 5000
) -> int:
    """Recompute the daily rollup from the ledger with one GROUP BY (repair, or a
    first fill after a bulk import). Days in [start, end] only, when given.
    Rows of deleted users or teams keep the ids stored in the old rollup only if
    their days are outside the range: the ledger no longer knows them."""
    calls = ApiCall.objects.all()
    rollup = DailyUsage.objects.all()
    if start:
        calls = calls.filter(created_at__gte=dt.datetime.combine(start, dt.time(), dt.UTC))
        rollup = rollup.filter(day__gte=start)
    if end:
        calls = calls.filter(
            created_at__lt=dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
        )
        rollup = rollup.filter(day__lte=end)
    rollup.delete()
    grouped = (
        calls.annotate(
            day=TruncDate("created_at", tzinfo=dt.UTC),
            uid=Coalesce("user_id", Value(0)),
            tid=Coalesce("team_id", Value(0)),
        )
        .values("day", "uid", "tid", "model", "provider", "region", "endpoint")
        .order_by()
        .annotate(
            n=Count("id"),
            unpriced=Count("id", filter=Q(priced=False)),
            inp=Sum("input_tokens"),
            out=Sum("output_tokens"),
            w5=Sum("cache_write_5m_tokens"),
            w1=Sum("cache_write_1h_tokens"),
            rd=Sum("cache_read_tokens"),
            usd=Sum("cost_usd"),
            cache=Sum("cache_savings_usd"),
            batch=Sum("batch_savings_usd"),
            premium=Sum("regional_premium_usd"),
        )
    )
    rows = [
        DailyUsage(
            day=g["day"],
            user_id=g["uid"],
            team_id=g["tid"],
            model=g["model"],
            provider=g["provider"],
            region=g["region"],
            endpoint=g["endpoint"],
            calls=g["n"],
            unpriced_calls=g["unpriced"],
            input_tokens=g["inp"],
            output_tokens=g["out"],
            cache_write_5m_tokens=g["w5"],
            cache_write_1h_tokens=g["w1"],
            cache_read_tokens=g["rd"],
            cost_usd=g["usd"],
            cache_savings_usd=g["cache"],
            batch_savings_usd=g["batch"],
            regional_premium_usd=g["premium"],
        )
        for g in grouped.iterator(chunk_size=batch_size)
    ]
    DailyUsage.objects.bulk_create(rows, batch_size=batch_size)
    return len(rows)


@dataclass(frozen=True)
class Estimate:
    input_tokens: int
    estimated_cost_usd: Decimal
    max_cost_usd: Decimal


@transaction.atomic
def estimate_record(
    *,
    user_id: int,
    team_id: int | None,
    conversation_id,
    model: str,
    input_tokens: int,
    max_output_tokens: int,
    request_id: str = "",
) -> Estimate:
    """Log the (free) token count of a draft as a ledger row and price the next call
    from it: the input alone, and the worst case with a full-length answer
    (`max_output_tokens`: the `max_tokens` the chat request would carry)."""
    where = endpoint()
    call = ApiCall.objects.create(
        user_id=user_id,
        team_id=team_id,
        conversation_id=conversation_id,
        conversation_uuid=conversation_id,
        purpose=ApiCall.Purpose.COUNT_TOKENS,
        provider=where.provider,
        region=where.region,
        endpoint=where.kind,
        model=model,
        input_tokens=0,
        cost_usd=ZERO,
        price_key="count_tokens@free",
        request_id=request_id,
    )
    ledger_record_in_transaction(call=call)
    return estimate_priced(
        model=model, input_tokens=input_tokens, max_output_tokens=max_output_tokens
    )


def estimate_priced(*, model: str, input_tokens: int, max_output_tokens: int) -> Estimate:
    """The next call priced from a count of its prompt (the API's, or a local
    estimate where the provider counts none): the input alone, and the worst case
    with a full-length answer, at this deployment's endpoint (regional premium)."""
    today = timezone.now().date()
    regional = regional_premium(model)
    return Estimate(
        input_tokens=input_tokens,
        estimated_cost_usd=cost(
            model, Usage(input_tokens=input_tokens), at=today, regional=regional
        ).usd,
        max_cost_usd=worst_case_cost(
            model,
            prompt_tokens=input_tokens,
            max_output_tokens=max_output_tokens,
            at=today,
            regional=regional,
        ),
    )
