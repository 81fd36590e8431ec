from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0002_audit_event"),
    ]

    operations = [
        migrations.AddField(
            model_name="team",
            name="mfa_required",
            field=models.BooleanField(default=False),
        ),
    ]
