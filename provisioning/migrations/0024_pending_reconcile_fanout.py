from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0023_pending_reconcile"),
    ]

    operations = [
        migrations.AddField(
            model_name="pendingreconcile",
            name="fanout",
            field=models.BooleanField(db_default=False, default=False),
        ),
    ]
