"""The plans every installation starts with (operators edit or add more in the admin)."""

from django.db import migrations

from tenants.default_plans import DEFAULT_PLANS


def create_plans(apps, schema_editor):
    plan = apps.get_model("tenants", "Plan")
    for fields in DEFAULT_PLANS:
        plan.objects.get_or_create(name=fields["name"], defaults=fields)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [migrations.RunPython(create_plans, migrations.RunPython.noop)]
