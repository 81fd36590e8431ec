"""Budgets: hold a call's worst case before it starts, settle or release it when
it ends, sweep the holds of dead processes, set limits, and tell a person where
they stand.

Every call to Claude holds its worst-case cost against the budget before it
starts (`budget_hold_in_transaction`, inside the transaction that stores the
message) and turns it into its real cost when it ends (`usage.ledger` ->
`reservation_close`, inside the transaction that writes the `ApiCall`). The
counters are per scope and UTC month, locked row by row, so concurrent sends on
many processes cannot together pass a budget.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from accounts.audit import audit_record
from accounts.models import AuditEvent, Team, User
from infra.rows import rows_count, rows_insert, rows_update_returning, rows_upsert_add, rows_values
from usage.models import Budget, BudgetCounter, BudgetReservation
from usage.money import usd_display
from usage.periods import month_reset_at, month_start, reset_label

ZERO = Decimal(0)


class BudgetExceeded(Exception):
    """A call would take a budget past its limit. `message` is for the person."""

    def __init__(self, *, scope: str, limit: Decimal, left: Decimal, resets_at: dt.datetime):
        self.scope = scope
        self.limit = limit
        self.left = left
        self.resets_at = resets_at
        # One whole sentence per case, for translators (gettext at raise time: the
        # person's language, the request's or the socket's).
        if scope == "team" and left > 0:
            text = gettext(
                "Your team's monthly budget of %(limit)s is used up (%(left)s left, not enough "
                "for another message). It resets on %(reset)s. Ask your team owner or an admin "
                "to raise it."
            )
        elif scope == "team":
            text = gettext(
                "Your team's monthly budget of %(limit)s is used up. It resets on %(reset)s. "
                "Ask your team owner or an admin to raise it."
            )
        elif left > 0:
            text = gettext(
                "Your personal monthly budget of %(limit)s is used up (%(left)s left, not "
                "enough for another message). It resets on %(reset)s. Ask your team owner or "
                "an admin to raise it."
            )
        else:
            text = gettext(
                "Your personal monthly budget of %(limit)s is used up. It resets on %(reset)s. "
                "Ask your team owner or an admin to raise it."
            )
        self.message = text % {
            "limit": usd_display(limit),
            "left": usd_display(max(left, ZERO)),
            "reset": reset_label(resets_at),
        }
        super().__init__(self.message)


class RateLimited(Exception):
    """Too many messages in the last minute. `message` is for the person."""

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self.message = ngettext(
            "You are sending messages too fast (the limit is %(limit)s a minute). "
            "Wait a minute, then send again.",
            "You are sending messages too fast (the limit is %(limit)s a minute). "
            "Wait a minute, then send again.",
            limit,
        ) % {"limit": limit}
        super().__init__(self.message)


def scope_keys(*, user_id: int | None, team_id: int | None) -> tuple[str, str]:
    """The counters' keys of a person and their team: ("user:<id>", "team:<id>"), "" for none."""
    return (f"user:{user_id}" if user_id else "", f"team:{team_id}" if team_id else "")


# --- The counters (plain SQL: these statements run on every send and every settle) ---


def _counters_add(
    scopes: list[str], month: dt.date, *, reserved: Decimal = ZERO, spent: Decimal = ZERO
) -> dict[str, tuple[Decimal, Decimal]]:
    """Add to the month's counters of `scopes` (creating them) and return each one's
    (spent, reserved) after the addition.

    One INSERT ... ON CONFLICT DO UPDATE ... RETURNING: it creates, locks and
    updates the rows in `scope` order (team before user, the one order every
    writer uses, so two cannot deadlock) and reads them back, where a
    SELECT ... FOR UPDATE, an UPDATE and a SELECT took three trips.
    Precondition: inside a transaction; the locks are held until it ends.
    """
    returned = rows_upsert_add(
        BudgetCounter,
        [
            {"scope": scope, "month": month, "spent_usd": spent, "reserved_usd": reserved}
            for scope in sorted(scopes)
        ],
        unique=("scope", "month"),
        add=("spent_usd", "reserved_usd"),
        returning=("scope", "spent_usd", "reserved_usd"),
    )
    return {scope: (spent_usd, reserved_usd) for scope, spent_usd, reserved_usd in returned}


def _limits(*, user_id: int | None, team_id: int | None) -> dict[str, Decimal]:
    """The monthly limits that apply to a call: {"team:<id>" | "user:<id>": USD}.

    Plain SQL: it runs on every send, and building the ORM query cost twenty times
    what the database did (370 us against 16 us for this query, measured)."""
    scopes = {name: pk for name, pk in (("user_id", user_id), ("team_id", team_id)) if pk}
    rows = rows_values(Budget, ("team_id", "user_id", "monthly_limit_usd"), any_of=scopes)
    return {(f"team:{team}" if team else f"user:{user}"): limit for team, user, limit in rows}


def _calls_started_since(user_id: int, since: dt.datetime) -> int:
    """How many calls the person started since `since` (the rate limit), in plain
    SQL for the same reason as `_limits` (292 us through the ORM, 30 us here)."""
    return rows_count(BudgetReservation, where={"user_id": user_id, "created_at__gte": since})


# --- Holding, settling, releasing ------------------------------------------------------


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
    message_id=None,
    now: dt.datetime | None = None,
    kind: str = BudgetReservation.Kind.CHAT,
) -> BudgetHold:
    """Hold `amount` (a call's worst case) against this month's team and user budgets,
    for the reply `message_id` (whose status tells the sweeper the call still runs).

    `kind=BATCH`: the hold of a batch job, which is one start, not a message (no
    rate limit), is drawn down as its results are billed (`budget_draw_in_transaction`)
    and is closed by the job (`budget_hold_finish`), never by the sweeper.
    `user_id` may then be None (a job started by no one: the weekly digest's beat
    or the command line), and only the team's budget is held.

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
    if per_minute and kind == BudgetReservation.Kind.CHAT:
        if _calls_started_since(user_id, now - dt.timedelta(minutes=1)) >= per_minute:
            raise RateLimited(limit=per_minute)
    reservation = BudgetReservation(
        user_id=user_id,
        user_scope=user_scope,
        team_scope=team_scope,
        month=month,
        message_id=message_id,
        amount_usd=amount,
        kind=kind,
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
    message_id=None,
    now: dt.datetime | None = None,
) -> BudgetReservation:
    """`budget_hold_in_transaction` in a transaction of its own (a savepoint when nested)."""
    return budget_hold_in_transaction(
        user_id=user_id, team_id=team_id, amount=amount, message_id=message_id, now=now
    ).reservation


@dataclass(frozen=True)
class ClosedReservation:
    """What closing a reservation moves on the counters."""

    user_scope: str
    team_scope: str
    month: dt.date
    amount_usd: Decimal


def reservation_close(
    reservation_id, *, actual: Decimal, status: BudgetReservation.Status
) -> ClosedReservation | None:
    """Mark an open reservation closed; None if it was not open. The counters are
    the caller's to move, last (`reservation_counters_settle`).

    One UPDATE ... WHERE status = 'open' RETURNING, in plain SQL (it runs at the
    end of every reply): it locks the row before the counters (the same order
    everywhere), so a generator settling and the sweeper expiring the same
    reservation cannot both close it; the second finds it closed.
    """
    closed = rows_update_returning(
        BudgetReservation,
        {"status": status, "actual_usd": actual, "closed_at": timezone.now()},
        where={"id": reservation_id, "status": BudgetReservation.Status.OPEN},
        returning=("user_scope", "team_scope", "month", "amount_usd"),
    )
    if not closed:
        return None
    user_scope, team_scope, month, amount = closed[0]
    return ClosedReservation(
        user_scope=user_scope, team_scope=team_scope, month=month, amount_usd=amount
    )


def reservation_counters_settle(reservation: ClosedReservation, actual: Decimal) -> None:
    """Move a closed reservation's hold off its counters and add `actual` to their spend.

    Precondition: inside the transaction that closed it, as its last statement
    (the counter locks are shared by every call of the team)."""
    scopes = [s for s in (reservation.team_scope, reservation.user_scope) if s]
    _counters_add(scopes, reservation.month, reserved=-reservation.amount_usd, spent=actual)


def counters_spend_add(
    *, user_id: int, team_id: int | None, amount: Decimal, when: dt.datetime
) -> None:
    """Add a cost that was never held (no open reservation) to the month's spend.

    Precondition: inside a transaction, last, as `reservation_counters_settle`."""
    user_scope, team_scope = scope_keys(user_id=user_id, team_id=team_id)
    _counters_add([s for s in (team_scope, user_scope) if s], month_start(when), spent=amount)


def _close(
    reservation_id, *, actual: Decimal, status: BudgetReservation.Status
) -> ClosedReservation | None:
    reservation = reservation_close(reservation_id, actual=actual, status=status)
    if reservation is not None:
        reservation_counters_settle(reservation, actual)
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
            status=BudgetReservation.Status.OPEN,
            created_at__lt=cutoff,
            kind=BudgetReservation.Kind.CHAT,
        )
        # "streaming" is conversations.Message.Status.STREAMING, its one active
        # status, named here as the value stored: usage never imports conversations.
        .exclude(message__status="streaming")
        .values_list("id", flat=True)
    )
    swept = 0
    for reservation_id in list(stale):
        with transaction.atomic():
            if _close(reservation_id, actual=ZERO, status=BudgetReservation.Status.EXPIRED):
                swept += 1
    return swept


def budget_draw_in_transaction(
    *, reservation_id, user_id: int | None, team_id: int | None, amount: Decimal, when: dt.datetime
) -> None:
    """Bill `amount` of a batch job's real cost against its hold: the hold shrinks by
    as much (never below zero) and the month's spend grows by `amount`, on the same
    counters, so the budget never counts the job's money twice. With no open hold
    (released already), the spend is added to the scopes of `user_id`/`team_id`.

    Precondition: inside the transaction that writes the ledger rows it bills,
    last (it locks the team's counter)."""
    if not amount:
        return
    reservation = (
        BudgetReservation.objects.select_for_update()
        .filter(id=reservation_id, status=BudgetReservation.Status.OPEN)
        .first()
        if reservation_id
        else None
    )
    if reservation is None:
        user_scope, team_scope = scope_keys(user_id=user_id, team_id=team_id)
        _counters_add([s for s in (team_scope, user_scope) if s], month_start(when), spent=amount)
        return
    drawn = min(amount, reservation.amount_usd)
    reservation.amount_usd -= drawn
    reservation.actual_usd = (reservation.actual_usd or ZERO) + amount
    reservation.save(update_fields=["amount_usd", "actual_usd"])
    scopes = [s for s in (reservation.team_scope, reservation.user_scope) if s]
    _counters_add(scopes, reservation.month, reserved=-drawn, spent=amount)


@transaction.atomic
def budget_hold_finish(*, reservation_id) -> ClosedReservation | None:
    """Close a batch job's hold: what is left of it goes back to the budget, what
    was drawn stays spent (`budget_draw_in_transaction` added it). None if it was
    not open (a job finished twice finishes once)."""
    reservation = (
        BudgetReservation.objects.select_for_update()
        .filter(id=reservation_id, status=BudgetReservation.Status.OPEN)
        .first()
    )
    if reservation is None:
        return None
    closed = reservation_close(
        reservation_id,
        actual=reservation.actual_usd or ZERO,
        status=BudgetReservation.Status.SETTLED,
    )
    if closed is not None:
        reservation_counters_settle(closed, ZERO)
    return closed


@transaction.atomic
def budget_limit_set(
    *,
    team=None,
    user=None,
    limit_usd: Decimal | None,
    actor: User | None = None,
    ip: str | None = None,
) -> Budget | None:
    """Set (or with None, remove) the monthly budget of one team or one person.
    A change is in the audit log (by `actor`, when someone made it)."""
    if (team is None) == (user is None):
        raise ValueError("exactly one of team or user")
    lookup = {"team": team} if team is not None else {"user": user}
    before = Budget.objects.filter(**lookup).values_list("monthly_limit_usd", flat=True).first()
    if limit_usd is None:
        Budget.objects.filter(**lookup).delete()
        budget = None
    else:
        budget, _ = Budget.objects.update_or_create(
            **lookup, defaults={"monthly_limit_usd": limit_usd}
        )
    budget_change_audit(team=team, user=user, before=before, after=limit_usd, actor=actor, ip=ip)
    return budget


def budget_change_audit(
    *,
    team=None,
    user=None,
    before: Decimal | None,
    after: Decimal | None,
    actor: User | None = None,
    ip: str | None = None,
) -> None:
    """Put a budget's change in the audit log (nothing when it did not change): by
    `budget_limit_set`, and by the admin's budget forms."""
    if before == after:
        return
    audit_record(
        action=AuditEvent.Action.BUDGET_CHANGED,
        actor=actor,
        actor_name="" if actor else "system",
        team=team,
        target=f"team:{team.pk}" if team is not None else f"user:{user.pk}",
        ip=ip,
        details={
            "from": None if before is None else f"{before:.2f}",
            "to": None if after is None else f"{after:.2f}",
        },
    )


# --- Where a budget stands ---------------------------------------------------------------


@dataclass(frozen=True)
class ScopeBudget:
    """One team's or one person's month: spend, open holds, limit."""

    scope: str  # "team" or "user"
    spent_usd: Decimal
    reserved_usd: Decimal
    limit_usd: Decimal | None

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.limit_usd is None:
            return None
        return max(self.limit_usd - self.spent_usd, ZERO)

    @property
    def percent(self) -> int | None:
        if self.limit_usd is None:
            return None
        if self.limit_usd <= 0:
            return 100
        return int(self.spent_usd * 100 / self.limit_usd)


@dataclass(frozen=True)
class BudgetStatus:
    """What the chat tells a person about their budget: the tighter of team and own."""

    level: str  # "none" (no limit), "ok", "warning" (>= USAGE_WARN_PERCENT), "exceeded"
    scope: str
    spent_usd: Decimal
    limit_usd: Decimal | None
    remaining_usd: Decimal | None
    percent: int | None
    resets_at: dt.datetime
    user: ScopeBudget | None = None
    team: ScopeBudget | None = None

    def as_frame(self) -> dict:
        """The `budget.status` websocket frame (docs/websocket-protocol.md)."""
        message = ""
        if self.level in ("warning", "exceeded"):
            team = self.scope == "team"
            if self.level == "exceeded" and team:
                text = gettext(
                    "You have used your team's monthly budget of %(limit)s. "
                    "New messages are refused until %(reset)s."
                )
            elif self.level == "exceeded":
                text = gettext(
                    "You have used your monthly budget of %(limit)s. "
                    "New messages are refused until %(reset)s."
                )
            elif team:
                text = gettext(
                    "You have used %(percent)s%% of your team's monthly budget "
                    "(%(spent)s of %(limit)s). It resets on %(reset)s."
                )
            else:
                text = gettext(
                    "You have used %(percent)s%% of your monthly budget "
                    "(%(spent)s of %(limit)s). It resets on %(reset)s."
                )
            message = text % {
                "percent": self.percent,
                "spent": usd_display(self.spent_usd),
                "limit": usd_display(self.limit_usd),
                "reset": reset_label(self.resets_at),
            }
        return {
            "type": "budget.status",
            "level": self.level,
            "scope": self.scope,
            "spent_usd": f"{self.spent_usd:.6f}",
            "limit_usd": f"{self.limit_usd:.6f}" if self.limit_usd is not None else None,
            "remaining_usd": f"{self.remaining_usd:.6f}"
            if self.remaining_usd is not None
            else None,
            "percent": self.percent,
            "resets_at": self.resets_at.isoformat(),
            "message": message,
        }


def _scope_month(*, scope_key: str, limit: Decimal | None, month: dt.date) -> ScopeBudget:
    counter = BudgetCounter.objects.filter(scope=scope_key, month=month).first()
    return ScopeBudget(
        scope=scope_key.split(":")[0],
        spent_usd=counter.spent_usd if counter else ZERO,
        reserved_usd=counter.reserved_usd if counter else ZERO,
        limit_usd=limit,
    )


def budget_for_team(*, team: Team, now: dt.datetime | None = None) -> ScopeBudget:
    """This month's spend, limit and remaining for one team (the admin and owner pages)."""
    budget = Budget.objects.filter(team=team).first()
    return _scope_month(
        scope_key=f"team:{team.pk}",
        limit=budget.monthly_limit_usd if budget else None,
        month=month_start(now),
    )


def budget_for_user(*, user: User, now: dt.datetime | None = None) -> ScopeBudget:
    """This month's spend, personal limit and remaining for one person."""
    budget = Budget.objects.filter(user=user).first()
    return _scope_month(
        scope_key=f"user:{user.pk}",
        limit=budget.monthly_limit_usd if budget else None,
        month=month_start(now),
    )


def budget_status(
    *, user_id: int, team_id: int | None, now: dt.datetime | None = None
) -> BudgetStatus:
    """The tighter of the person's and their team's budget this month, for the chat."""
    month = month_start(now)
    user_scope, team_scope = scope_keys(user_id=user_id, team_id=team_id)
    limits = {
        (f"team:{b.team_id}" if b.team_id else f"user:{b.user_id}"): b.monthly_limit_usd
        for b in Budget.objects.filter(
            Q(user_id=user_id) | (Q(team_id=team_id) if team_id else Q(pk__in=[]))
        )
    }
    counters = {
        c.scope: c
        for c in BudgetCounter.objects.filter(
            scope__in=[s for s in (user_scope, team_scope) if s], month=month
        )
    }

    def make(key: str) -> ScopeBudget | None:
        if not key:
            return None
        counter = counters.get(key)
        return ScopeBudget(
            scope=key.split(":")[0],
            spent_usd=counter.spent_usd if counter else ZERO,
            reserved_usd=counter.reserved_usd if counter else ZERO,
            limit_usd=limits.get(key),
        )

    user_budget, team_budget = make(user_scope), make(team_scope)
    limited = [b for b in (team_budget, user_budget) if b and b.limit_usd is not None]
    resets_at = month_reset_at(month)
    if not limited:
        spent = user_budget.spent_usd if user_budget else ZERO
        return BudgetStatus(
            "none", "user", spent, None, None, None, resets_at, user_budget, team_budget
        )
    # The tighter: the one with the least left (ties: the team's, the wider limit).
    tight = min(limited, key=lambda b: (b.limit_usd - b.spent_usd, b.scope != "team"))
    percent = tight.percent or 0
    if tight.spent_usd >= tight.limit_usd:
        level = "exceeded"
    elif percent >= settings.USAGE_WARN_PERCENT:
        level = "warning"
    else:
        level = "ok"
    return BudgetStatus(
        level,
        tight.scope,
        tight.spent_usd,
        tight.limit_usd,
        tight.remaining_usd,
        percent,
        resets_at,
        user_budget,
        team_budget,
    )
