"""Writes on usage and budgets: reserve, settle, release, sweep, record, rebuild.

Every call to Claude holds its worst-case cost against the budget before it
starts (`budget_reserve`, inside the transaction that stores the message) and
turns it into its real cost when it ends (`usage_record` -> `budget_settle`,
inside the transaction that writes the `ApiCall`). The counters are per scope
and UTC month, locked row by row, so concurrent sends on many processes cannot
together pass a budget.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from claude.catalog import model_info
from claude.pricing import worst_case_cost
from claude.stream import ChatRequest, request_params
from conversations.models import ApiCall, Conversation, Message
from infra.rows import row_values, rows_insert
from usage.models import Budget, BudgetCounter, BudgetReservation, DailyUsage
from usage.money import usd_display

ZERO = Decimal(0)
# Tokens are about four characters of English; three is the conservative side.
CHARS_PER_TOKEN = 3
# Per-message framing the API adds around each turn, generously.
TURN_OVERHEAD_TOKENS = 16


class BudgetExceeded(Exception):
    """A call would take a budget past its limit. `message` is for the person."""

    def __init__(self, *, scope: str, limit: Decimal, left: Decimal, resets_at: dt.datetime):
        self.scope = scope
        self.limit = limit
        self.left = left
        self.resets_at = resets_at
        whose = "Your team's" if scope == "team" else "Your personal"
        self.message = (
            f"{whose} monthly budget of {usd_display(limit)} is used up"
            + (
                f" ({usd_display(max(left, ZERO))} left, not enough for another message)"
                if left > 0
                else ""
            )
            + f". It resets on {reset_label(resets_at)}. Ask your team owner or an admin to raise it."
        )
        super().__init__(self.message)


class RateLimited(Exception):
    """Too many messages in the last minute. `message` is for the person."""

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self.message = (
            f"You are sending messages too fast (the limit is {limit} a minute). "
            "Wait a minute, then send again."
        )
        super().__init__(self.message)


def month_start(when: dt.datetime | None = None) -> dt.date:
    """The first day of the UTC month `when` falls in: the budget period."""
    moment = (when or timezone.now()).astimezone(dt.UTC)
    return moment.date().replace(day=1)


def month_reset_at(month: dt.date) -> dt.datetime:
    """When the budget period starting on `month` ends: 00:00 UTC on the 1st of the next."""
    nxt = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return dt.datetime(nxt.year, nxt.month, 1, tzinfo=dt.UTC)


def reset_label(when: dt.datetime) -> str:
    """'1 December 2026, 00:00 UTC'."""
    return f"{when.day} {when:%B %Y}, 00:00 UTC"


def scope_keys(*, user_id: int | None, team_id: int | None) -> tuple[str, str]:
    return (f"user:{user_id}" if user_id else "", f"team:{team_id}" if team_id else "")


_MICRO = Decimal("0.000001")


def _counters_add(
    scopes: list[str], month: dt.date, *, reserved: Decimal = ZERO, spent: Decimal = ZERO
) -> dict[str, tuple[Decimal, Decimal]]:
    """Add to the month's counters of `scopes` (creating them) and return each one's
    (spent, reserved) after the addition.

    One INSERT ... ON CONFLICT DO UPDATE ... RETURNING (PostgreSQL and SQLite
    both): it creates, locks and updates the rows in `scope` order (team before
    user, the one order every writer uses, so two cannot deadlock) and reads them
    back, where a SELECT ... FOR UPDATE, an UPDATE and a SELECT took three trips.
    Precondition: inside a transaction; the locks are held until it ends.
    """
    table = BudgetCounter._meta.db_table
    ordered = sorted(scopes)
    rows = ", ".join(["(%s, %s, %s, %s)"] * len(ordered))
    sql = (
        f"INSERT INTO {table} (scope, month, spent_usd, reserved_usd) VALUES {rows} "
        f"ON CONFLICT (scope, month) DO UPDATE SET "
        f"spent_usd = {table}.spent_usd + EXCLUDED.spent_usd, "
        f"reserved_usd = {table}.reserved_usd + EXCLUDED.reserved_usd "
        f"RETURNING scope, spent_usd, reserved_usd"
    )
    sqlite = connection.vendor == "sqlite"
    params: list = []
    for scope in ordered:
        params += [scope, month, str(spent) if sqlite else spent, str(reserved) if sqlite else reserved]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    return {scope: (_usd(s), _usd(r)) for scope, s, r in returned}


def _limits(*, user_id: int | None, team_id: int | None) -> dict[str, Decimal]:
    """The monthly limits that apply to a call: {"team:<id>" | "user:<id>": USD}.

    Plain SQL: it runs on every send, and building the ORM query cost twenty times
    what the database did (370 us against 16 us for this query, measured)."""
    table = Budget._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT team_id, user_id, monthly_limit_usd FROM {table} "
            "WHERE user_id = %s OR team_id = %s",
            [user_id or -1, team_id or -1],
        )
        rows = cursor.fetchall()
    return {
        (f"team:{team}" if team else f"user:{user}"): _usd(limit) for team, user, limit in rows
    }


def _calls_started_since(user_id: int, since: dt.datetime) -> int:
    """How many calls the person started since `since` (the rate limit), in plain
    SQL for the same reason as `_limits` (292 us through the ORM, 30 us here)."""
    table = BudgetReservation._meta.db_table
    created_at = BudgetReservation._meta.get_field("created_at")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {table} WHERE user_id = %s AND created_at >= %s",
            [user_id, created_at.get_db_prep_value(since, connection)],
        )
        return cursor.fetchone()[0]


def _usd(value) -> Decimal:
    """A money column as read back: SQLite hands numbers back as floats."""
    return Decimal(str(value)).quantize(_MICRO)


@dataclass(frozen=True)
class BudgetHold:
    reservation: BudgetReservation
    # A team or personal limit applies: the person has a budget to watch.
    limited: bool


def budget_hold_in_transaction(
    *,
    user_id: int,
    team_id: int | None,
    amount: Decimal,
    message: Message | None = None,
    now: dt.datetime | None = None,
) -> BudgetHold:
    """Hold `amount` (a call's worst case) against this month's team and user budgets.

    Raises RateLimited when the person started too many calls in the last
    minute, BudgetExceeded when spent + held + amount would pass either limit.
    Under the counter locks, so of many concurrent callers only as many pass as
    the budget can hold. A person with no budget anywhere is still held (the
    counters are how "this month's spend" is read in O(1)).

    Precondition: inside a transaction that a refusal rolls back whole (the
    hold is added before the check). `budget_reserve` is the standalone form.
    """
    now = now or timezone.now()
    month = month_start(now)
    user_scope, team_scope = scope_keys(user_id=user_id, team_id=team_id)
    scopes = [s for s in (team_scope, user_scope) if s]
    limits = _limits(user_id=user_id, team_id=team_id)
    # Before the counter lock, like everything that does not need it: the lock
    # on a team's counter is what every send of the team waits for, so it is
    # taken last and held only until the caller commits. The rate limit is a
    # guard against floods, not money: sends racing at the very limit may all pass.
    per_minute = settings.USAGE_RATE_LIMIT_PER_MINUTE
    if per_minute:
        if _calls_started_since(user_id, now - dt.timedelta(minutes=1)) >= per_minute:
            raise RateLimited(limit=per_minute)
    reservation = BudgetReservation(
        user_id=user_id,
        user_scope=user_scope,
        team_scope=team_scope,
        month=month,
        message=message,
        amount_usd=amount,
    )
    rows_insert(reservation)
    counters = _counters_add(scopes, month, reserved=amount)
    for scope in scopes:
        limit = limits.get(scope)
        if limit is None:
            continue
        spent, reserved = counters[scope]
        left = limit - spent - (reserved - amount)
        if amount > left:
            # Raised inside the transaction: the hold and the reservation go with it.
            raise BudgetExceeded(
                scope=scope.split(":")[0], limit=limit, left=left, resets_at=month_reset_at(month)
            )
    return BudgetHold(reservation=reservation, limited=bool(limits))


@transaction.atomic
def budget_reserve(
    *,
    user_id: int,
    team_id: int | None,
    amount: Decimal,
    message: Message | None = None,
    now: dt.datetime | None = None,
) -> BudgetReservation:
    """`budget_hold_in_transaction` in a transaction of its own (a savepoint when nested)."""
    return budget_hold_in_transaction(
        user_id=user_id, team_id=team_id, amount=amount, message=message, now=now
    ).reservation


@dataclass(frozen=True)
class ClosedReservation:
    """What closing a reservation moves on the counters."""

    user_scope: str
    team_scope: str
    month: dt.date
    amount_usd: Decimal


def _reservation_close(
    reservation_id, *, actual: Decimal, status: BudgetReservation.Status
) -> ClosedReservation | None:
    """Mark an open reservation closed; None if it was not open. The counters are
    the caller's to move (last, see `_close`).

    One UPDATE ... WHERE status = 'open' RETURNING, in plain SQL (it runs at the
    end of every reply): it locks the row before the counters (the same order
    everywhere), so a generator settling and the sweeper expiring the same
    reservation cannot both close it; the second finds it closed.
    """
    meta = BudgetReservation._meta
    sql = (
        f"UPDATE {meta.db_table} SET status = %s, actual_usd = %s, closed_at = %s "
        "WHERE id = %s AND status = %s "
        "RETURNING user_scope, team_scope, month, amount_usd"
    )
    params = [
        str(status),
        meta.get_field("actual_usd").get_db_prep_save(actual, connection),
        meta.get_field("closed_at").get_db_prep_save(timezone.now(), connection),
        meta.pk.get_db_prep_value(reservation_id, connection),
        str(BudgetReservation.Status.OPEN),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    user_scope, team_scope, month, amount = row
    return ClosedReservation(
        user_scope=user_scope,
        team_scope=team_scope,
        month=meta.get_field("month").to_python(month),
        amount_usd=_usd(amount),
    )


def _reservation_counters_settle(reservation: ClosedReservation, actual: Decimal) -> None:
    scopes = [s for s in (reservation.team_scope, reservation.user_scope) if s]
    _counters_add(scopes, reservation.month, reserved=-reservation.amount_usd, spent=actual)


def _close(
    reservation_id, *, actual: Decimal, status: BudgetReservation.Status
) -> ClosedReservation | None:
    reservation = _reservation_close(reservation_id, actual=actual, status=status)
    if reservation is not None:
        _reservation_counters_settle(reservation, actual)
    return reservation


@transaction.atomic
def budget_settle(*, reservation_id, actual_usd: Decimal) -> ClosedReservation | None:
    """Turn an open reservation into the call's real cost; None if it was already closed."""
    return _close(reservation_id, actual=actual_usd, status=BudgetReservation.Status.SETTLED)


@transaction.atomic
def budget_release(*, reservation_id) -> ClosedReservation | None:
    """Give a reservation back unspent (the call never reached Claude)."""
    return _close(reservation_id, actual=ZERO, status=BudgetReservation.Status.RELEASED)


def budget_sweep(*, older_than: dt.timedelta | None = None) -> int:
    """Release reservations left open by a process that died mid-call.

    Only those older than the TTL whose reply is gone or no longer running:
    a live stream keeps its hold however long it takes. Returns how many.
    """
    age = older_than or dt.timedelta(seconds=settings.USAGE_RESERVATION_TTL_SECONDS)
    cutoff = timezone.now() - age
    stale = (
        BudgetReservation.objects.filter(
            status=BudgetReservation.Status.OPEN, created_at__lt=cutoff
        )
        .exclude(message__status__in=Message.ACTIVE_STATUSES)
        .values_list("id", flat=True)
    )
    swept = 0
    for reservation_id in list(stale):
        with transaction.atomic():
            if _close(reservation_id, actual=ZERO, status=BudgetReservation.Status.EXPIRED):
                swept += 1
    return swept


def budget_limit_set(*, team=None, user=None, limit_usd: Decimal | None) -> Budget | None:
    """Set (or with None, remove) the monthly budget of one team or one person."""
    if (team is None) == (user is None):
        raise ValueError("exactly one of team or user")
    lookup = {"team": team} if team is not None else {"user": user}
    if limit_usd is None:
        Budget.objects.filter(**lookup).delete()
        return None
    budget, _ = Budget.objects.update_or_create(**lookup, defaults={"monthly_limit_usd": limit_usd})
    return budget


# --- The worst case of the next call ---------------------------------------------


def call_max_output_tokens(conversation: Conversation) -> int:
    """`max_tokens` the chat request will carry, thinking budget included."""
    request = ChatRequest(
        model=conversation.model,
        messages=[],
        max_tokens=settings.CLAUDE_MAX_TOKENS,
        thinking_effort=conversation.thinking_effort,
    )
    return int(request_params(request)["max_tokens"])


_LAST_CALL_COLUMNS = [
    "input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "created_at",
]


def _last_chat_call_usage(conversation_id) -> tuple[int, int, dt.datetime] | None:
    """(prompt tokens, output tokens, when) of the conversation's last chat call that
    reported its prompt. Plain SQL: it runs on every send (see `infra/rows.py`)."""
    meta = ApiCall._meta
    sql = (
        f"SELECT {', '.join(_LAST_CALL_COLUMNS)} FROM {meta.db_table} "
        "WHERE conversation_uuid = %s AND purpose = %s "
        "AND NOT (input_tokens = 0 AND cache_read_tokens = 0 AND cache_write_5m_tokens = 0) "
        "ORDER BY created_at DESC LIMIT 1"
    )
    uuid_field = meta.get_field("conversation_uuid")
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [uuid_field.get_db_prep_value(conversation_id, connection), str(ApiCall.Purpose.CHAT)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    fresh, write_5m, write_1h, cache_read, output, created_at = row_values(
        ApiCall, _LAST_CALL_COLUMNS, row
    )
    return fresh + write_5m + write_1h + cache_read, output, created_at


def call_prompt_tokens_estimate(
    *, conversation: Conversation, new_text: str, messages: list[Message] | None = None
) -> int:
    """A conservative count of the next call's prompt, without asking the API.

    The last chat call's reported prompt plus its answer (which the next call
    sends back), plus the new text at three characters a token. With no call
    yet, the stored messages and the system prompt are counted the same way.
    `messages`: the conversation's messages (`text` and `created_at` are read),
    when the caller has them already.
    """
    last = _last_chat_call_usage(conversation.id)
    if messages is None:
        messages = list(conversation.messages.only("conversation_id", "text", "created_at"))
    if last is not None:
        prompt_tokens, output_tokens, called_at = last
        base = prompt_tokens + output_tokens + TURN_OVERHEAD_TOKENS * 2
        # Messages stored after that call (none in the usual flow, some after a failure).
        later = [m for m in messages if m.created_at > called_at]
    else:
        base = math.ceil(len(conversation.system_prompt) / CHARS_PER_TOKEN) + TURN_OVERHEAD_TOKENS
        later = messages
    chars = sum(len(m.text) for m in later)
    turns = len(later) if chars else 0
    return (
        base
        + math.ceil((chars + len(new_text)) / CHARS_PER_TOKEN)
        + TURN_OVERHEAD_TOKENS * (turns + 1)
    )


def call_worst_case_usd(
    *, conversation: Conversation, new_text: str, messages: list[Message] | None = None
) -> Decimal:
    """What the next chat call could cost at most: the amount a reservation holds."""
    info = model_info(conversation.model)
    model = info.id if info else conversation.model
    return worst_case_cost(
        model,
        prompt_tokens=call_prompt_tokens_estimate(
            conversation=conversation, new_text=new_text, messages=messages
        ),
        max_output_tokens=call_max_output_tokens(conversation),
        at=timezone.now().date(),
    )


# --- The rollup ---------------------------------------------------------------------

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
)


def _rollup_upsert(*, day: dt.date, user_id: int, team_id: int, model: str, values: dict) -> None:
    """Add one call to its day's row: INSERT ... ON CONFLICT DO UPDATE (PostgreSQL
    and SQLite both), one statement, so concurrent writers never lose an addition."""
    table = DailyUsage._meta.db_table
    columns = ", ".join(_ROLLUP_SUMS)
    placeholders = ", ".join(["%s"] * len(_ROLLUP_SUMS))
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in _ROLLUP_SUMS)
    sql = (
        f"INSERT INTO {table} (day, user_id, team_id, model, {columns}) "
        f"VALUES (%s, %s, %s, %s, {placeholders}) "
        f"ON CONFLICT (day, user_id, team_id, model) DO UPDATE SET {updates}"
    )
    params = [day, user_id, team_id, model, *(values[c] for c in _ROLLUP_SUMS)]
    if connection.vendor == "sqlite":
        params = [str(p) if isinstance(p, Decimal) else p for p in params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def usage_record_in_transaction(*, call: ApiCall, reservation_id=None) -> None:
    """Account one ledger row: settle its reservation (or, with none open, add its
    cost to the month's spend) and add it to the daily rollup.

    Call inside the transaction that created `call`, so the ledger, the budget
    and the rollup move together or not at all. `usage_record` is the form that
    opens its own (a savepoint, when nested).
    """
    cost_usd = Decimal(call.cost_usd)
    settled = (
        _reservation_close(reservation_id, actual=cost_usd, status=BudgetReservation.Status.SETTLED)
        if reservation_id
        else None
    )
    _rollup_upsert(
        day=call.created_at.astimezone(dt.UTC).date(),
        user_id=call.user_id or 0,
        team_id=call.team_id or 0,
        model=call.model,
        values={
            "calls": 1,
            "unpriced_calls": 0 if call.priced else 1,
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "cache_write_5m_tokens": call.cache_write_5m_tokens,
            "cache_write_1h_tokens": call.cache_write_1h_tokens,
            "cache_read_tokens": call.cache_read_tokens,
            "cost_usd": cost_usd,
            "cache_savings_usd": Decimal(call.cache_savings_usd),
            "batch_savings_usd": Decimal(call.batch_savings_usd),
        },
    )
    # The budget counters last: their row locks are shared by every call of the
    # team, so they are held for as short a time as the transaction allows.
    if settled is not None:
        _reservation_counters_settle(settled, cost_usd)
    elif cost_usd and call.user_id:
        user_scope, team_scope = scope_keys(user_id=call.user_id, team_id=call.team_id)
        scopes = [s for s in (team_scope, user_scope) if s]
        _counters_add(scopes, month_start(call.created_at), spent=cost_usd)


usage_record = transaction.atomic(usage_record_in_transaction)


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
        .values("day", "uid", "tid", "model")
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
        )
    )
    rows = [
        DailyUsage(
            day=g["day"],
            user_id=g["uid"],
            team_id=g["tid"],
            model=g["model"],
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
    *, conversation: Conversation, user_id: int, input_tokens: int, request_id: str = ""
) -> Estimate:
    """Log the (free) token count as a ledger row and price the next call from it:
    the input alone, and the worst case with a full-length answer."""
    from claude.client import claude_provider
    from claude.pricing import Usage, cost

    today = timezone.now().date()
    call = ApiCall.objects.create(
        user_id=user_id,
        team_id=conversation.team_id,
        conversation=conversation,
        conversation_uuid=conversation.id,
        purpose=ApiCall.Purpose.COUNT_TOKENS,
        provider=claude_provider(),
        model=conversation.model,
        input_tokens=0,
        cost_usd=ZERO,
        price_key="count_tokens@free",
        request_id=request_id,
    )
    usage_record(call=call)
    return Estimate(
        input_tokens=input_tokens,
        estimated_cost_usd=cost(conversation.model, Usage(input_tokens=input_tokens), at=today).usd,
        max_cost_usd=worst_case_cost(
            conversation.model,
            prompt_tokens=input_tokens,
            max_output_tokens=call_max_output_tokens(conversation),
            at=today,
        ),
    )
