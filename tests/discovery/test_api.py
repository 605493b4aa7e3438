"""Backends naming a Kubernetes Service through the API: the shape, the JSON paths of mistakes,
and tenant isolation (only namespaces the operator granted to this tenant, in clusters its plan
may use; nothing written otherwise)."""

import pytest

from gateways.models import Backend
from provisioning.discovery import grants
from provisioning.models import DiscoveryGrant
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.discovery.conftest import ACTOR

URL = "/api/v1/tenants/acme/backends/"
SERVICE = {"namespace": "shop", "name": "cart", "port": 80}


@pytest.fixture
def editor(org, granted):
    return org.client(Role.EDITOR)


def create(client, name="cart", **spec):
    spec.setdefault("kubernetesService", SERVICE)
    return client.post(URL, {"name": name, "spec": spec}, format="json")


def conditions(body: dict) -> dict:
    return {c["type"]: c for c in body["status"]["conditions"]}


def test_a_backend_names_a_service_and_its_cluster_is_filled_in(editor):
    response = create(editor)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["spec"] == {
        "kubernetesService": {"cluster": "prod", **SERVICE},
        "appProtocol": "HTTP/1.1",
    }
    assert conditions(body)["ResolvedRefs"]["status"] == "True"
    explicit = create(editor, "cart2", kubernetesService={"cluster": "prod", **SERVICE})
    assert explicit.status_code == 202, explicit.content


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ({"namespace": "shop", "name": "cart"}, "spec.kubernetesService.port"),
        ({"namespace": "shop", "port": 80}, "spec.kubernetesService.name"),
        ({"name": "cart", "port": 80}, "spec.kubernetesService.namespace"),
        ({**SERVICE, "port": 0}, "spec.kubernetesService.port"),
        ({**SERVICE, "port": 65536}, "spec.kubernetesService.port"),
        ({**SERVICE, "port": "http"}, "spec.kubernetesService.port"),
        ({**SERVICE, "name": "Cart_1"}, "spec.kubernetesService.name"),
        ({**SERVICE, "namespace": "a" * 64}, "spec.kubernetesService.namespace"),
        ({**SERVICE, "cluster": "Prod"}, "spec.kubernetesService.cluster"),
        ({**SERVICE, "kind": "Service"}, "spec.kubernetesService.kind"),
        # tenant isolation: not granted to acme, granted to globex, or a cluster acme's plan
        # may not use (even with a grant there), or that does not exist: the same answer
        ({**SERVICE, "namespace": "default"}, "spec.kubernetesService.namespace"),
        ({**SERVICE, "namespace": "kube-system"}, "spec.kubernetesService.namespace"),
        ({**SERVICE, "namespace": "billing"}, "spec.kubernetesService.namespace"),
        ({**SERVICE, "cluster": "staging"}, "spec.kubernetesService.namespace"),
        ({**SERVICE, "cluster": "private"}, "spec.kubernetesService.cluster"),
        ({**SERVICE, "cluster": "nowhere"}, "spec.kubernetesService.cluster"),
    ],
)
def test_bad_references_name_the_json_path_and_change_nothing(editor, service, path):
    create(editor)
    before = (Backend.objects.get(name="cart").spec, AuditEvent.objects.count())
    for response in (
        editor.post(URL, {"name": "other", "spec": {"kubernetesService": service}}, format="json"),
        editor.put(URL + "cart/", {"spec": {"kubernetesService": service}}, format="json"),
    ):
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert path in [field["path"] for field in error["fields"]], error
        assert path in error["message"]
    assert not Backend.objects.filter(name="other").exists()
    assert (Backend.objects.get(name="cart").spec, AuditEvent.objects.count()) == before


def test_a_merge_patch_to_another_namespace_is_checked_too(editor):
    create(editor)
    patch = {"spec": {"kubernetesService": {"namespace": "billing"}}}
    response = editor.patch(URL + "cart/", patch, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"][0]["path"] == "spec.kubernetesService.namespace"
    assert Backend.objects.get(name="cart").spec["kubernetesService"]["namespace"] == "shop"


def test_refusals_do_not_tell_which_clusters_exist(editor):
    private = create(editor, kubernetesService={**SERVICE, "cluster": "private"}).json()
    nowhere = create(editor, kubernetesService={**SERVICE, "cluster": "nowhere"}).json()
    assert private["error"]["fields"][0]["message"].replace("private", "X") == (
        nowhere["error"]["fields"][0]["message"].replace("nowhere", "X")
    )


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({}, "spec.endpoints"),
        ({"appProtocol": "h2c"}, "spec.endpoints"),
        (
            {
                "kubernetesService": SERVICE,
                "endpoints": [{"ip": {"address": "10.0.0.1", "port": 80}}],
            },
            "spec.kubernetesService",
        ),
        ({"kubernetesService": "shop/cart:80"}, "spec.kubernetesService"),
    ],
)
def test_one_of_endpoints_or_a_service(editor, spec, path):
    response = editor.post(URL, {"name": "x", "spec": spec}, format="json")
    assert response.status_code == 400, response.content
    assert path in [field["path"] for field in response.json()["error"]["fields"]]


def test_the_other_tenant_gets_its_own_grant_only(other_org, granted):
    client = other_org.client(Role.EDITOR)
    url = "/api/v1/tenants/globex/backends/"
    mine = {"kubernetesService": {"namespace": "billing", "name": "ledger", "port": 8080}}
    assert client.post(url, {"name": "ledger", "spec": mine}, format="json").status_code == 202
    theirs = {"kubernetesService": SERVICE}
    response = client.post(url, {"name": "cart", "spec": theirs}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "spec.kubernetesService.namespace"


def test_a_revoked_grant_shows_in_resolved_refs_and_a_new_grant_restores_it(editor, org):
    create(editor)
    grant = DiscoveryGrant.objects.get(tenant=org.tenant, cluster__name="prod", namespace="shop")
    grants.revoke_grant(ACTOR, grant)
    resolved = conditions(editor.get(URL + "cart/").json())["ResolvedRefs"]
    assert (resolved["status"], resolved["reason"]) == ("False", "RefNotPermitted")
    assert "spec.kubernetesService.namespace" in resolved["message"]
    assert AuditEvent.objects.filter(object_type="discovery-grant", action="delete").exists()
    # while revoked, nothing new may name it
    assert create(editor, "cart2").status_code == 400
    grants.grant_namespace(ACTOR, grant.cluster, org.tenant, "shop")
    assert conditions(editor.get(URL + "cart/").json())["ResolvedRefs"]["status"] == "True"


def test_the_plan_losing_the_cluster_withdraws_the_grant(editor, org, plan, granted):
    create(editor)
    granted["prod"].plans.remove(plan)
    assert not grants.is_granted(org.tenant.pk, "prod", "shop")
    assert create(editor, "cart2").status_code == 400


def test_declarative_apply_checks_the_grant_and_is_idempotent(editor):
    import json

    def apply(namespace):
        document = {"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "Backend",
                    "metadata": {"name": "cart"},
                    "spec": {"kubernetesService": {**SERVICE, "namespace": namespace}}}  # fmt: skip
        return editor.generic("POST", "/api/v1/tenants/acme/apply/", json.dumps([document]),
                              content_type="application/json")  # fmt: skip

    first = apply("shop")
    assert first.status_code == 200, first.content
    again = apply("shop").json()
    assert again["summary"]["unchanged"] == 1, again
    refused = apply("billing")
    assert refused.status_code == 400
    fields = refused.json()["error"]["fields"]
    assert any(f["path"].endswith("spec.kubernetesService.namespace") for f in fields), fields
