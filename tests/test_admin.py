"""The operators' admin: writes there are audited like API writes."""

import pytest

from tenants.models import AuditEvent, Plan
from tests.conftest import make_user


@pytest.fixture
def operator_client(client, db):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_a_plan_changed_in_the_admin_is_audited(operator_client):
    plan = Plan.objects.get(name="developer")
    response = operator_client.post(
        f"/admin/tenants/plan/{plan.pk}/change/",
        {
            "name": "developer",
            "display_name": "Developer",
            "description": "",
            "max_gateways": 5,
            "max_replicas_per_gateway": 2,
            "max_routes_per_gateway": 50,
            "max_backends": 20,
            "max_certificates": 10,
            "max_consumers": 100,
            "max_tokens_per_user": 10,
            "allowed_sizes": '["small"]',
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.get(object_type="plan", action="update")
    assert (event.before["maxGateways"], event.after["maxGateways"]) == (2, 5)
    assert event.actor_name == "root"


def test_tokens_cannot_be_added_in_the_admin(operator_client):
    assert operator_client.get("/admin/tenants/apitoken/add/").status_code == 403
