"""Revisions: their compiled size and, for rollbacks, the revision restored; content hashes
keyed, and credentials' unkeyed fingerprints removed from stored desired states (both could be
checked against a guessed password)."""

from django.db import migrations, models
from django.utils.crypto import salted_hmac


def _scrub(snapshot: dict) -> bool:
    changed = False
    for consumer in (snapshot.get("consumers") or {}).values():
        for kind in ("apiKeys", "basicAuth"):
            entries = consumer.get(kind) or []
            if any(not str(e).startswith("hmac-sha256:") for e in entries):
                consumer[kind] = ["(fingerprint removed)" for _ in entries]
                changed = True
    return changed


def forwards(apps, schema_editor):
    ConfigRevision = apps.get_model("provisioning", "ConfigRevision")
    for revision in ConfigRevision.objects.iterator(chunk_size=20):
        revision.size = len(revision.resources.encode())
        # Content hashes become keyed (as provisioning.revisions.hash_of computes them), so
        # the next reconcile finds the same hash and the served version is not guessable.
        revision.content_hash = salted_hmac(
            "gantry.provisioning.revisions.content-hash", revision.resources, algorithm="sha256"
        ).hexdigest()
        fields = ["size", "content_hash"]
        if isinstance(revision.desired_state, dict) and _scrub(revision.desired_state):
            fields.append("desired_state")
        revision.save(update_fields=fields)


class Migration(migrations.Migration):

    dependencies = [
        ("provisioning", "0007_replica_credentials_admin_socket"),
    ]

    operations = [
        migrations.AddField(
            model_name="configrevision",
            name="restored_from",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="configrevision",
            name="size",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True),
    ]
