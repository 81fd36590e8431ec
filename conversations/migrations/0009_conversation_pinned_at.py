from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("conversations", "0008_message_search_index")]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="pinned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
