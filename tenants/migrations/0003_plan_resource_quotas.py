"""Quotas on backends, certificates, consumers and API tokens per user.

The default plans get their limits from ``DEFAULT_PLANS``; any other plan gets the column
default, which operators can change in the admin or with ``PATCH /api/v1/plans/{name}/``.
"""

from django.db import migrations, models

from tenants.default_plans import DEFAULT_PLANS

NEW_FIELDS = ("max_backends", "max_certificates", "max_consumers", "max_tokens_per_user")


def set_default_plan_limits(apps, schema_editor):
    plan = apps.get_model("tenants", "Plan")
    for fields in DEFAULT_PLANS:
        plan.objects.filter(name=fields["name"]).update(
            **{key: fields[key] for key in NEW_FIELDS}
        )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_default_plans")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="max_backends",
            field=models.PositiveIntegerField(default=200),
        ),
        migrations.AddField(
            model_name="plan",
            name="max_certificates",
            field=models.PositiveIntegerField(default=100),
        ),
        migrations.AddField(
            model_name="plan",
            name="max_consumers",
            field=models.PositiveIntegerField(default=1000),
        ),
        migrations.AddField(
            model_name="plan",
            name="max_tokens_per_user",
            field=models.PositiveIntegerField(
                default=25, help_text="active API tokens one user may hold in one tenant"
            ),
        ),
        migrations.RunPython(set_default_plan_limits, migrations.RunPython.noop),
    ]
