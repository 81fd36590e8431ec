"""The plain-SQL row writes store exactly what the ORM would, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.models import ApiCall, Message
from infra.rows import row_values, rows_insert, rows_update

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
    rows_insert(Message(conversation=conversation, position=0, role=Message.Role.USER))
    with pytest.raises(IntegrityError), transaction.atomic():
        rows_insert(Message(conversation=conversation, position=0, role=Message.Role.USER))


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


def test_row_values_reads_as_the_orm_does(alice, make_conversation):
    from django.db import connection

    conversation = make_conversation()
    call = ApiCall(user=alice, conversation_uuid=conversation.id, model="m", output_tokens=7)
    rows_insert(call)
    names = ["created_at", "conversation_uuid", "output_tokens"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT created_at, conversation_uuid, output_tokens FROM {ApiCall._meta.db_table} "
            "WHERE id = %s",
            [call.pk],
        )
        created_at, conversation_uuid, output_tokens = row_values(ApiCall, names, cursor.fetchone())
    assert created_at == ApiCall.objects.get(pk=call.pk).created_at
    assert created_at.tzinfo is not None
    assert conversation_uuid == conversation.id
    assert output_tokens == 7


def test_select_loads_the_named_fields_in_order(make_conversation):
    from infra.rows import rows_select

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
