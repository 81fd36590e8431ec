"""Full-text search over finished messages: a GIN expression index on
PostgreSQL, an FTS5 table kept by triggers on SQLite (conversations/search_index.py)."""

from django.db import migrations

from conversations import search_index


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(search_index.PG_CREATE)
    elif vendor == "sqlite":
        for statement in [
            search_index.SQLITE_TABLE,
            *search_index.SQLITE_TRIGGERS,
            *search_index.SQLITE_REFILL,
        ]:
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(search_index.PG_DROP)
    elif vendor == "sqlite":
        for statement in search_index.SQLITE_DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0007_sharing_and_presets")]

    operations = [migrations.RunPython(forward, backward)]
