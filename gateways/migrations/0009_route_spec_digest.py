"""``Route.spec_digest``: SHA-256 of the spec's JSON text, a column the database computes on
every write. PostgreSQL takes only immutable functions there, and ``convert_to`` (text to
bytes) is marked stable because it names an encoding: ``gantry_json_digest`` wraps it with the
encoding fixed (UTF-8), which is immutable in fact."""

from django.db import migrations, models

import gateways.models

FUNCTION = """
CREATE OR REPLACE FUNCTION gantry_json_digest(value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT encode(sha256(convert_to(value::text, 'UTF8')), 'hex') $$
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS gantry_json_digest(jsonb)")


class Migration(migrations.Migration):
    dependencies = [
        ("gateways", "0008_policy_secrets"),
    ]

    operations = [
        migrations.RunPython(create_function, drop_function),
        migrations.AddField(
            model_name="route",
            name="spec_digest",
            field=models.GeneratedField(
                db_persist=True,
                expression=gateways.models.JsonDigest("spec"),
                output_field=models.CharField(max_length=64),
            ),
        ),
    ]
