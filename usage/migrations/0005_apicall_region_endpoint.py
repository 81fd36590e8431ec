"""Where each call went: its region and endpoint (global or regional) beside the
provider, and what the regional premium added; the daily rollup keeps them apart
by provider, region and endpoint. Existing rows were all Anthropic API calls at
its one global endpoint: the defaults say exactly that."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0004_apicall_condense_purpose"),
    ]

    operations = [
        migrations.AddField(
            model_name="apicall",
            name="region",
            field=models.CharField(blank=True, max_length=40),
        ),
        migrations.AddField(
            model_name="apicall",
            name="endpoint",
            field=models.CharField(
                choices=[("global", "Global"), ("regional", "Regional")],
                default="global",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="apicall",
            name="regional_premium_usd",
            field=models.DecimalField(decimal_places=6, default=0, max_digits=14),
        ),
        migrations.AddField(
            model_name="dailyusage",
            name="provider",
            field=models.CharField(default="anthropic", max_length=20),
        ),
        migrations.AddField(
            model_name="dailyusage",
            name="region",
            field=models.CharField(blank=True, max_length=40),
        ),
        migrations.AddField(
            model_name="dailyusage",
            name="endpoint",
            field=models.CharField(default="global", max_length=10),
        ),
        migrations.AddField(
            model_name="dailyusage",
            name="regional_premium_usd",
            field=models.DecimalField(decimal_places=6, default=0, max_digits=16),
        ),
        migrations.RemoveConstraint(
            model_name="dailyusage",
            name="dailyusage_unique_key",
        ),
        migrations.AddConstraint(
            model_name="dailyusage",
            constraint=models.UniqueConstraint(
                fields=("day", "user_id", "team_id", "model", "provider", "region", "endpoint"),
                name="dailyusage_unique_key_endpoint",
            ),
        ),
    ]
