"""The full-text index's schema: what migration 0008 creates, and what keeps it
on SQLite when a later migration rebuilds the message table.

PostgreSQL: a GIN index on the expression `to_tsvector('english', text)` of
finished messages only (`WHERE status <> 'streaming'`): a streaming answer's
checkpoints never touch it, and the answer is indexed once, when it ends. An
expression index survives any later ALTER TABLE.

SQLite: an FTS5 table holding the text of finished messages under the message
row's own rowid, kept in step by triggers on the message table (so every
writer is covered: the ORM, `infra.rows`' plain SQL, cascades, the admin).
Django rebuilds a SQLite table for many schema changes (copy, drop, rename):
that drops its triggers and renumbers its rowids. `fts_ensure` (run after
every `migrate`, `conversations.apps`) finds the triggers gone, puts them
back and refills the table.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

PG_INDEX = "message_text_search"
FTS_TABLE = "conversations_message_fts"
MESSAGE_TABLE = "conversations_message"

PG_CREATE = f"""
CREATE INDEX IF NOT EXISTS {PG_INDEX} ON {MESSAGE_TABLE}
USING gin (to_tsvector('english', text)) WHERE status <> 'streaming'
"""
PG_DROP = f"DROP INDEX IF EXISTS {PG_INDEX}"

SQLITE_TABLE = f"""CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(
    text, message_id UNINDEXED, conversation_id UNINDEXED,
    tokenize = 'porter unicode61 remove_diacritics 2'
)"""

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_insert AFTER INSERT ON {MESSAGE_TABLE}
    WHEN new.status <> 'streaming' AND new.text <> '' BEGIN
        INSERT INTO {FTS_TABLE}(rowid, text, message_id, conversation_id)
        VALUES (new.rowid, new.text, new.id, new.conversation_id);
    END""",
    # A streaming answer's checkpoints (streaming before and after) do nothing.
    f"""CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_update
    AFTER UPDATE OF text, status ON {MESSAGE_TABLE}
    WHEN old.status <> 'streaming' OR new.status <> 'streaming' BEGIN
        DELETE FROM {FTS_TABLE} WHERE rowid = old.rowid;
        INSERT INTO {FTS_TABLE}(rowid, text, message_id, conversation_id)
        SELECT new.rowid, new.text, new.id, new.conversation_id
        WHERE new.status <> 'streaming' AND new.text <> '';
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS {FTS_TABLE}_delete AFTER DELETE ON {MESSAGE_TABLE} BEGIN
        DELETE FROM {FTS_TABLE} WHERE rowid = old.rowid;
    END""",
]

SQLITE_REFILL = [
    f"DELETE FROM {FTS_TABLE}",
    f"""INSERT INTO {FTS_TABLE}(rowid, text, message_id, conversation_id)
    SELECT rowid, text, id, conversation_id FROM {MESSAGE_TABLE}
    WHERE status <> 'streaming' AND text <> ''""",
]

SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS {FTS_TABLE}_insert",
    f"DROP TRIGGER IF EXISTS {FTS_TABLE}_update",
    f"DROP TRIGGER IF EXISTS {FTS_TABLE}_delete",
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
]


def fts_ensure(connection: BaseDatabaseWrapper) -> bool:
    """On SQLite, once migration 0008 made the FTS table: put back triggers a
    table rebuild dropped, and refill the table then (its rowids are the
    rebuilt table's). True if it had to. Elsewhere nothing."""
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger') AND name LIKE %s",
            [f"{FTS_TABLE}%"],
        )
        names = {row[0] for row in cursor.fetchall()}
        if FTS_TABLE not in names or MESSAGE_TABLE not in _tables(cursor):
            return False  # before migration 0008, or after it was undone
        if {f"{FTS_TABLE}_insert", f"{FTS_TABLE}_update", f"{FTS_TABLE}_delete"} <= names:
            return False
        for statement in [*SQLITE_TRIGGERS, *SQLITE_REFILL]:
            cursor.execute(statement)
    return True


def _tables(cursor) -> set[str]:
    cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in cursor.fetchall()}
