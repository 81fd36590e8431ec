"""Replies are stored as streaming from the start: "pending" was never set.

A row stored as pending all the same (by a version older than the streaming
send) is a reply that never started: it becomes interrupted, with the reaper's
message, so its conversation can take a retry or a new message.
"""

from django.db import migrations, models


def pending_to_interrupted(apps, schema_editor):
    Message = apps.get_model("conversations", "Message")
    Message.objects.using(schema_editor.connection.alias).filter(status="pending").update(
        status="interrupted",
        error_code="interrupted",
        error_message="The answer was interrupted by a server restart. Press Retry for a new one.",
        heartbeat_at=None,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0002_apicall_batch_regional_savings"),
    ]

    operations = [
        migrations.RunPython(pending_to_interrupted, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name="message", name="message_active_heartbeat"),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("status", "streaming")),
                fields=["status", "heartbeat_at"],
                name="message_active_heartbeat",
            ),
        ),
        migrations.AlterField(
            model_name="message",
            name="status",
            field=models.CharField(
                choices=[
                    ("streaming", "Streaming"),
                    ("complete", "Complete"),
                    ("stopped", "Stopped"),
                    ("error", "Error"),
                    ("interrupted", "Interrupted"),
                ],
                default="complete",
                max_length=16,
            ),
        ),
    ]
