"""The driver from the database to the cluster (the API server test double): the cluster the
plan allows, no xDS token on the cluster, status, refusals as a Failed status, pods' tokens
revoked when the pods go."""

from datetime import timedelta
from io import StringIO

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.utils import timezone
from kubernetes import client as k8s

from gateways import services as gateway_services
from provisioning.models import KubernetesCluster, PodCredential
from provisioning.runtimes.kubernetes import driver, names
from provisioning.runtimes.kubernetes.client import Backoff, KubeApi, KubernetesError
from provisioning.xds.credentials import identify, issue_pod_token
from tests.kubernetes.apiserver_double import LOAD_BALANCER_IP, ApiServerDouble
from tests.kubernetes.conftest import ACTOR


@pytest.fixture
def double():
    server = ApiServerDouble().start()
    yield server
    server.stop()


@pytest.fixture
def cluster(k8s_cluster, double):
    """The registered cluster's kubeconfig points at the double."""
    k8s_cluster.kubeconfig = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": double.host}}],
            "users": [{"name": "gantry", "user": {"token": "operator-token"}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "gantry"}}],
            "current-context": "double",
        }
    )
    k8s_cluster.save()
    return k8s_cluster


def test_a_gateway_converges_and_no_object_holds_a_token(k8s_gateway, cluster, double):
    result = driver.converge(k8s_gateway)
    assert result.phase == "Ready" and result.available_replicas == 2
    assert result.urls == {"http": f"http://{LOAD_BALANCER_IP}"}
    assert not [key for key in double.objects if key[0] == "Secret"]
    assert "gxds_" not in str(double.objects)
    # Every request carried the kubeconfig's credentials (the double records paths only,
    # so the token is checked where the client builds its headers).
    assert (
        driver.api_for(cluster)
        .client.configuration.api_key["authorization"]
        .endswith("operator-token")
    )


def test_a_second_converge_writes_nothing(k8s_gateway, cluster, double):
    driver.converge(k8s_gateway)
    double.requests.clear()
    assert driver.converge(k8s_gateway).phase == "Ready"
    assert double.writes() == []


def test_an_old_bootstrap_secret_is_pruned(k8s_gateway, cluster, double):
    """A gateway applied before pods enrolled had a Secret with a gateway-wide token."""
    driver.converge(k8s_gateway)
    labels = names.gateway_labels("acme", "edge")
    double.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "envoy-edge",
                "namespace": "gantry-acme", "labels": labels}, "data": {}})  # fmt: skip
    driver.converge(k8s_gateway)
    assert ("Secret", "gantry-acme", "envoy-edge") not in double.objects


def test_the_tokens_of_pods_that_are_gone_or_terminating_are_revoked(k8s_gateway, cluster, double):
    driver.converge(k8s_gateway)
    labels = names.gateway_labels("acme", "edge")
    uids = {n: double.add_pod("gantry-acme", n, labels, "envoy-edge") for n in ("p1", "p2", "p3")}
    tokens = {name: issue_pod_token(k8s_gateway, name, uid) for name, uid in uids.items()}
    PodCredential.objects.update(issued_at=timezone.now() - timedelta(minutes=1))
    tokens["gone"] = issue_pod_token(k8s_gateway, "gone", "uid-gone")
    PodCredential.objects.filter(pod_name="gone").update(
        issued_at=timezone.now() - timedelta(minutes=1)
    )
    double.delete("Pod", "gantry-acme", "p2")
    double.terminate_pod("gantry-acme", "p3")
    driver.converge(k8s_gateway)
    assert identify(tokens["p1"]) is not None
    assert identify(tokens["p2"]) is None and identify(tokens["p3"]) is None
    assert identify(tokens["gone"]) is None
    # A pod enrolled just now may be missing from the list the converge reads: it is spared.
    fresh = issue_pod_token(k8s_gateway, "p4", "uid-4")
    driver.converge(k8s_gateway)
    assert identify(fresh) is not None
    # Removing the gateway from its cluster revokes every token of its pods.
    driver.remove("acme", "edge", cluster)
    assert not PodCredential.objects.exists()


def test_a_spec_change_reaches_the_cluster(k8s_gateway, cluster, double):
    driver.converge(k8s_gateway)
    gateway_services.patch_gateway_spec(ACTOR, k8s_gateway, {"replicas": 4})
    k8s_gateway.refresh_from_db()
    result = driver.converge(k8s_gateway)
    assert double.objects[("Deployment", "gantry-acme", "envoy-edge")]["spec"]["replicas"] == 4
    assert result.desired_replicas == 4


def test_a_refusal_becomes_a_failed_status_with_the_servers_message(k8s_gateway, cluster, double):
    double.fail("PATCH", "/namespaces/gantry-acme", 403)
    result = driver.converge(k8s_gateway)
    assert result.phase == "Failed"
    assert result.conditions[0]["reason"] == "KubernetesError"
    assert "Namespace gantry-acme: injected 403" in result.message


def test_a_plan_without_a_cluster_fails_plainly(k8s_gateway, cluster):
    KubernetesCluster.objects.all().delete()
    result = driver.converge(k8s_gateway)
    assert result.phase == "Failed" and result.conditions[0]["reason"] == "NoCluster"


def test_removing_the_last_gateway_removes_the_namespace(k8s_gateway, cluster, double):
    driver.converge(k8s_gateway)
    deleted = driver.remove("acme", "edge", cluster)
    assert deleted[-1] == "Namespace gantry-acme"
    assert not [key for key in double.objects if key[1] == "gantry-acme"]


def test_the_runtime_status_feeds_the_gateways_ready_condition_and_urls(
    k8s_gateway, cluster, double
):
    from provisioning.runtimes.kubernetes.gateway_status import store_runtime_status

    double.ready_delay = 60
    assert store_runtime_status(k8s_gateway, driver.converge(k8s_gateway))
    k8s_gateway.refresh_from_db()
    waiting = next(c for c in k8s_gateway.status["conditions"] if c["type"] == "Ready")
    assert waiting["status"] == "False"
    assert "url" not in k8s_gateway.status["listeners"][0]
    double.ready_delay = 0
    assert store_runtime_status(k8s_gateway, driver.converge(k8s_gateway))
    k8s_gateway.refresh_from_db()
    status = k8s_gateway.status
    # The phase counts replicas that ACKed the current revision over xDS (none here).
    assert status["phase"] == "Pending"
    assert status["listeners"][0]["url"] == f"http://{LOAD_BALANCER_IP}"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Available")
    assert {c["type"] for c in status["conditions"]} >= {"Accepted", "Ready"}  # others kept
    version = k8s_gateway.resource_version
    assert not store_runtime_status(k8s_gateway, driver.converge(k8s_gateway))
    k8s_gateway.refresh_from_db()
    assert k8s_gateway.resource_version == version


def test_a_converge_with_nothing_to_change_only_lists(k8s_gateway, cluster, double):
    driver.converge(k8s_gateway)
    double.requests.clear()
    result = driver.converge(k8s_gateway)
    assert result.phase == "Ready" and result.urls  # status from what the lists returned
    assert {method for method, _ in double.requests} == {"GET"}
    assert all("labelSelector=" in path for _, path in double.requests)


def test_a_broken_kubeconfig_is_a_failed_status(k8s_gateway, cluster):
    KubernetesCluster.objects.filter(pk=cluster.pk).update(kubeconfig="clusters: [")
    result = driver.converge(k8s_gateway)
    assert result.phase == "Failed" and result.conditions[0]["reason"] == "InvalidCluster"
    assert "prod-eu" in result.message


def test_an_error_that_outlasts_the_retries_is_raised_for_a_later_retry(
    k8s_gateway, cluster, double
):
    api = KubeApi(k8s.ApiClient(driver.configuration_for(cluster)), Backoff(3, 0.01, 0.02))
    double.fail("PATCH", "/deployments/", 503, times=100)
    with pytest.raises(KubernetesError) as caught:
        driver.converge(k8s_gateway, api=api)
    assert caught.value.transient and caught.value.status == 503
    assert api.counters.retries == 2


def test_the_converge_command_applies_and_stores_the_status(k8s_gateway, cluster, double):
    out = StringIO()
    call_command("converge_kubernetes", "--tenant", "acme", "--gateway", "edge", stdout=out)
    assert "acme/edge: Ready — 2/2 replicas available" in out.getvalue()
    assert f"http: http://{LOAD_BALANCER_IP}" in out.getvalue()
    k8s_gateway.refresh_from_db()
    ready = next(c for c in k8s_gateway.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Available")
    double.fail("PATCH", "/namespaces/gantry-acme", 403)
    with pytest.raises(CommandError, match="injected 403"):
        call_command(
            "converge_kubernetes", "--tenant", "acme", "--gateway", "edge", "--force", stdout=out
        )


def test_the_converge_command_refuses_local_gateways(org, cluster):
    gateway_services.create_gateway(ACTOR, org.tenant, "local-one", {})
    with pytest.raises(CommandError, match="does not have runtime kubernetes"):
        call_command("converge_kubernetes", "--tenant", "acme", "--gateway", "local-one")
    with pytest.raises(CommandError, match="no gateway"):
        call_command("converge_kubernetes", "--tenant", "acme", "--gateway", "nope")


def test_reconcile_applies_a_kubernetes_gateway_and_deleting_it_removes_its_objects(
    k8s_gateway, cluster, double, monkeypatch, django_capture_on_commit_callbacks
):
    from provisioning import tasks
    from provisioning.models import GatewayOperation
    from provisioning.reconcile import reconcile

    outcome = reconcile(k8s_gateway.pk)
    assert outcome.result == "created" and "cluster: " in outcome.message
    assert ("Deployment", "gantry-acme", "envoy-edge") in double.objects
    k8s_gateway.refresh_from_db()
    assert k8s_gateway.status["listeners"][0]["url"] == f"http://{LOAD_BALANCER_IP}"
    assert "runtime" in GatewayOperation.objects.filter(gateway=k8s_gateway).first().timings

    removals = []
    monkeypatch.setattr(
        tasks.remove_kubernetes_gateway, "apply_async", lambda args, **kw: removals.append(args)
    )
    with django_capture_on_commit_callbacks(execute=True):
        gateway_services.delete_gateway(ACTOR, k8s_gateway)
    assert removals == [("acme", "edge", cluster.pk)]
    tasks.remove_kubernetes_gateway("acme", "edge", cluster.pk)  # what the worker runs
    assert not [key for key in double.objects if key[1] == "gantry-acme"]


def test_autoscaling_set_through_the_api_spec_becomes_an_hpa_on_the_cluster(
    k8s_gateway, cluster, double
):
    from provisioning.reconcile import reconcile

    reconcile(k8s_gateway.pk)
    assert ("HorizontalPodAutoscaler", "gantry-acme", "envoy-edge") not in double.objects
    scaling = {"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}
    k8s_gateway = gateway_services.patch_gateway_spec(ACTOR, k8s_gateway, {"autoscaling": scaling})
    reconcile(k8s_gateway.pk)
    hpa = double.objects[("HorizontalPodAutoscaler", "gantry-acme", "envoy-edge")]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    metric = hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
    assert metric == 60


def test_a_gateway_leaves_a_cluster_its_plan_no_longer_allows_and_leaves_kubernetes_cleanly(
    k8s_gateway, cluster, double, plan
):
    """Where a gateway was placed is remembered: it stays there while the plan allows it,
    moves (removed from the old cluster first) when not, and switching it to the local
    runtime removes its objects."""
    from provisioning.models import KubernetesPlacement
    from provisioning.reconcile import reconcile

    reconcile(k8s_gateway.pk)
    assert KubernetesPlacement.objects.get(gateway=k8s_gateway).cluster == cluster
    second = ApiServerDouble().start()
    try:
        kubeconfig = cluster.kubeconfig.replace(double.host, second.host)
        other = KubernetesCluster.objects.create(
            name="aaa-first-by-name", kubeconfig=kubeconfig, exposure="LoadBalancer",
            xds_address="xds.example", xds_port=18000,
        )  # fmt: skip
        other.plans.add(plan)
        reconcile(k8s_gateway.pk)  # the plan still allows the old cluster: it stays
        assert ("Deployment", "gantry-acme", "envoy-edge") not in second.objects
        cluster.plans.remove(plan)
        reconcile(k8s_gateway.pk)
        assert ("Deployment", "gantry-acme", "envoy-edge") in second.objects
        assert not [key for key in double.objects if key[1] == "gantry-acme"]
        assert KubernetesPlacement.objects.get(gateway=k8s_gateway).cluster == other

        gateway_services.patch_gateway_spec(ACTOR, k8s_gateway, {"runtime": "local"})
        outcome = reconcile(k8s_gateway.pk)
        assert "removed" in outcome.message
        assert not [key for key in second.objects if key[1] == "gantry-acme"]
        assert not KubernetesPlacement.objects.filter(gateway=k8s_gateway).exists()
        k8s_gateway.refresh_from_db()
        assert "Ready" not in {c["type"] for c in k8s_gateway.status["conditions"]}
    finally:
        second.stop()


def test_the_phase_needs_both_the_replicas_acks_and_the_clusters_availability(
    k8s_gateway, cluster, double
):
    from provisioning.reconcile import reconcile
    from provisioning.translate.types import CLUSTER, LISTENER, ROUTE_CONFIGURATION
    from provisioning.xds.replicas import record_ack, record_connection

    double.ready_delay = 60  # the Deployment is not available yet
    revision = reconcile(k8s_gateway.pk).revision
    for pod in ("envoy-edge-abc12", "envoy-edge-def34"):  # both replicas run the revision
        node = f"acme/edge/{pod}"
        record_connection("acme/edge", node, True, "test")
        for type_url in (CLUSTER, LISTENER, ROUTE_CONFIGURATION):
            record_ack("acme/edge", node, type_url, revision.content_hash, None)
    k8s_gateway.refresh_from_db()
    assert k8s_gateway.status["replicas"] == {"desired": 2, "ready": 2}
    # Replicas serve, but the cluster does not report the Deployment available: not Ready.
    assert k8s_gateway.status["phase"] == "Degraded"
    double.ready_delay = 0
    reconcile(k8s_gateway.pk)
    k8s_gateway.refresh_from_db()
    assert k8s_gateway.status["phase"] == "Ready"
