"""The applier against the project's Kubernetes API server test double, through the real
``kubernetes`` client: create, update, no-op (zero writes), prune, delete, status read-back,
faults that converge without duplicates, and refusals that carry the API server's message."""

from dataclasses import replace

import pytest
from kubernetes import client as k8s

from provisioning.runtimes.kubernetes import apply, names
from provisioning.runtimes.kubernetes.client import Backoff, KubeApi, KubernetesError
from provisioning.runtimes.kubernetes.inputs import Autoscaling
from provisioning.runtimes.kubernetes.status import read_status
from tests.kubernetes.apiserver_double import LOAD_BALANCER_IP, NODE_ADDRESS, ApiServerDouble
from tests.kubernetes.cases import load

GATEWAY_KINDS = ["Deployment", "NetworkPolicy", "Service", "ServiceAccount"]
TENANT_KINDS = ["LimitRange", "NetworkPolicy", "ResourceQuota"]


@pytest.fixture
def double():
    server = ApiServerDouble().start()
    yield server
    server.stop()


def make_api(double, timeout=(2, 2)) -> KubeApi:
    configuration = k8s.Configuration(host=double.host)
    return KubeApi(
        k8s.ApiClient(configuration), Backoff(attempts=6, base=0.01, cap=0.05), timeout=timeout
    )


@pytest.fixture
def api(double):
    return make_api(double)


@pytest.fixture
def case():
    return load("single-replica-load-balancer")  # cluster, tenant, gateway


@pytest.fixture
def warm(case):
    """The double's first check of each kind loads and compiles its schema, which can take
    longer than 0.3 s on a loaded machine: done beforehand, in a spare double, for the tests
    whose client gives up after 0.3 s (so only the stalls they set up time out)."""
    spare = ApiServerDouble().start()
    try:
        reconcile(make_api(spare), case)
    finally:
        spare.stop()


def reconcile(api, case, gateway=None, **kwargs):
    cluster, tenant, default = case
    return apply.reconcile(api, tenant, gateway or default, cluster, **kwargs)


def test_a_first_reconcile_creates_everything(api, double, case):
    result = reconcile(api, case)
    assert len(result.applied) == 8 and not result.pruned
    assert ("Namespace", None, "gantry-acme") in double.objects
    assert double.kinds_in("gantry-acme") == sorted(TENANT_KINDS + GATEWAY_KINDS)
    account = double.objects[("ServiceAccount", "gantry-acme", "envoy-edge")]
    assert account["metadata"]["labels"][names.GATEWAY_LABEL] == "edge"
    assert all("fieldManager=gantry" in path for method, path in double.writes())


def test_a_reconcile_with_nothing_to_change_makes_no_writes(api, double, case):
    reconcile(api, case)
    versions = {k: o["metadata"]["resourceVersion"] for k, o in double.objects.items()}
    double.requests.clear()
    calls_before = api.counters.calls
    result = reconcile(api, case)
    assert result.applied == [] and result.unchanged == 8
    assert double.writes() == []
    # Only lists, one per kind Gantry owns, as counted on both sides of the wire.
    assert {method for method, _ in double.requests} == {"GET"}
    assert len(double.requests) == api.counters.calls - calls_before
    assert len(double.requests) == 1 + len(apply.TENANT_KINDS) + len(apply.GATEWAY_KINDS)
    assert {k: o["metadata"]["resourceVersion"] for k, o in double.objects.items()} == versions


def test_a_change_applies_only_what_differs(api, double, case):
    reconcile(api, case)
    deployment_key = ("Deployment", "gantry-acme", "envoy-edge")
    generation = double.objects[deployment_key]["metadata"]["generation"]
    uid = double.objects[deployment_key]["metadata"]["uid"]
    cluster, tenant, gateway = case
    double.requests.clear()
    result = reconcile(api, case, replace(gateway, replicas=3))
    # Three replicas: the Deployment changes and a PodDisruptionBudget appears; nothing else.
    assert result.applied == [
        "Deployment gantry-acme/envoy-edge",
        "PodDisruptionBudget gantry-acme/envoy-edge",
    ]
    deployment = double.objects[deployment_key]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["generation"] == generation + 1
    assert deployment["metadata"]["uid"] == uid  # updated in place, not recreated
    assert len(double.writes()) == 2


def test_objects_no_longer_wanted_are_pruned(api, double, case):
    cluster, tenant, gateway = case
    scaled = replace(gateway, replicas=2, autoscaling=Autoscaling(2, 6))
    reconcile(api, case, scaled)
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget"} <= set(double.kinds_in("gantry-acme"))
    result = reconcile(api, case, replace(gateway, replicas=1))
    assert sorted(result.pruned) == [
        "HorizontalPodAutoscaler gantry-acme/envoy-edge",
        "PodDisruptionBudget gantry-acme/envoy-edge",
    ]
    assert double.kinds_in("gantry-acme") == sorted(TENANT_KINDS + GATEWAY_KINDS)
    assert double.objects[("Deployment", "gantry-acme", "envoy-edge")]["spec"]["replicas"] == 1


def test_pruning_leaves_other_gateways_and_foreign_objects_alone(api, double, case):
    cluster, tenant, gateway = case
    reconcile(api, case)
    other = replace(gateway, name="other", replicas=2)
    reconcile(api, case, other)
    double.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "someone-elses", "namespace": "gantry-acme", "labels": {}},
        }
    )
    result = reconcile(api, case)  # the first gateway again
    assert result.pruned == [] and result.applied == []
    assert ("Deployment", "gantry-acme", "envoy-other") in double.objects
    assert ("Secret", "gantry-acme", "someone-elses") in double.objects


def test_deleting_a_gateway_removes_its_objects_and_the_last_one_the_namespace(api, double, case):
    cluster, tenant, gateway = case
    reconcile(api, case)
    reconcile(api, case, replace(gateway, name="other"))
    deleted = apply.delete_gateway(api, "acme", "edge")
    assert len(deleted) == 4 and "Namespace gantry-acme" not in deleted
    assert not [k for k in double.objects if k[2] == "envoy-edge"]
    assert ("Deployment", "gantry-acme", "envoy-other") in double.objects
    deleted = apply.delete_gateway(api, "acme", "other")
    assert deleted[-1] == "Namespace gantry-acme"
    assert [k for k in double.objects if k[0] != "Node"] == []
    assert apply.delete_gateway(api, "acme", "other") == []  # already gone: nothing to do


def test_status_reports_replicas_and_listener_urls(api, double, case):
    cluster, tenant, gateway = case
    double.ready_delay = 60
    reconcile(api, case)
    status = read_status(api, gateway)
    assert status.phase == "Pending" and status.available_replicas == 0
    assert status.urls == {}  # the address exists, but nothing answers there yet
    assert status.conditions[0]["status"] == "False"
    double.ready_delay = 0
    status = read_status(api, gateway)
    assert status.phase == "Ready" and status.available_replicas == 1
    assert status.urls == {"http": f"http://{LOAD_BALANCER_IP}"}
    assert status.conditions[0] == {
        "type": "Ready", "status": "True", "reason": "Available",
        "message": "1/1 replicas available",
    }  # fmt: skip


def test_node_port_urls_name_a_node_and_its_port(api, double):
    cluster, tenant, gateway = load("three-replicas-https-node-port")
    apply.reconcile(api, tenant, gateway, cluster)
    status = read_status(api, gateway)
    service = double.objects[("Service", "gantry-globex", "envoy-public-api")]
    node_ports = {p["port"]: p["nodePort"] for p in service["spec"]["ports"]}
    assert status.urls == {
        "plain-http-redirects": f"http://{NODE_ADDRESS}:{node_ports[80]}",
        "shop": f"https://{NODE_ADDRESS}:{node_ports[443]}",
        "admin-portal": f"https://{NODE_ADDRESS}:{node_ports[443]}",
    }


def test_a_missing_deployment_is_pending(api, case):
    assert read_status(api, case[2]).phase == "Pending"


def test_server_errors_and_conflicts_are_retried_until_they_converge(api, double, case):
    double.fail("PATCH", "/deployments/", 500, times=2)
    double.fail("PATCH", "/serviceaccounts/", 409, times=1)
    double.fail("GET", "/services", 503, times=1)
    result = reconcile(api, case)
    assert len(result.applied) == 8
    assert api.counters.retries == 4
    assert double.kinds_in("gantry-acme") == sorted(TENANT_KINDS + GATEWAY_KINDS)
    assert reconcile(api, case).applied == []


def test_a_timeout_after_the_work_is_retried_without_duplicates(warm, double, case):
    api = make_api(double, timeout=(1, 0.3))
    double.stall("PATCH", "/deployments/", seconds=0.8, times=1, after=True)
    result = reconcile(api, case)
    assert len(result.applied) == 8 and api.counters.retries == 1
    deployments = [k for k in double.objects if k[0] == "Deployment"]
    assert deployments == [("Deployment", "gantry-acme", "envoy-edge")]
    # The retried apply found its own earlier write: nothing changed the second time.
    assert double.objects[deployments[0]]["metadata"]["generation"] == 1


def test_a_timeout_before_the_work_is_retried(warm, double, case):
    api = make_api(double, timeout=(1, 0.3))
    double.stall("PATCH", "/services/", seconds=0.8, times=2, after=False)
    assert len(reconcile(api, case).applied) == 8
    assert api.counters.retries == 2


def test_retries_give_up_with_the_last_error(api, double, case):
    double.fail("PATCH", "/namespaces/gantry-acme", 503, times=100)
    with pytest.raises(KubernetesError) as caught:
        reconcile(api, case)
    assert caught.value.status == 503 and "injected 503" in str(caught.value)
    assert api.counters.retries == 5


def test_forbidden_is_not_retried_and_carries_the_message(api, double, case):
    double.fail("PATCH", "/namespaces/gantry-acme", 403, times=1)
    with pytest.raises(KubernetesError) as caught:
        reconcile(api, case)
    assert caught.value.status == 403 and api.counters.retries == 0
    assert str(caught.value).startswith("Namespace gantry-acme: injected 403")


def test_an_invalid_object_is_refused_with_the_servers_message(api, double, case):
    cluster, tenant, gateway = case
    reconcile(api, case)
    bad = replace(gateway, name="bad", listeners=(replace(gateway.listeners[0], port=70000),))
    with pytest.raises(KubernetesError) as caught:
        reconcile(api, case, bad)
    error = caught.value
    assert error.status == 422 and api.counters.retries == 0
    assert "Deployment gantry-acme/envoy-bad" in str(error) and "65535" in error.api_message


def test_the_double_refuses_what_the_schemas_refuse(api, double, case):
    reconcile(api, case)
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "x", "namespace": "gantry-acme"},
        "automountToken": False,  # a typo of automountServiceAccountToken
    }
    with pytest.raises(KubernetesError) as caught:
        api.apply(account)
    assert caught.value.status == 422 and "automountToken" in caught.value.api_message
    assert ("ServiceAccount", "gantry-acme", "x") not in double.objects


def test_applying_into_a_missing_namespace_is_a_404(api, double, case):
    cluster, tenant, gateway = case
    from provisioning.runtimes.kubernetes.render import render_gateway

    with pytest.raises(KubernetesError) as caught:
        api.apply(render_gateway(gateway, cluster)[0])
    assert caught.value.status == 404 and 'namespaces "gantry-acme" not found' in str(caught.value)


def test_turning_autoscaling_on_hands_the_replica_count_over_without_a_dip(api, double, case):
    cluster, tenant, gateway = case
    key = ("Deployment", "gantry-acme", "envoy-edge")
    reconcile(api, case, replace(gateway, replicas=4))
    scaled = replace(gateway, replicas=4, autoscaling=Autoscaling(2, 8))
    reconcile(api, case, scaled)
    # Gantry stopped applying `replicas`; had nobody else owned it, it would fall back to 1.
    assert double.objects[key]["spec"]["replicas"] == 4
    double.scale("gantry-acme", "envoy-edge", 6, manager="horizontal-pod-autoscaler")
    writes = len(double.writes())
    assert reconcile(api, case, scaled).applied == []
    assert len(double.writes()) == writes
    reconcile(api, case, replace(scaled, vcpu=2, memory_gib=4))  # another change
    assert double.objects[key]["spec"]["replicas"] == 6  # the HPA's count stands
    reconcile(api, case, replace(gateway, replicas=3))  # autoscaling off: the spec's again
    assert double.objects[key]["spec"]["replicas"] == 3


def test_a_namespace_still_terminating_is_waited_for(api, double, case):
    message = (
        'serviceaccounts "envoy-edge" is forbidden: unable to create new content in namespace '
    )
    double.fail("PATCH", "/serviceaccounts/", 403, times=2, message=message + "gantry-acme because "
                "it is being terminated", cause="NamespaceTerminating")  # fmt: skip
    assert len(reconcile(api, case).applied) == 8
    assert api.counters.retries == 2
