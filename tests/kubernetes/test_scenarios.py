"""The applier's scenarios, asserted only through the Kubernetes API, so they run against the
project's API server test double always and against a real cluster when ``KUBECONFIG`` is set
(``make test-k8s``; see docs/kubernetes.md). On a real cluster the tenant is unique per run,
gateways are exposed by NodePort (LoadBalancers may never get an address there), and
everything is deleted at the end."""

import os
import time
import uuid
from dataclasses import replace

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from provisioning.runtimes.kubernetes import apply, names
from provisioning.runtimes.kubernetes.client import Backoff, KubeApi
from provisioning.runtimes.kubernetes.status import read_status
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.kubernetes.cases import load

TARGETS = ["double"] + (["cluster"] if os.environ.get("KUBECONFIG") else [])
READY_TIMEOUT = float(os.environ.get("GANTRY_K8S_READY_TIMEOUT", "240"))


@pytest.fixture(params=TARGETS)
def target(request):
    """(api, cluster settings, tenant, gateway) on the double or the real cluster."""
    cluster, tenant, gateway = load("single-replica-load-balancer")
    if request.param == "double":
        double = ApiServerDouble().start()
        configuration = k8s.Configuration(host=double.host)
        request.addfinalizer(double.stop)
    else:
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(client_configuration=configuration)
        slug = f"e2e-{uuid.uuid4().hex[:8]}"
        tenant = replace(tenant, slug=slug)
        gateway = replace(gateway, tenant=slug)
        image = os.environ.get("GANTRY_K8S_ENVOY_IMAGE", cluster.envoy_image)
        platform = os.environ.get("GANTRY_K8S_PLATFORM_IMAGE", cluster.platform_image)
        xds = os.environ.get("GANTRY_K8S_XDS", "127.0.0.1:18000")
        host, _, port = xds.rpartition(":")
        cluster = replace(
            cluster, exposure="NodePort", envoy_image=image, platform_image=platform,
            xds_address=host, xds_port=int(port),
        )  # fmt: skip
    api = KubeApi(k8s.ApiClient(configuration), Backoff(attempts=6, base=0.05, cap=1.0))
    yield api, cluster, tenant, gateway
    if request.param == "cluster":
        api.delete("Namespace", None, names.namespace(tenant.slug))


def kinds(api, tenant, gateway) -> list[str]:
    return sorted(apply.observe(api, tenant.slug, gateway.name).objects)


def test_create_then_no_op_then_change(target):
    api, cluster, tenant, gateway = target
    created = apply.reconcile(api, tenant, gateway, cluster)
    assert len(created.applied) == 8
    assert len(kinds(api, tenant, gateway)) == 8
    writes = api.counters.writes
    assert apply.reconcile(api, tenant, gateway, cluster).applied == []
    assert api.counters.writes == writes  # a no-op reconcile writes nothing
    changed = apply.reconcile(api, tenant, replace(gateway, replicas=2), cluster)
    assert changed.applied == [
        f"Deployment {names.namespace(tenant.slug)}/envoy-edge",
        f"PodDisruptionBudget {names.namespace(tenant.slug)}/envoy-edge",
    ]
    deployment = api.get("Deployment", names.namespace(tenant.slug), "envoy-edge")
    assert deployment["spec"]["replicas"] == 2 and deployment["metadata"]["generation"] == 2


def test_prune_and_delete(target):
    api, cluster, tenant, gateway = target
    apply.reconcile(api, tenant, replace(gateway, replicas=2), cluster)
    pruned = apply.reconcile(api, tenant, gateway, cluster).pruned
    assert pruned == [f"PodDisruptionBudget {names.namespace(tenant.slug)}/envoy-edge"]
    deleted = apply.delete_gateway(api, tenant.slug, gateway.name)
    assert deleted[-1] == f"Namespace {names.namespace(tenant.slug)}"
    namespace = api.get("Namespace", None, names.namespace(tenant.slug))
    assert namespace is None or namespace["status"]["phase"] == "Terminating"


def test_the_gateway_becomes_ready_with_urls(target, request):
    api, cluster, tenant, gateway = target
    if "cluster" in request.node.callspec.id and not os.environ.get("GANTRY_K8S_XDS"):
        # Pods start only once their init container has enrolled with an xDS server that
        # knows the gateway (and with the platform's image pulled).
        pytest.skip("needs GANTRY_K8S_XDS: an xDS server the cluster's pods reach and enroll with")
    apply.reconcile(api, tenant, gateway, cluster)
    deadline = time.monotonic() + READY_TIMEOUT
    status = read_status(api, gateway)
    while status.phase != "Ready" and time.monotonic() < deadline:
        time.sleep(2)
        status = read_status(api, gateway)
    assert status.phase == "Ready", status.message
    assert status.available_replicas == 1 and set(status.urls) == {"http"}
