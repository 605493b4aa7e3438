"""Members and roles, tenants and plans: who may change what."""

import pytest

from gateways.models import Gateway
from tenants.models import Membership, Tenant
from tenants.roles import Role
from tests.api.people import colleague
from tests.conftest import make_user

MEMBERS = "/api/v1/tenants/acme/members/"


def test_admins_add_members_and_change_roles(org):
    colleague(org, "bob")
    admin = org.client(Role.ADMIN)
    response = admin.post(MEMBERS, {"user": "bob", "role": "editor"}, format="json")
    assert response.status_code == 201
    assert response.json() == {**response.json(), "user": "bob", "role": "editor"}
    assert admin.patch(MEMBERS + "bob/", {"role": "viewer"}, format="json").json()["role"] == (
        "viewer"
    )


def test_adding_an_unknown_user_names_the_field(org):
    response = org.client(Role.ADMIN).post(
        MEMBERS, {"user": "nobody", "role": "viewer"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "user"


def test_only_owners_grant_or_touch_the_owner_role(org):
    colleague(org, "bob")
    admin = org.client(Role.ADMIN)
    response = admin.post(MEMBERS, {"user": "bob", "role": "owner"}, format="json")
    assert response.status_code == 403
    owner_name = org.users[Role.OWNER].username
    assert admin.delete(MEMBERS + owner_name + "/").status_code == 403
    assert (
        admin.patch(MEMBERS + owner_name + "/", {"role": "viewer"}, format="json").status_code
        == 403
    )
    assert (
        org.client(Role.OWNER)
        .post(MEMBERS, {"user": "bob", "role": "owner"}, format="json")
        .status_code
        == 201
    )


def test_the_last_owner_cannot_leave_or_be_demoted(org):
    owner = org.client(Role.OWNER)
    owner_name = org.users[Role.OWNER].username
    response = owner.patch(MEMBERS + owner_name + "/", {"role": "admin"}, format="json")
    assert response.status_code == 409
    assert "at least one owner" in response.json()["error"]["message"]
    assert owner.delete(MEMBERS + owner_name + "/").status_code == 409
    assert Membership.objects.get(user=org.users[Role.OWNER]).role == Role.OWNER


def test_a_duplicate_member_is_409(org):
    response = org.client(Role.ADMIN).post(
        MEMBERS, {"user": org.users[Role.VIEWER].username, "role": "editor"}, format="json"
    )
    assert response.status_code == 409


def test_members_filter_by_role(org):
    results = org.client(Role.VIEWER).get(MEMBERS, {"role": "editor"}).json()["results"]
    assert [m["user"] for m in results] == [org.users[Role.EDITOR].username]


def test_operators_create_tenants_members_cannot(staff_client, org):
    make_user("carol")
    body = {"slug": "initech", "owner": "carol", "plan": "developer", "displayName": "Initech"}
    assert org.client(Role.OWNER).post("/api/v1/tenants/", body, format="json").status_code == 403
    response = staff_client.post("/api/v1/tenants/", body, format="json")
    assert response.status_code == 201
    assert response.json()["plan"] == "developer"
    assert Membership.objects.get(tenant__slug="initech").user.username == "carol"
    assert staff_client.post("/api/v1/tenants/", body, format="json").status_code == 409


def test_plan_and_suspension_are_for_operators_only(org, staff_client):
    owner = org.client(Role.OWNER)
    response = owner.patch("/api/v1/tenants/acme/", {"plan": "enterprise"}, format="json")
    assert response.status_code == 403
    assert "plan" in response.json()["error"]["message"]
    response = staff_client.patch("/api/v1/tenants/acme/", {"suspended": True}, format="json")
    assert response.status_code == 200
    assert response.json()["suspended"] is True


def test_a_suspended_tenant_is_read_only(org, staff_client):
    staff_client.patch("/api/v1/tenants/acme/", {"suspended": True}, format="json")
    owner = org.client(Role.OWNER)
    assert owner.get("/api/v1/tenants/acme/gateways/").status_code == 200
    response = owner.post("/api/v1/tenants/acme/gateways/", {"name": "gw"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tenant_suspended"
    assert not Gateway.objects.exists()


def test_a_downgrade_that_does_not_fit_is_refused(org, staff_client):
    for name in ["a", "b", "c"]:
        org.client(Role.EDITOR).post(
            "/api/v1/tenants/acme/gateways/", {"name": name}, format="json"
        )
    response = staff_client.patch("/api/v1/tenants/acme/", {"plan": "developer"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["quota"]["name"] == "maxGateways"
    assert Tenant.objects.get(slug="acme").plan.name == "standard"


def test_owners_delete_an_empty_tenant(org):
    assert org.client(Role.ADMIN).delete("/api/v1/tenants/acme/").status_code == 403
    org.client(Role.EDITOR).post("/api/v1/tenants/acme/gateways/", {"name": "gw"}, format="json")
    response = org.client(Role.OWNER).delete("/api/v1/tenants/acme/")
    assert response.status_code == 409
    assert "1 gateway" in response.json()["error"]["message"]
    org.client(Role.EDITOR).delete("/api/v1/tenants/acme/gateways/gw/")
    assert org.client(Role.OWNER).delete("/api/v1/tenants/acme/").status_code == 204
    assert not Tenant.objects.filter(slug="acme").exists()


def test_tenant_updates_honour_resource_version(org):
    admin = org.client(Role.ADMIN)
    version = admin.get("/api/v1/tenants/acme/").json()["resourceVersion"]
    admin.patch("/api/v1/tenants/acme/", {"displayName": "One"}, format="json")
    response = admin.patch(
        "/api/v1/tenants/acme/", {"displayName": "Two", "resourceVersion": version}, format="json"
    )
    assert response.status_code == 409
    assert Tenant.objects.get(slug="acme").display_name == "One"


@pytest.mark.django_db
def test_plans_are_readable_by_members_and_written_by_operators(org, staff_client):
    owner = org.client(Role.OWNER)
    names = [p["name"] for p in owner.get("/api/v1/plans/").json()["results"]]
    assert names == ["developer", "enterprise", "standard"]
    body = {
        "name": "gold",
        "displayName": "Gold",
        "maxGateways": 5,
        "maxReplicasPerGateway": 3,
        "maxRoutesPerGateway": 100,
        "allowedSizes": ["small"],
    }
    assert owner.post("/api/v1/plans/", body, format="json").status_code == 403
    assert staff_client.post("/api/v1/plans/", body, format="json").status_code == 201
    bad = staff_client.post(
        "/api/v1/plans/", {**body, "name": "x", "allowedSizes": ["giant"]}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"][0]["path"] == "allowedSizes[0]"
    assert staff_client.delete("/api/v1/plans/standard/").status_code == 409
