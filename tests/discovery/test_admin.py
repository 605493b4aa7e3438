"""Operators grant namespaces in the admin: through the services, audited, and a grant is added
or removed, never edited."""

import pytest

from provisioning.models import DiscoveryGrant
from tenants.models import AuditEvent
from tests.conftest import make_user


@pytest.fixture
def operator_client(client, db):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_a_grant_added_and_removed_in_the_admin_is_audited(operator_client, org, clusters):
    form = {"cluster": clusters["prod"].pk, "tenant": org.tenant.pk, "namespace": "shop"}
    response = operator_client.post("/admin/provisioning/discoverygrant/add/", form)
    assert response.status_code == 302, response.content[:2000]
    grant = DiscoveryGrant.objects.get()
    created = AuditEvent.objects.get(object_type="discovery-grant", action="create")
    assert created.tenant == org.tenant and created.actor_name == "root"
    assert created.after == {"cluster": "prod", "tenant": "acme", "namespace": "shop"}
    bad = operator_client.post("/admin/provisioning/discoverygrant/add/",
                               {**form, "namespace": "Not_A_Label"})  # fmt: skip
    assert bad.status_code == 200 and DiscoveryGrant.objects.count() == 1
    response = operator_client.post(
        f"/admin/provisioning/discoverygrant/{grant.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not DiscoveryGrant.objects.exists()
    assert AuditEvent.objects.filter(object_type="discovery-grant", action="delete").exists()
