"""The ledger (`ApiCall`) moves to the `usage` app: its table is renamed to
usage_apicall, every row kept; `usage.0002_apicall_from_conversations` takes
the model over in the migration state."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0003_message_status_without_pending"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name="apicall", table="usage_apicall"),
            ],
            state_operations=[
                migrations.DeleteModel(name="ApiCall"),
            ],
        ),
    ]
