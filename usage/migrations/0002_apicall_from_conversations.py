"""The ledger (`ApiCall`) is now usage's model. Its table was renamed by
`conversations.0004_apicall_moves_to_usage`; here the model enters the state
only, and its content type (and so its permissions and admin history) follows
it. The purposes never written (title, summary) are gone from the choices."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def content_type_to(app_label: str, from_app_label: str):
    def move(apps, schema_editor):
        ContentType = apps.get_model("contenttypes", "ContentType")
        types = ContentType.objects.using(schema_editor.connection.alias)
        if not types.filter(app_label=app_label, model="apicall").exists():
            types.filter(app_label=from_app_label, model="apicall").update(app_label=app_label)

    return move


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("conversations", "0004_apicall_moves_to_usage"),
        ("usage", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiCall",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "conversation_uuid",
                            models.UUIDField(blank=True, db_index=True, null=True),
                        ),
                        (
                            "purpose",
                            models.CharField(
                                choices=[("chat", "Chat reply"), ("count_tokens", "Token count")],
                                default="chat",
                                max_length=20,
                            ),
                        ),
                        ("provider", models.CharField(default="anthropic", max_length=20)),
                        ("model", models.CharField(max_length=100)),
                        ("input_tokens", models.PositiveIntegerField(default=0)),
                        ("output_tokens", models.PositiveIntegerField(default=0)),
                        ("cache_write_5m_tokens", models.PositiveIntegerField(default=0)),
                        ("cache_write_1h_tokens", models.PositiveIntegerField(default=0)),
                        ("cache_read_tokens", models.PositiveIntegerField(default=0)),
                        ("usage_estimated", models.BooleanField(default=False)),
                        (
                            "cost_usd",
                            models.DecimalField(decimal_places=6, default=0, max_digits=14),
                        ),
                        ("batch", models.BooleanField(default=False)),
                        ("regional", models.BooleanField(default=False)),
                        (
                            "cache_savings_usd",
                            models.DecimalField(decimal_places=6, default=0, max_digits=14),
                        ),
                        (
                            "batch_savings_usd",
                            models.DecimalField(decimal_places=6, default=0, max_digits=14),
                        ),
                        ("price_key", models.CharField(blank=True, max_length=80)),
                        ("priced", models.BooleanField(default=True)),
                        ("request_id", models.CharField(blank=True, max_length=80)),
                        (
                            "time_to_first_token_ms",
                            models.PositiveIntegerField(blank=True, null=True),
                        ),
                        ("duration_ms", models.PositiveIntegerField(blank=True, null=True)),
                        ("stop_reason", models.CharField(blank=True, max_length=40)),
                        ("error_type", models.CharField(blank=True, max_length=60)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "conversation",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="api_calls",
                                to="conversations.conversation",
                            ),
                        ),
                        (
                            "message",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="api_calls",
                                to="conversations.message",
                            ),
                        ),
                        (
                            "team",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="api_calls",
                                to="accounts.team",
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="api_calls",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "API call",
                        "ordering": ["-created_at"],
                        "indexes": [
                            models.Index(
                                fields=["user", "created_at"], name="apicall_user_created"
                            ),
                            models.Index(
                                fields=["team", "created_at"], name="apicall_team_created"
                            ),
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(
            content_type_to("usage", from_app_label="conversations"),
            content_type_to("conversations", from_app_label="usage"),
        ),
    ]
