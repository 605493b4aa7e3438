"""The plans every installation starts with (operators edit or add more in the admin)."""

from django.db import migrations

from tenants.default_plans import DEFAULT_PLANS


def create_plans(apps, schema_editor):
    plan = apps.get_model("tenants", "Plan")
    # Later migrations add quotas to DEFAULT_PLANS: keep only the fields this model has yet.
    known = {field.name for field in plan._meta.get_fields()}
    for fields in DEFAULT_PLANS:
        fields = {key: value for key, value in fields.items() if key in known}
        plan.objects.get_or_create(name=fields["name"], defaults=fields)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [migrations.RunPython(create_plans, migrations.RunPython.noop)]
