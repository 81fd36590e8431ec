"""The ledger's move from conversations to usage keeps every row, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations.models import Message
from usage.models import ApiCall

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_backends]

# The last migrations before the move (and before "pending" was dropped).
BEFORE = [("conversations", "0002_apicall_batch_regional_savings"), ("usage", "0001_initial")]


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # a fresh graph knows what is applied now


@pytest.fixture
def at_the_old_schema():
    """The database as it was before the move; migrated to the newest again afterwards,
    whatever the test did, so the tests after it find today's schema."""
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    executor = _migrate(BEFORE)
    try:
        yield executor.loader.project_state(BEFORE).apps
    finally:
        _migrate(latest)


@pytest.fixture
def apicall_type():
    """The ledger's content type (its permissions hang on it), as stored today."""
    return ContentType.objects.get(app_label="usage", model="apicall").pk


def test_a_ledger_row_written_before_the_move_is_there_after(apicall_type, at_the_old_schema):
    """A call stored in conversations_apicall is read back whole as usage.ApiCall, its
    links to the conversation and message intact; its permissions' content type is
    the same row; a reply stored as "pending" becomes interrupted."""
    old = at_the_old_schema
    types = old.get_model("contenttypes", "ContentType").objects
    assert types.get(pk=apicall_type).app_label == "conversations"
    user = old.get_model("accounts", "User").objects.create(username="ledger-keeper")
    conversation = old.get_model("conversations", "Conversation").objects.create(
        id=uuid.uuid4(), owner_id=user.pk, model="claude-sonnet-5-5", title="Old one"
    )
    OldMessage = old.get_model("conversations", "Message")
    reply = OldMessage.objects.create(
        id=uuid.uuid4(),
        conversation_id=conversation.pk,
        position=1,
        role="assistant",
        status="pending",
    )
    call = old.get_model("conversations", "ApiCall").objects.create(
        user_id=user.pk,
        conversation_id=conversation.pk,
        conversation_uuid=conversation.pk,
        message_id=reply.pk,
        model="claude-sonnet-5-5",
        input_tokens=1200,
        output_tokens=350,
        cache_read_tokens=40_000,
        cost_usd=Decimal("0.123456"),
        cache_savings_usd=Decimal("0.108000"),
        price_key="claude-sonnet-5-5@2026-10-01",
        request_id="req_before_the_move",
    )

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    moved = ApiCall.objects.get(pk=call.pk)
    assert ApiCall._meta.db_table == "usage_apicall"
    assert (moved.input_tokens, moved.output_tokens, moved.cache_read_tokens) == (1200, 350, 40_000)
    assert (moved.cost_usd, moved.cache_savings_usd) == (Decimal("0.123456"), Decimal("0.108000"))
    assert (moved.request_id, moved.created_at) == ("req_before_the_move", call.created_at)
    assert moved.conversation.title == "Old one"
    assert moved.message_id == reply.pk and moved.user_id == user.pk
    # New rows keep counting from where the old ones stopped.
    assert ApiCall.objects.create(model="claude-sonnet-5-5").pk > call.pk
    assert ContentType.objects.get(app_label="usage", model="apicall").pk == apicall_type
    assert not ContentType.objects.filter(app_label="conversations", model="apicall").exists()
    stored = Message.objects.get(pk=reply.pk)
    assert (stored.status, stored.error_code) == ("interrupted", "interrupted")
