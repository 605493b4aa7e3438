"""The operators' admin: every write there goes through the services, like the API's:
checked, audited and reconciled; what no service does is refused."""

import pytest

from gateways import services as gateway_services
from gateways.models import Gateway, Route
from provisioning.models import KubernetesCluster
from tenants.audit import Actor
from tenants.models import ApiToken, AuditEvent, Plan, Tenant
from tenants.roles import Role
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
            "access_log_retention_days": 7,
            "allowed_sizes": '["small"]',
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.get(object_type="plan", action="update")
    assert (event.before["maxGateways"], event.after["maxGateways"]) == (2, 5)
    assert event.actor_name == "root"


def test_tokens_cannot_be_added_in_the_admin(operator_client):
    assert operator_client.get("/admin/tenants/apitoken/add/").status_code == 403


# Every admin write goes through the services: checked, audited, reconciled.

GATEWAY_SPEC = {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}


@pytest.fixture
def edge(org):
    actor = Actor.system("tests")
    gateway = gateway_services.create_gateway(actor, org.tenant, "edge", GATEWAY_SPEC)
    for name in ("web", "api", "admin"):
        gateway_services.create_route(actor, gateway, name, {})
    return gateway


def _deleted(object_type: str) -> list[str]:
    events = AuditEvent.objects.filter(object_type=object_type, action="delete")
    return sorted(events.values_list("object_name", flat=True))


def test_deleting_a_route_in_the_admin_is_audited_and_reconciles(
    operator_client, edge, django_capture_on_commit_callbacks
):
    route = Route.objects.get(name="web")
    with django_capture_on_commit_callbacks() as queued:
        response = operator_client.post(
            f"/admin/gateways/route/{route.pk}/delete/", {"post": "yes"}
        )
    assert response.status_code == 302
    assert not Route.objects.filter(name="web").exists()
    assert _deleted("route") == ["edge/web"]
    assert AuditEvent.objects.get(object_type="route", action="delete").actor_name == "root"
    assert queued  # the gateway's reconcile, sent once the delete commits


def test_bulk_deleting_routes_in_the_admin_goes_through_the_services(operator_client, edge):
    pks = list(Route.objects.filter(name__in=["api", "admin"]).values_list("pk", flat=True))
    body = {"action": "delete_selected", "_selected_action": pks}
    confirm = operator_client.post("/admin/gateways/route/", body)
    assert confirm.status_code == 200  # Django's confirmation page first
    assert Route.objects.count() == 3
    done = operator_client.post("/admin/gateways/route/", {**body, "post": "yes"}, follow=True)
    assert "Deleted 2 routes." in done.content.decode()
    assert list(Route.objects.values_list("name", flat=True)) == ["web"]
    assert _deleted("route") == ["edge/admin", "edge/api"]


def test_a_tenant_with_gateways_cannot_be_deleted_in_the_admin(operator_client, org, edge):
    url = f"/admin/tenants/tenant/{org.tenant.pk}/delete/"
    response = operator_client.post(url, {"post": "yes"}, follow=True)
    assert "still has 1 gateway" in response.content.decode()
    assert Tenant.objects.filter(pk=org.tenant.pk).exists()
    assert Gateway.objects.filter(pk=edge.pk).exists()
    assert _deleted("tenant") == []


def test_deleting_a_gateway_in_the_admin_deletes_it_like_the_api(operator_client, edge):
    response = operator_client.post(f"/admin/gateways/gateway/{edge.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Gateway.objects.exists() and not Route.objects.exists()
    assert _deleted("gateway") == ["edge"]


def test_tokens_are_revoked_in_the_admin_never_deleted(operator_client, org):
    token = ApiToken.objects.get(user=org.users[Role.VIEWER])
    actions = operator_client.get("/admin/tenants/apitoken/").content.decode()
    assert "delete_selected" not in actions
    body = {"action": "revoke", "_selected_action": [token.pk]}
    assert operator_client.post("/admin/tenants/apitoken/", body).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(object_type="token", action="revoke").count() == 1
    assert operator_client.post(f"/admin/tenants/apitoken/{token.pk}/delete/").status_code == 403


def _tenant_form(org, memberships, **changes) -> dict:
    """The tenant change form as the admin page posts it, with its membership inline."""
    form = {
        "display_name": org.tenant.display_name,
        "plan": org.tenant.plan.pk,
        "memberships-TOTAL_FORMS": len(memberships),
        "memberships-INITIAL_FORMS": len(memberships),
        "memberships-MIN_NUM_FORMS": 0,
        "memberships-MAX_NUM_FORMS": 1000,
    }
    for index, membership in enumerate(memberships):
        prefix = f"memberships-{index}-"
        form |= {prefix + "id": membership.pk, prefix + "tenant": org.tenant.pk,
                 prefix + "user": membership.user_id, prefix + "role": membership.role}  # fmt: skip
    return form | changes


def test_removing_a_member_in_the_admin_revokes_their_tokens(operator_client, org):
    memberships = list(org.tenant.memberships.order_by("pk"))
    viewer = next(m for m in memberships if m.role == Role.VIEWER)
    index = memberships.index(viewer)
    form = _tenant_form(org, memberships, **{f"memberships-{index}-DELETE": "on"})
    response = operator_client.post(f"/admin/tenants/tenant/{org.tenant.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not org.tenant.memberships.filter(pk=viewer.pk).exists()
    assert ApiToken.objects.get(user=org.users[Role.VIEWER]).revoked_at is not None
    assert _deleted("member") == [org.users[Role.VIEWER].username]


def test_the_admin_cannot_remove_a_tenants_last_owner(operator_client, org):
    memberships = list(org.tenant.memberships.order_by("pk"))
    index = next(i for i, m in enumerate(memberships) if m.role == Role.OWNER)
    form = _tenant_form(
        org, memberships, display_name="Renamed", **{f"memberships-{index}-DELETE": "on"}
    )
    url = f"/admin/tenants/tenant/{org.tenant.pk}/change/"
    response = operator_client.post(url, form, follow=True)
    assert "at least one owner" in response.content.decode()
    assert org.tenant.memberships.filter(role=Role.OWNER).count() == 1
    org.tenant.refresh_from_db()
    assert org.tenant.display_name != "Renamed"  # the whole save rolled back


def test_a_plan_change_in_the_admin_that_no_longer_fits_is_refused(operator_client, org, edge):
    form = _tenant_form(org, list(org.tenant.memberships.order_by("pk")))
    form["plan"] = Plan.objects.get(name="developer").pk
    Plan.objects.filter(name="developer").update(max_gateways=0)
    url = f"/admin/tenants/tenant/{org.tenant.pk}/change/"
    response = operator_client.post(url, form, follow=True)
    assert "allows 0 gateways" in response.content.decode()
    org.tenant.refresh_from_db()
    assert org.tenant.plan.name == "standard"


def test_a_tenant_without_gateways_is_deleted_in_the_admin_through_the_services(
    operator_client, org
):
    response = operator_client.post(
        f"/admin/tenants/tenant/{org.tenant.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Tenant.objects.filter(slug="acme").exists()
    assert _deleted("tenant") == ["acme"]


def test_cluster_writes_in_the_admin_are_audited_without_the_kubeconfig(operator_client):
    from tests.kubernetes.conftest import KUBECONFIG

    form = {"name": "prod-eu", "kubeconfig": KUBECONFIG, "context": "",
            "exposure": "LoadBalancer", "envoy_image": "envoyproxy/envoy:v1.40.0",
            "xds_address": "gantry-xds.gantry.svc", "xds_port": "18000"}  # fmt: skip
    add = operator_client.post("/admin/provisioning/kubernetescluster/add/", form)
    assert add.status_code == 302
    cluster = KubernetesCluster.objects.get(name="prod-eu")
    body = {"action": "delete_selected", "_selected_action": [cluster.pk], "post": "yes"}
    assert operator_client.post("/admin/provisioning/kubernetescluster/", body).status_code == 302
    assert not KubernetesCluster.objects.exists()
    events = AuditEvent.objects.filter(object_type="kubernetes-cluster")
    assert sorted(events.values_list("action", flat=True)) == ["create", "delete"]
    assert "kubeconfig-secret-token" not in str(list(events.values("before", "after")))


def _cluster_form(**overrides) -> dict:
    from tests.kubernetes.conftest import KUBECONFIG

    form = {"name": "prod-eu", "kubeconfig": KUBECONFIG, "context": "",
            "exposure": "LoadBalancer", "envoy_image": "envoyproxy/envoy:v1.40.0",
            "xds_address": "gantry-xds.gantry.svc", "xds_port": "18000",
            "plans": [Plan.objects.get(name="standard").pk]}  # fmt: skip
    return form | overrides


def test_a_cluster_changed_in_the_admin_goes_through_the_services(
    operator_client, org, django_capture_on_commit_callbacks, monkeypatch
):
    from provisioning import tasks
    from provisioning.models import KubernetesPlacement

    sent = []
    monkeypatch.setattr(tasks, "send_reconcile", lambda gateway_id, **kw: sent.append(gateway_id))
    operator_client.post("/admin/provisioning/kubernetescluster/add/", _cluster_form())
    cluster = KubernetesCluster.objects.get(name="prod-eu")
    event = AuditEvent.objects.get(object_type="kubernetes-cluster", action="create")
    assert event.after["plans"] == ["standard"] and event.actor_name == "root"
    gateway = gateway_services.create_gateway(Actor.system("tests"), org.tenant, "edge", {})
    KubernetesPlacement.objects.create(gateway=gateway, cluster=cluster)
    change = _cluster_form(kubeconfig="", plans=[Plan.objects.get(name="enterprise").pk])
    del change["name"]  # read-only once registered
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            f"/admin/provisioning/kubernetescluster/{cluster.pk}/change/", change
        )
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.get(object_type="kubernetes-cluster", action="update")
    assert (event.before["plans"], event.after["plans"]) == (["standard"], ["enterprise"])
    assert sent == [gateway.pk]  # the gateway on it is reconciled (its plan lost the cluster)
    cluster.refresh_from_db()
    assert cluster.kubeconfig.startswith("apiVersion: v1")  # kept
    # Deleting it is refused while the gateway runs there, naming it; nothing is deleted.
    url = f"/admin/provisioning/kubernetescluster/{cluster.pk}/delete/"
    refused = operator_client.post(url, {"post": "yes"}, follow=True)
    assert "acme/edge" in refused.content.decode()
    assert KubernetesCluster.objects.filter(pk=cluster.pk).exists()
    assert not AuditEvent.objects.filter(object_type="kubernetes-cluster", action="delete")


def test_a_broken_kubeconfig_in_the_admin_is_not_echoed_back(operator_client):
    broken = "clusters: [\nusers: {token: kubeconfig-secret-token-1234"
    response = operator_client.post(
        "/admin/provisioning/kubernetescluster/add/", _cluster_form(kubeconfig=broken)
    )
    assert response.status_code == 200 and b"not valid YAML" in response.content
    assert b"kubeconfig-secret-token" not in response.content
    assert not KubernetesCluster.objects.exists()


def test_a_user_who_belongs_to_a_tenant_cannot_be_deleted_in_the_admin(operator_client, org):
    owner = org.users[Role.OWNER]
    single = operator_client.post(f"/admin/auth/user/{owner.pk}/delete/", {"post": "yes"})
    assert single.status_code == 403
    loner = make_user("loner")
    body = {"action": "delete_selected", "_selected_action": [owner.pk, loner.pk], "post": "yes"}
    assert operator_client.post("/admin/auth/user/", body).status_code == 403  # none deleted
    assert org.tenant.memberships.filter(user=owner, role=Role.OWNER).exists()
    assert type(owner).objects.filter(username="loner").exists()
    body["_selected_action"] = [loner.pk]
    assert operator_client.post("/admin/auth/user/", body).status_code == 302
    assert not type(owner).objects.filter(username="loner").exists()
