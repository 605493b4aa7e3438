"""A Kubernetes gateway whose backend names a Service of a granted namespace of its own cluster
may reach that namespace's pods on the target ports the watcher saw, and nothing more; applied
to the API-server double (schema-checked)."""

import pytest

from gateways import services
from provisioning.discovery import endpoints, grants
from provisioning.models import DiscoveryGrant
from provisioning.runtimes.kubernetes import driver
from tests.discovery.conftest import ACTOR
from tests.discovery.test_watcher import kubeconfig
from tests.kubernetes.apiserver_double import ApiServerDouble

ROW = [{"address": "10.244.1.7", "port": 8080, "ready": True, "serving": True,
        "terminating": False}]  # fmt: skip


@pytest.fixture
def double():
    server = ApiServerDouble().start()
    yield server
    server.stop()


def discovery_rules(double, tenant="acme", gateway="edge"):
    policy = double.objects[("NetworkPolicy", f"gantry-{tenant}", f"envoy-{gateway}")]
    return [rule for rule in policy["spec"]["egress"]
            if any("namespaceSelector" in peer for peer in rule.get("to", []))]  # fmt: skip


def test_the_gateway_reaches_the_granted_namespace_on_the_seen_ports(
    org, k8s_gateway, k8s_cluster, double
):
    k8s_cluster.kubeconfig = kubeconfig(double.host)
    k8s_cluster.save()
    grants.grant_namespace(ACTOR, k8s_cluster, org.tenant, "shop")
    services.create_backend(ACTOR, org.tenant, "cart", {
        "kubernetesService": {"namespace": "shop", "name": "cart", "port": 80}})  # fmt: skip
    services.create_route(
        ACTOR, k8s_gateway, "web", {"rules": [{"backendRefs": [{"name": "cart"}]}]}
    )
    endpoints.store(k8s_cluster, "shop", "cart", 80, ROW)
    assert driver.converge(k8s_gateway).phase != "Failed"
    assert [k for k in double.objects if k[0] == "NetworkPolicy" and "edge" in k[2]]
    assert discovery_rules(double) == [{
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}}],
        "ports": [{"protocol": "TCP", "port": 8080}],
    }]  # fmt: skip
    # the grant revoked: the rule goes at the next converge
    grants.revoke_grant(ACTOR, DiscoveryGrant.objects.get(tenant=org.tenant))
    driver.converge(k8s_gateway)
    assert discovery_rules(double) == []
