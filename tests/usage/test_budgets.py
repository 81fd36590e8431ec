"""Budgets: reserve before a call, settle after it, refuse past the limit, sweep the dead."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from conversations import services
from conversations.models import Message
from usage import budgets, estimates
from usage.budgets import budget_status
from usage.ledger import ledger_record
from usage.models import ApiCall, BudgetCounter, BudgetReservation, DailyUsage
from usage.periods import month_reset_at, month_start

pytestmark = [pytest.mark.django_db, pytest.mark.real_backends]


def counter(scope: str) -> BudgetCounter:
    return BudgetCounter.objects.get(scope=scope, month=month_start())


def spend(scope: str, usd: str) -> None:
    """Record `usd` of settled spend this month, as a finished call would."""
    BudgetCounter.objects.update_or_create(
        scope=scope, month=month_start(), defaults={"spent_usd": Decimal(usd)}
    )


def test_a_send_holds_its_worst_case_on_the_user_and_the_team(alice, acme, make_conversation):
    """Sending stores a reservation for the reply, held on both counters, priced at
    max_tokens of output and a conservative prompt (never $0)."""
    conversation = make_conversation()
    sent = services.message_send(conversation=conversation, author=alice, text="x" * 300)
    reservation = BudgetReservation.objects.get(message=sent.assistant_message)
    # Sonnet 5.5, 8,192 output tokens at $10/M = $0.08192; prompt (300 chars / 3 + overhead) as cache writes
    assert reservation.amount_usd > Decimal("0.081920")
    assert reservation.amount_usd < Decimal("0.083")
    assert reservation.status == BudgetReservation.Status.OPEN
    assert counter(f"user:{alice.pk}").reserved_usd == reservation.amount_usd
    assert counter(f"team:{acme.pk}").reserved_usd == reservation.amount_usd


def test_the_next_estimate_counts_the_last_calls_prompt_and_answer(alice, make_conversation):
    """After a call that read 150,000 tokens the next worst case includes them."""
    conversation = make_conversation(model="claude-haiku-5-5")
    ApiCall.objects.create(
        user=alice,
        conversation=conversation,
        conversation_uuid=conversation.id,
        model="claude-haiku-5-5",
        input_tokens=10,
        cache_read_tokens=150_000,
        output_tokens=500,
    )
    stored = dict(conversation_id=conversation.id, system_prompt="", messages=[], new_text="hi")
    tokens = estimates.call_prompt_tokens_estimate(**stored)
    assert tokens >= 150_510
    # Past 100K the whole worst case is at the Haiku 5.5 tier: 8,192 * $2.50/M alone is $0.02048.
    worst = estimates.call_worst_case_usd(
        model="claude-haiku-5-5", max_output_tokens=8192, **stored
    )
    assert worst > Decimal("0.02048") + Decimal(150_510 * 0.625 / 1e6)


def test_over_budget_send_is_refused_naming_the_limit_and_reset(
    alice, acme, make_conversation, set_budget
):
    """With the team's budget spent, a send is refused with the team limit and the
    reset date, and nothing is stored."""
    set_budget(team=acme, usd="5")
    spend(f"team:{acme.pk}", "4.99")
    conversation = make_conversation()
    with pytest.raises(services.ChatInputError) as info:
        services.message_send(conversation=conversation, author=alice, text="hello")
    assert info.value.code == "budget_exceeded"
    resets = month_reset_at(month_start())
    assert "team's monthly budget of $5.00" in info.value.message
    assert f"resets on {resets.day} {resets:%B %Y}, 00:00 UTC" in info.value.message
    assert conversation.messages.count() == 0
    assert not BudgetReservation.objects.exists()


def test_personal_budget_tighter_than_the_team_is_the_one_named(
    alice, acme, make_conversation, set_budget
):
    """A person's effective limit is the tighter of theirs and their team's."""
    set_budget(team=acme, usd="100")
    set_budget(user=alice, usd="0.05")
    with pytest.raises(services.ChatInputError) as info:
        services.message_send(conversation=make_conversation(), author=alice, text="hello")
    assert "personal monthly budget of $0.05" in info.value.message


def test_warning_from_80_percent_and_exceeded_at_100(alice, acme, set_budget):
    """The chat's budget status turns to a warning at 80% and to exceeded at 100%."""
    set_budget(user=alice, usd="10")
    spend(f"user:{alice.pk}", "7.99")
    assert budget_status(user_id=alice.pk, team_id=acme.pk).level == "ok"
    spend(f"user:{alice.pk}", "8.00")
    status = budget_status(user_id=alice.pk, team_id=acme.pk)
    assert (status.level, status.percent, status.scope) == ("warning", 80, "user")
    assert "80% of your monthly budget ($8.00 of $10.00)" in status.as_frame()["message"]
    spend(f"user:{alice.pk}", "10.00")
    assert budget_status(user_id=alice.pk, team_id=acme.pk).level == "exceeded"


def test_rate_limit_refuses_the_extra_message_of_the_minute(alice, make_conversation, settings):
    """Past the per-minute limit a send is refused with a clear message, nothing stored."""
    settings.USAGE_RATE_LIMIT_PER_MINUTE = 2
    for i in range(2):
        conversation = make_conversation()
        services.message_send(conversation=conversation, author=alice, text=f"m{i}")
    third = make_conversation()
    with pytest.raises(services.ChatInputError) as info:
        services.message_send(conversation=third, author=alice, text="m3")
    assert info.value.code == "rate_limited"
    assert "2 a minute" in info.value.message
    assert third.messages.count() == 0


def test_settle_turns_the_hold_into_the_real_cost(alice, acme):
    """Settling moves the reservation out of `reserved` and the actual cost into `spent`."""
    reservation = budgets.budget_reserve(
        user_id=alice.pk, team_id=acme.pk, amount=Decimal("0.500000")
    )
    budgets.budget_settle(reservation_id=reservation.id, actual_usd=Decimal("0.123456"))
    for scope in (f"user:{alice.pk}", f"team:{acme.pk}"):
        row = counter(scope)
        assert (row.reserved_usd, row.spent_usd) == (Decimal(0), Decimal("0.123456"))
    # Closed once: a second settle (say, the sweeper racing the generator) changes nothing.
    assert budgets.budget_settle(reservation_id=reservation.id, actual_usd=Decimal(1)) is None
    assert counter(f"user:{alice.pk}").spent_usd == Decimal("0.123456")


def test_release_gives_the_hold_back(alice, acme):
    reservation = budgets.budget_reserve(user_id=alice.pk, team_id=acme.pk, amount=Decimal("0.5"))
    budgets.budget_release(reservation_id=reservation.id)
    reservation.refresh_from_db()
    assert reservation.status == BudgetReservation.Status.RELEASED
    assert counter(f"team:{acme.pk}").reserved_usd == 0 == counter(f"team:{acme.pk}").spent_usd


def test_retry_holds_a_new_reservation(alice, make_conversation):
    """A retry is a new call: it takes its own hold."""
    conversation = make_conversation()
    sent = services.message_send(conversation=conversation, author=alice, text="hi")
    budgets.budget_release(
        reservation_id=BudgetReservation.objects.get(message=sent.assistant_message).id
    )
    Message.objects.filter(id=sent.assistant_message.id).update(status="error")
    _, reply, _job = services.message_retry(
        conversation=conversation, message_id=sent.assistant_message.id
    )
    assert BudgetReservation.objects.get(message=reply).status == BudgetReservation.Status.OPEN


def test_sweeper_releases_holds_of_dead_processes_only(alice, acme, make_conversation):
    """A reservation whose process died (reply reaped as interrupted) is expired by the
    sweeper; one whose reply is still streaming is left alone however old."""
    dead = services.message_send(conversation=make_conversation(), author=alice, text="a")
    live = services.message_send(conversation=make_conversation(), author=alice, text="b")
    old = timezone.now() - dt.timedelta(minutes=30)
    BudgetReservation.objects.update(created_at=old)
    Message.objects.filter(id=dead.assistant_message.id).update(
        status="streaming", heartbeat_at=old
    )
    Message.objects.filter(id=live.assistant_message.id).update(
        status="streaming", heartbeat_at=timezone.now()
    )
    assert services.generation_reap() == 1  # the dead one is now interrupted
    assert budgets.budget_sweep() == 1
    statuses = dict(BudgetReservation.objects.values_list("message_id", "status"))
    assert statuses[dead.assistant_message.id] == BudgetReservation.Status.EXPIRED
    assert statuses[live.assistant_message.id] == BudgetReservation.Status.OPEN
    live_amount = BudgetReservation.objects.get(message=live.assistant_message).amount_usd
    assert counter(f"user:{alice.pk}").reserved_usd == live_amount


def test_a_call_settles_its_hold_and_enters_the_rollup(alice, acme, make_conversation):
    """`ledger_record` (called from `_finalise`) settles to the ledger cost and adds the
    call to the day's rollup row."""
    conversation = make_conversation()
    sent = services.message_send(conversation=conversation, author=alice, text="hi")
    reservation = BudgetReservation.objects.get(message=sent.assistant_message)
    call = ApiCall.objects.create(
        user=alice,
        team=acme,
        conversation=conversation,
        conversation_uuid=conversation.id,
        model="claude-sonnet-5-5",
        input_tokens=100,
        output_tokens=50,
        cache_read_tokens=1000,
        cost_usd=Decimal("0.000800"),
        cache_savings_usd=Decimal("0.001900"),
    )
    ledger_record(call=call, reservation_id=reservation.id)
    reservation.refresh_from_db()
    assert (reservation.status, reservation.actual_usd) == ("settled", Decimal("0.000800"))
    assert counter(f"team:{acme.pk}").spent_usd == Decimal("0.000800")
    day = DailyUsage.objects.get(user_id=alice.pk)
    assert (day.calls, day.input_tokens, day.cache_read_tokens) == (1, 100, 1000)
    assert (day.cost_usd, day.cache_savings_usd) == (Decimal("0.000800"), Decimal("0.001900"))
