"""Budgets under concurrency, on separate database connections (threads), and the
generator settling its hold when a stream fails. Runs on PostgreSQL in the
`real_backends` pass, where the row locks are the real thing.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections

from conversations import services
from conversations.models import Message
from conversations.streaming.runner import reply_start
from usage import budgets, estimates
from usage.models import ApiCall, BudgetCounter, BudgetReservation
from usage.periods import month_start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]

SENDERS = 50


def test_fifty_concurrent_sends_never_overdraw_a_nearly_spent_budget(
    alice, acme, make_conversation, set_budget, settings
):
    """50 sends at once against a budget with room for three worst cases: exactly three
    pass, spent + held never passes the limit, and after settling and releasing no
    reservation is left open and the counters add up."""
    settings.USAGE_RATE_LIMIT_PER_MINUTE = 0  # this test is about money, not pace
    text = "Summarise the quarterly report, please."
    conversations = [make_conversation() for _ in range(SENDERS)]
    first = conversations[0]
    amount = estimates.call_worst_case_usd(
        model=first.model,
        conversation_id=first.id,
        system_prompt=first.system_prompt,
        messages=[],
        new_text=text,
        # No thinking: the request's max_tokens is the setting itself.
        max_output_tokens=settings.CLAUDE_MAX_TOKENS,
    )
    limit = Decimal("10.00")
    already = limit - amount * 3 - Decimal("0.000001")  # room for 3, not 4
    set_budget(team=acme, usd=str(limit))
    month = month_start()
    BudgetCounter.objects.create(scope=f"team:{acme.pk}", month=month, spent_usd=already)

    barrier = threading.Barrier(SENDERS + 1)
    outcomes: list[tuple[str, float]] = []
    highest = [Decimal(0)]
    done = threading.Event()

    def send(conversation) -> None:
        try:
            barrier.wait()
            started = time.perf_counter()
            try:
                services.message_send(conversation=conversation, author=alice, text=text)
                result = "sent"
            except services.ChatInputError as exc:
                result = exc.code
            outcomes.append((result, time.perf_counter() - started))
        finally:
            connection.close()

    def watch() -> None:
        # Samples committed state while the senders run: it must never pass the limit.
        try:
            barrier.wait()
            while not done.is_set():
                row = BudgetCounter.objects.get(scope=f"team:{acme.pk}", month=month)
                highest[0] = max(highest[0], row.spent_usd + row.reserved_usd)
                # A pause that lets go of the GIL: a watcher spinning on it slowed each
                # sender inside its transaction so much (a GIL wait at every database
                # call) that on SQLite a starved sender hit the 20 s lock timeout.
                time.sleep(0.001)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(c,)) for c in conversations]
    watcher = threading.Thread(target=watch)
    for thread in [*threads, watcher]:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    watcher.join(timeout=10)

    results = [r for r, _ in outcomes]
    assert len(results) == SENDERS
    assert results.count("sent") == 3
    assert results.count("budget_exceeded") == SENDERS - 3
    assert already <= highest[0] <= limit  # the watcher saw the counter, never past the limit
    row = BudgetCounter.objects.get(scope=f"team:{acme.pk}", month=month)
    assert row.spent_usd + row.reserved_usd <= limit
    assert row.reserved_usd == amount * 3
    # Refused sends stored nothing.
    assert Message.objects.count() == 3 * 2

    # Settle two at less than their hold (a real answer is shorter), release one.
    held = list(BudgetReservation.objects.filter(status="open"))
    assert len(held) == 3
    budgets.budget_settle(reservation_id=held[0].id, actual_usd=Decimal("0.010000"))
    budgets.budget_settle(reservation_id=held[1].id, actual_usd=amount)
    budgets.budget_release(reservation_id=held[2].id)
    row.refresh_from_db()
    assert not BudgetReservation.objects.filter(status="open").exists()
    assert row.reserved_usd == 0
    assert row.spent_usd == already + Decimal("0.010000") + amount
    assert row.spent_usd <= limit

    times = sorted(t for _, t in outcomes)
    print(
        f"\n[concurrency] {connection.vendor}: {results.count('sent')}/{SENDERS} sends passed; "
        f"worst case ${amount}; max spent+held ${highest[0]} of ${limit} "
        f"(overshoot ${max(highest[0] - limit, Decimal(0))}); "
        f"send (incl. reservation) median {statistics.median(times) * 1000:.1f} ms, "
        f"max {times[-1] * 1000:.1f} ms under 50-way contention"
    )


def test_reservation_time_uncontended(alice, acme, set_budget, settings):
    """One reservation plus its settle takes a few milliseconds: nothing the first
    token would notice (printed for the report)."""
    settings.USAGE_RATE_LIMIT_PER_MINUTE = 0
    set_budget(team=acme, usd="1000")
    timings = []
    for _ in range(30):
        started = time.perf_counter()
        reservation = budgets.budget_reserve(
            user_id=alice.pk, team_id=acme.pk, amount=Decimal("0.08")
        )
        timings.append(time.perf_counter() - started)
        budgets.budget_release(reservation_id=reservation.id)
    median = statistics.median(timings) * 1000
    print(
        f"\n[reserve] {connection.vendor}: median {median:.2f} ms, max {max(timings) * 1000:.2f} ms"
    )
    assert median < 50
    assert BudgetCounter.objects.get(scope=f"team:{acme.pk}").reserved_usd == 0


@pytest.fixture
async def close_db_after():
    """The reply's database work ran in asgiref's worker thread: close that
    connection, or PostgreSQL cannot drop the test database at the end."""
    yield
    await sync_to_async(connections.close_all)()


@sync_to_async
def _send(conversation, author, text):
    return services.message_send(conversation=conversation, author=author, text=text)


async def test_a_stream_failing_midway_settles_its_hold_to_the_billed_cost(
    alice, acme, make_conversation, close_db_after
):
    """Overloaded after 5 tokens: the reply is an error, the ledger row bills what was
    used, and the reservation is settled to exactly that; nothing is left held."""
    conversation = await sync_to_async(make_conversation)()
    sent = await _send(
        conversation, alice, "[[fake tokens=40 error=overloaded_error error_at=5]] hi"
    )
    await asyncio.wait_for(reply_start(sent.job), timeout=20)

    @sync_to_async
    def check():
        reply = Message.objects.get(id=sent.assistant_message.id)
        call = ApiCall.objects.get(message=reply)
        reservation = BudgetReservation.objects.get(message=reply)
        row = BudgetCounter.objects.get(scope=f"team:{acme.pk}")
        return reply.status, call.cost_usd, reservation, row

    status, billed, reservation, row = await check()
    assert status == Message.Status.ERROR
    assert billed > 0
    assert reservation.status == BudgetReservation.Status.SETTLED
    assert reservation.actual_usd == billed
    assert (row.reserved_usd, row.spent_usd) == (0, billed)


async def test_a_call_failing_before_the_stream_settles_to_zero(
    alice, acme, make_conversation, close_db_after
):
    """Refused up front (an error before any token): settled at $0, the hold released."""
    conversation = await sync_to_async(make_conversation)()
    sent = await _send(conversation, alice, "[[fake error=overloaded_error]] hi")
    await asyncio.wait_for(reply_start(sent.job), timeout=20)
    reservation = await sync_to_async(BudgetReservation.objects.get)(
        message_id=sent.assistant_message.id
    )
    row = await sync_to_async(BudgetCounter.objects.get)(scope=f"user:{alice.pk}")
    assert (reservation.status, reservation.actual_usd) == ("settled", Decimal(0))
    assert (row.reserved_usd, row.spent_usd) == (0, 0)
