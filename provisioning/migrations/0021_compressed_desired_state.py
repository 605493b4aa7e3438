"""A revision's desired state is stored compressed (docs/delivery.md): a new column, filled
from the old one, which is then dropped."""

from django.db import migrations

import config.fields


def compress(apps, schema_editor):
    ConfigRevision = apps.get_model("provisioning", "ConfigRevision")
    rows = ConfigRevision.objects.only("pk", "desired_state").order_by("pk")
    for revision in rows.iterator(chunk_size=100):
        revision.desired_compressed = revision.desired_state
        revision.save(update_fields=["desired_compressed"])


def expand(apps, schema_editor):
    ConfigRevision = apps.get_model("provisioning", "ConfigRevision")
    rows = ConfigRevision.objects.only("pk", "desired_compressed").order_by("pk")
    for revision in rows.iterator(chunk_size=100):
        revision.desired_state = revision.desired_compressed
        revision.save(update_fields=["desired_state"])


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0020_compressed_revision_resources"),
    ]

    operations = [
        migrations.AddField(
            model_name="configrevision",
            name="desired_compressed",
            field=config.fields.CompressedJSONField(default=dict),
        ),
        migrations.RunPython(compress, expand),
        migrations.RemoveField(model_name="configrevision", name="desired_state"),
        migrations.RenameField(
            model_name="configrevision", old_name="desired_compressed", new_name="desired_state"
        ),
    ]
