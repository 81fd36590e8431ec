"""The branches migration: every existing conversation becomes one branch."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = ("conversations", "0005_attachment")
AFTER = ("conversations", "0006_message_branches")


@pytest.mark.django_db(transaction=True)
def test_stored_messages_follow_each_other_and_the_last_is_on_show():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    old = executor.loader.project_state([BEFORE]).apps
    user = old.get_model("accounts", "User").objects.create(username="old-timer")
    Conversation = old.get_model("conversations", "Conversation")
    Message = old.get_model("conversations", "Message")
    chat = Conversation.objects.create(owner=user, model="claude-sonnet-5-5")
    empty = Conversation.objects.create(owner=user, model="claude-sonnet-5-5")
    for position in range(4):
        Message.objects.create(
            conversation=chat,
            position=position,
            role="user" if position % 2 == 0 else "assistant",
            text=f"turn {position}",
        )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([AFTER])
    new = executor.loader.project_state([AFTER]).apps
    Message = new.get_model("conversations", "Message")
    Conversation = new.get_model("conversations", "Conversation")
    rows = {m.position: m for m in Message.objects.filter(conversation_id=chat.id)}
    assert rows[0].parent_id is None
    assert [rows[p].parent_id for p in (1, 2, 3)] == [rows[0].id, rows[1].id, rows[2].id]
    assert Conversation.objects.get(id=chat.id).active_leaf_id == rows[3].id
    assert Conversation.objects.get(id=empty.id).active_leaf_id is None

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
