"""The plain-SQL rows read and store exactly what the ORM would, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.models import Message
from infra.rows import (
    rows_count,
    rows_insert,
    rows_select,
    rows_update,
    rows_update_returning,
    rows_upsert_add,
    rows_values,
)
from usage.models import ApiCall, BudgetCounter, BudgetReservation, DailyUsage

pytestmark = [pytest.mark.django_db, pytest.mark.real_backends]


def test_insert_stores_what_the_orm_reads_back(alice, make_conversation):
    conversation = make_conversation()
    before = timezone.now()
    user_message = Message(
        conversation=conversation,
        position=0,
        role=Message.Role.USER,
        content=[{"type": "text", "text": 'Grüße, "quoted" & <b>'}],
        text="Grüße",
        client_id="c-1",
    )
    reply = Message(
        conversation=conversation,
        position=1,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        heartbeat_at=before,
    )
    rows_insert(user_message, reply)

    stored = {m.id: m for m in Message.objects.filter(conversation=conversation)}
    assert set(stored) == {user_message.id, reply.id}
    first = stored[user_message.id]
    assert first.content == [{"type": "text", "text": 'Grüße, "quoted" & <b>'}]
    assert (first.role, first.status, first.client_id) == ("user", "complete", "c-1")
    # auto_now_add / auto_now were set on the instances and stored as given.
    assert user_message.created_at >= before
    assert first.created_at == user_message.created_at
    assert first.updated_at == user_message.updated_at
    assert stored[reply.id].status == "streaming"
    assert stored[reply.id].heartbeat_at == before
    # Saved: a later save() updates the row instead of inserting another.
    reply.text = "Hello"
    reply.save(update_fields=["text"])
    assert Message.objects.get(id=reply.id).text == "Hello"


def test_insert_reads_back_an_auto_increment_key(alice, make_conversation):
    conversation = make_conversation()
    calls = [
        ApiCall(
            user=alice,
            conversation=conversation,
            conversation_uuid=conversation.id,
            model="claude-sonnet-5-5",
            input_tokens=n,
            cost_usd=Decimal("0.123456"),
        )
        for n in (10, 20)
    ]
    rows_insert(*calls)

    assert calls[0].pk is not None and calls[1].pk == calls[0].pk + 1
    stored = ApiCall.objects.get(pk=calls[1].pk)
    assert stored.input_tokens == 20
    assert stored.cost_usd == Decimal("0.123456")
    assert stored.conversation_uuid == conversation.id


def test_insert_keeps_the_database_constraints(make_conversation):
    conversation = make_conversation()
    rows_insert(
        Message(conversation=conversation, position=0, role=Message.Role.USER, client_id="c1")
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        rows_insert(
            Message(conversation=conversation, position=1, role=Message.Role.USER, client_id="c1")
        )


def test_update_matches_equality_null_and_any_of(make_conversation):
    conversation = make_conversation()
    streaming, stopped_one, complete = (
        Message(conversation=conversation, position=i, role=Message.Role.ASSISTANT, status=s)
        for i, s in enumerate(["streaming", "streaming", "complete"])
    )
    stopped_one.stop_requested_at = timezone.now()
    rows_insert(streaming, stopped_one, complete)
    later = timezone.now() + dt.timedelta(seconds=5)

    # None matches NULL: the reply with a stop request is left alone.
    matched = rows_update(
        Message,
        {"text": "so far", "seq": 3, "heartbeat_at": later},
        where={
            "conversation_id": conversation.id,
            "status": "streaming",
            "stop_requested_at": None,
        },
    )
    assert matched == 1
    row = Message.objects.get(id=streaming.id)
    assert (row.text, row.seq, row.heartbeat_at) == ("so far", 3, later)
    assert Message.objects.get(id=stopped_one.id).text == ""

    # A collection matches any of its values; JSON is stored as JSON.
    matched = rows_update(
        Message,
        {"content": [{"type": "text", "text": "done"}], "status": "complete"},
        where={
            "id": [streaming.id, stopped_one.id, uuid.uuid4()],
            "status": Message.ACTIVE_STATUSES,
        },
    )
    assert matched == 2
    assert Message.objects.get(id=stopped_one.id).content == [{"type": "text", "text": "done"}]
    assert Message.objects.filter(conversation=conversation, status="complete").count() == 3


def test_select_loads_the_named_fields_in_order(make_conversation):
    conversation = make_conversation()
    rows_insert(
        *(
            Message(
                conversation=conversation,
                position=position,
                role=Message.Role.USER,
                content=[{"type": "text", "text": f"m{position}"}],
                text=f"m{position}",
            )
            for position in (2, 0, 1)
        )
    )
    # Names in any order; the model's own order is what `from_db` needs.
    found = rows_select(
        Message,
        ["text", "content", "id", "created_at"],
        where={"conversation_id": conversation.id},
        order_by="-position",
    )
    assert [m.text for m in found] == ["m2", "m1", "m0"]
    assert found[0].content == [{"type": "text", "text": "m2"}]
    assert found[0].created_at.tzinfo is not None
    assert found[0].get_deferred_fields() >= {"position", "status"}
    assert found[0].position == 2  # loaded on access, as with .only()
    assert (
        rows_select(Message, ["id"], where={"conversation_id": conversation.id, "text": "x"}) == []
    )


def _calls(alice, conversation) -> list[ApiCall]:
    """Five ledger rows a second apart; the first reported no prompt."""
    start = timezone.now() - dt.timedelta(minutes=5)
    calls = [
        ApiCall(
            user=alice,
            conversation_uuid=conversation.id,
            model="claude-sonnet-5-5",
            purpose=purpose,
            input_tokens=tokens,
            output_tokens=7 * n,
            cost_usd=Decimal("0.000001") * n,
        )
        for n, (purpose, tokens) in enumerate(
            [("chat", 0), ("chat", 10), ("count_tokens", 20), ("chat", 30), ("chat", 40)]
        )
    ]
    rows_insert(*calls)
    for n, call in enumerate(calls):
        call.created_at = start + dt.timedelta(seconds=n)
        ApiCall.objects.filter(pk=call.pk).update(created_at=call.created_at)
    return calls


def test_values_read_what_values_list_reads(alice, make_conversation):
    """Conditions, an any-of group, comparisons, order and limit select the rows
    the ORM selects, and each value comes back as the ORM converts it (aware
    datetimes, UUIDs, decimals on SQLite too)."""
    conversation = make_conversation()
    calls = _calls(alice, conversation)
    names = ("created_at", "conversation_uuid", "cost_usd", "output_tokens")
    orm = ApiCall.objects.filter(conversation_uuid=conversation.id)

    found = rows_values(
        ApiCall,
        names,
        where={"conversation_uuid": conversation.id, "purpose": "chat"},
        any_of={"input_tokens__gt": 0, "cache_read_tokens__gt": 0},
        order_by="-created_at",
        limit=2,
    )
    expected = orm.filter(purpose="chat", input_tokens__gt=0).order_by("-created_at")
    assert found == [list(row) for row in expected.values_list(*names)[:2]]
    assert [row[0] for row in found] == [calls[4].created_at, calls[3].created_at]
    assert found[0][0].tzinfo is not None
    assert found[0][2] == Decimal("0.000004")

    since = calls[2].created_at
    assert rows_values(
        ApiCall, ["id"], where={"conversation_uuid": conversation.id, "created_at__gte": since}
    ) == [[pk] for pk in orm.filter(created_at__gte=since).order_by().values_list("id", flat=True)]
    # An any-of group with no conditions in it matches nothing.
    assert rows_values(ApiCall, ["id"], any_of={}) == []


def test_count_counts_what_count_counts(alice, make_conversation):
    conversation = make_conversation()
    calls = _calls(alice, conversation)
    since = calls[1].created_at
    for where in (
        {"user_id": alice.pk, "created_at__gte": since},
        {"user_id": alice.pk, "created_at__gt": since},
        {"conversation_uuid": conversation.id, "output_tokens__lte": 14, "purpose": "chat"},
        {"user_id": alice.pk, "created_at__lt": since},
    ):
        assert rows_count(ApiCall, where=where) == ApiCall.objects.filter(**where).count()
    assert rows_count(ApiCall, where={"user_id": alice.pk, "created_at__gte": since}) == 4
    assert rows_count(ApiCall, any_of={"purpose": "count_tokens", "input_tokens": 0}) == 2


def test_update_returning_closes_once_and_says_what_it_closed(alice):
    """A guarded update returns the rows it changed, as the ORM reads them; run
    again, its guard matches nothing and it returns nothing."""
    month = dt.date(2026, 11, 1)
    reservation = BudgetReservation(
        user=alice, user_scope="user:1", team_scope="team:2", month=month, amount_usd="0.5"
    )
    rows_insert(reservation)
    closed_at = timezone.now()

    def close():
        return rows_update_returning(
            BudgetReservation,
            {"status": "settled", "actual_usd": Decimal("0.123456"), "closed_at": closed_at},
            where={"id": reservation.id, "status": "open"},
            returning=("user_scope", "team_scope", "month", "amount_usd"),
        )

    assert close() == [["user:1", "team:2", month, Decimal("0.500000")]]
    stored = BudgetReservation.objects.get(id=reservation.id)
    assert (stored.status, stored.actual_usd, stored.closed_at) == (
        "settled",
        Decimal("0.123456"),
        closed_at,
    )
    assert close() == []


def test_upsert_add_inserts_then_adds_as_the_orm_reads_it(alice):
    """The first upsert creates the rows, the next adds to them (negative amounts
    too), and what it returns is what the ORM then reads."""
    month = dt.date(2026, 11, 1)
    scopes = ["team:1", "user:2"]

    def add(reserved: str, spent: str):
        returned = rows_upsert_add(
            BudgetCounter,
            [
                {
                    "scope": s,
                    "month": month,
                    "spent_usd": Decimal(spent),
                    "reserved_usd": Decimal(reserved),
                }
                for s in scopes
            ],
            unique=("scope", "month"),
            add=("spent_usd", "reserved_usd"),
            returning=("scope", "spent_usd", "reserved_usd"),
        )
        return {scope: (s, r) for scope, s, r in returned}

    assert add("0.5", "0") == {s: (Decimal("0.000000"), Decimal("0.500000")) for s in scopes}
    after = add("-0.5", "0.123456")
    orm = {
        c.scope: (c.spent_usd, c.reserved_usd) for c in BudgetCounter.objects.filter(month=month)
    }
    assert after == orm == {s: (Decimal("0.123456"), Decimal("0.000000")) for s in scopes}
    # Another month is another row: the unique key is (scope, month).
    add("1", "0")
    assert BudgetCounter.objects.count() == 2
    rows_upsert_add(
        BudgetCounter,
        [{"scope": "team:1", "month": dt.date(2026, 12, 1), "spent_usd": 1, "reserved_usd": 0}],
        unique=("scope", "month"),
        add=("spent_usd", "reserved_usd"),
    )
    assert BudgetCounter.objects.count() == 3


def test_upsert_add_without_returning_sums_every_column(alice):
    day = dt.date(2026, 11, 3)
    sums = ("calls", "input_tokens", "cost_usd")
    for n in range(3):
        rows_upsert_add(
            DailyUsage,
            [
                {
                    "day": day,
                    "user_id": alice.pk,
                    "team_id": 0,
                    "model": "m",
                    "calls": 1,
                    "input_tokens": 100 * n,
                    "cost_usd": Decimal("0.000001"),
                }
            ],
            # The rollup's key (the fields left out take their defaults).
            unique=("day", "user_id", "team_id", "model", "provider", "region", "endpoint"),
            add=sums,
        )
    row = DailyUsage.objects.get(day=day, user_id=alice.pk)
    assert (row.calls, row.input_tokens, row.cost_usd) == (3, 300, Decimal("0.000003"))
    assert row.output_tokens == 0  # left out: its default


def test_upsert_add_refuses_what_the_orm_refuses():
    """A value the ORM would not store (a NaN amount) is refused the same way."""
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        rows_upsert_add(
            BudgetCounter,
            [{"scope": "team:1", "month": dt.date(2026, 11, 1), "spent_usd": Decimal("NaN")}],
            unique=("scope", "month"),
            add=("spent_usd",),
        )
    assert not BudgetCounter.objects.exists()


def test_first_values_read_what_the_orm_reads_in_one_statement(
    alice, make_conversation, django_assert_num_queries
):
    from accounts.models import User
    from conversations.models import Conversation
    from infra.rows import rows_first_values

    conversation = make_conversation()
    soon = timezone.now() + dt.timedelta(days=1)
    with django_assert_num_queries(1):
        owner, active, joined, missing, later = rows_first_values(
            (Conversation, "owner", {"id": conversation.id}),
            (User, "is_active", {"id": alice.pk}),
            (User, "date_joined", {"id": alice.pk}),
            (Conversation, "owner", {"id": uuid.uuid4()}),
            (User, "username", {"id": alice.pk, "date_joined__gt": soon}),
        )
    assert owner == Conversation.objects.values_list("owner_id", flat=True).get(pk=conversation.pk)
    assert active is True and joined == User.objects.get(pk=alice.pk).date_joined
    assert missing is None and later is None
