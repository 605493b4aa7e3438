"""Migrations of stored revisions: 0008 (sizes filled in, content hashes keyed, unkeyed
credential fingerprints removed) and 0021 (desired states compressed, and back)."""

import hashlib
import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from provisioning import revisions
from tests.conftest import make_org

BEFORE = [("provisioning", "0007_replica_credentials_admin_socket")]
AFTER = [("provisioning", "0008_revision_size_and_restored_from")]


def migrate(targets=None):
    """To ``targets``, or (None) forward to the newest migrations of every app."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def back_to_the_newest():
    yield
    migrate()  # the tests after this one need every migration applied


@pytest.mark.django_db(transaction=True)
def test_old_revisions_get_sizes_keyed_hashes_and_lose_unkeyed_fingerprints(back_to_the_newest):
    tenant = make_org("acme").tenant
    old = migrate(BEFORE)
    Gateway = old.get_model("gateways", "Gateway")
    ConfigRevision = old.get_model("provisioning", "ConfigRevision")
    resources = '{"clusters":[],"listeners":[],"routes":[]}'
    plain = hashlib.sha256(resources.encode()).hexdigest()
    gateway = Gateway.objects.create(tenant_id=tenant.pk, name="edge", spec={})
    consumers = {"carol": {"apiKeys": ["sha256:0123456789abcdef"], "basicAuth": ["sha256:fe"]}}
    ConfigRevision.objects.create(
        gateway_id=gateway.pk, number=1, content_hash=plain, resources=resources,
        desired_state={"consumers": consumers}, state="valid", current=True, created_by="t",
    )  # fmt: skip
    new = migrate(AFTER)
    revision = new.get_model("provisioning", "ConfigRevision").objects.get(gateway_id=gateway.pk)
    assert revision.size == len(resources)
    assert revision.content_hash == revisions.hash_of(resources) != plain
    assert revision.desired_state["consumers"]["carol"] == {
        "apiKeys": ["(fingerprint removed)"], "basicAuth": ["(fingerprint removed)"],
    }  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_stored_desired_states_are_compressed_and_read_the_same_both_ways(back_to_the_newest):
    tenant = make_org("acme").tenant
    before = [("provisioning", "0020_compressed_revision_resources")]
    after = [("provisioning", "0021_compressed_desired_state")]
    old = migrate(before)
    Gateway = old.get_model("gateways", "Gateway")
    ConfigRevision = old.get_model("provisioning", "ConfigRevision")
    gateway = Gateway.objects.create(tenant_id=tenant.pk, name="edge", spec={})
    desired = {"routes": [{"name": f"r{i}", "spec": {"rules": [{}]}} for i in range(200)],
               "gateway": "edge", "note": "ünïcode"}  # fmt: skip
    ConfigRevision.objects.create(
        gateway_id=gateway.pk, number=1, content_hash="h", resources="{}", size=2,
        desired_state=desired, state="valid", current=True, created_by="t",
    )  # fmt: skip
    new = migrate(after)
    revision = new.get_model("provisioning", "ConfigRevision").objects.get(gateway_id=gateway.pk)
    assert revision.desired_state == desired
    with connection.cursor() as cursor:
        cursor.execute("SELECT octet_length(desired_state) FROM provisioning_configrevision")
        (stored,) = cursor.fetchone()
    assert stored < len(json.dumps(desired)) / 5  # compressed
    back = migrate(before)  # and back: a JSON column again, the same document
    revision = back.get_model("provisioning", "ConfigRevision").objects.get(gateway_id=gateway.pk)
    assert revision.desired_state == desired
