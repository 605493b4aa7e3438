"""The discovery watcher against the project's API-server double, through the official client:
slices created, modified and deleted change the rows (only when their endpoints change); a
410 makes it list again; unrelated namespaces and Services are never asked for; an
unreachable API server keeps the last known endpoints; Services no backend may use are not
watched and their rows go."""

import pytest
import yaml

from gateways import services
from provisioning.discovery import grants
from provisioning.discovery.watcher import DiscoveryWatcher
from provisioning.models import DiscoveredEndpoints, DiscoveryGrant
from tests.discovery.conftest import ACTOR
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.xds.harness import wait_for

CART = {"namespace": "shop", "name": "cart", "port": 80}


def kubeconfig(host: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "double", "cluster": {"server": host}}],
        "users": [{"name": "gantry", "user": {"token": "operator-token"}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "gantry"}}],
        "current-context": "double",
    })  # fmt: skip


def service(name="cart", namespace="shop", ports=(("http", 80, 8080),)) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [
            {"name": n, "port": p, "targetPort": t, "protocol": "TCP"} for n, p, t in ports]},
    }  # fmt: skip


def endpoint_slice(name, addresses, service_name="cart", namespace="shop", port=8080,
                   ready=True, serving=None, terminating=None) -> dict:  # fmt: skip
    conditions = {"ready": ready}
    if serving is not None:
        conditions["serving"] = serving
    if terminating is not None:
        conditions["terminating"] = terminating
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": conditions} for a in addresses],
    }  # fmt: skip


@pytest.fixture
def double():
    server = ApiServerDouble().start()
    for namespace in ("shop", "billing"):
        server.upsert({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    server.upsert(service())
    yield server
    server.stop()


@pytest.fixture
def setup(org, other_org, granted, double):
    for cluster in granted.values():
        cluster.kubeconfig = kubeconfig(double.host)
        cluster.save()
    services.create_backend(ACTOR, org.tenant, "cart", {"kubernetesService": CART})
    return granted


@pytest.fixture
def watcher():
    made = DiscoveryWatcher(refresh=0.1, watch_seconds=1)
    yield made
    made.stop()


def rows(port=80, name="cart"):
    row = DiscoveredEndpoints.objects.filter(service=name, port=port).first()
    if row is None:
        return None
    return [(e["address"], e["port"], e["ready"], e["serving"], e["terminating"])
            for e in row.endpoints]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_slices_created_modified_and_deleted_change_the_rows(setup, double, watcher):
    double.upsert(endpoint_slice("cart-a", ["10.1.0.1", "10.1.0.2"]))
    double.upsert(endpoint_slice("other", ["10.9.9.9"], service_name="other"))
    watcher.refresh_once()
    wait_for(lambda: rows() is not None, message="the first rows")
    assert rows() == [("10.1.0.1", 8080, True, True, False), ("10.1.0.2", 8080, True, True, False)]
    version = DiscoveredEndpoints.objects.get().version

    double.upsert(endpoint_slice("cart-b", ["10.1.0.3"]))  # a new slice
    wait_for(lambda: len(rows()) == 3, message="the new slice")
    double.upsert(endpoint_slice("cart-a", ["10.1.0.1", "10.1.0.2"], ready=False, serving=True,
                                 terminating=True))  # fmt: skip
    wait_for(lambda: rows()[0] == ("10.1.0.1", 8080, False, True, True), message="terminating")
    double.remove("EndpointSlice", "shop", "cart-a")
    wait_for(lambda: rows() == [("10.1.0.3", 8080, True, True, False)], message="the removal")
    assert DiscoveredEndpoints.objects.get().version != version

    # the unrelated Service and the other namespace were never asked for
    watched = [path for _, path in double.requests if "endpointslices" in path]
    assert watched and all("/namespaces/shop/" in p for p in watched)
    assert all("service-name%3Dcart" in p or "service-name=cart" in p for p in watched)
    assert DiscoveredEndpoints.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_rows_are_written_only_when_the_endpoints_change(setup, double, watcher):
    double.upsert(endpoint_slice("cart-a", ["10.1.0.1"]))
    watcher.refresh_once()
    wait_for(lambda: rows() is not None, message="the first rows")
    before = DiscoveredEndpoints.objects.get().updated_at
    # a slice change that changes no endpoint of port 80 (a label): no write
    same = endpoint_slice("cart-a", ["10.1.0.1"])
    same["metadata"]["labels"]["team"] = "checkout"
    double.upsert(same)
    double.upsert(endpoint_slice("cart-b", ["10.1.0.2"]))
    wait_for(lambda: len(rows()) == 2, message="the next change")
    assert DiscoveredEndpoints.objects.get().updated_at > before


@pytest.mark.django_db(transaction=True)
def test_a_410_makes_it_list_again(setup, double, watcher):
    double.upsert(endpoint_slice("cart-a", ["10.1.0.1"]))
    watcher.refresh_once()
    wait_for(lambda: rows() is not None, message="the first rows")
    (watch,) = watcher.watches.values()
    lists = watch.lists
    # a change, and the history compacted past it, before the watch can see the change: the
    # watch's version is now too old (one step under the double's lock, or the watch may read
    # the event first and never be told 410)
    with double.lock:
        double.upsert(endpoint_slice("cart-b", ["10.1.0.2"]))
        double.compact()
    wait_for(lambda: watch.lists > lists, timeout=10, message="a new list")
    wait_for(lambda: len(rows()) == 2, message="the rows after the new list")


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_api_server_keeps_the_last_endpoints(setup, double, watcher):
    double.upsert(endpoint_slice("cart-a", ["10.1.0.1"]))
    watcher.refresh_once()
    wait_for(lambda: rows() is not None, message="the first rows")
    (watch,) = watcher.watches.values()
    double.fail("GET", "/apis/discovery.k8s.io", 503, times=1000)
    double.fail("GET", "/api/v1/namespaces/shop/services", 503, times=1000)
    double.compact()  # the running watch ends: every new request now fails
    wait_for(lambda: watch.errors >= 2, timeout=15, message="failing requests")
    assert rows() == [("10.1.0.1", 8080, True, True, False)]  # kept
    double.faults.clear()
    double.upsert(endpoint_slice("cart-b", ["10.1.0.2"]))
    wait_for(lambda: len(rows()) == 2, timeout=20, message="recovery")


@pytest.mark.django_db(transaction=True)
def test_a_deleted_service_has_no_endpoints(setup, double, watcher):
    double.upsert(endpoint_slice("cart-a", ["10.1.0.1"]))
    watcher.refresh_once()
    wait_for(lambda: rows() is not None, message="the first rows")
    double.remove("Service", "shop", "cart")
    double.remove("EndpointSlice", "shop", "cart-a")
    wait_for(lambda: rows() == [], message="no endpoints")
    assert DiscoveredEndpoints.objects.get().message


@pytest.mark.django_db(transaction=True)
def test_only_granted_services_are_watched_and_revoked_ones_are_forgotten(
    setup, double, watcher, org, other_org
):
    double.upsert(endpoint_slice("cart-a", ["10.1.0.1"]))
    double.upsert(service("ledger", "billing"))
    double.upsert(endpoint_slice("ledger-a", ["10.2.0.1"], "ledger", "billing"))
    # globex names its own granted Service; a row stored for acme earlier (under a grant since
    # revoked) does not make acme's backend watched
    services.create_backend(ACTOR, other_org.tenant, "ledger",
                            {"kubernetesService": {"namespace": "billing", "name": "ledger",
                                                   "port": 80}})  # fmt: skip
    watcher.refresh_once()
    wait_for(lambda: rows(name="ledger") is not None and rows() is not None, message="rows")
    assert len(watcher.watches) == 2
    grant = DiscoveryGrant.objects.get(tenant=org.tenant, cluster__name="prod", namespace="shop")
    grants.revoke_grant(ACTOR, grant)
    watcher.refresh_once()
    assert [key[2] for key in watcher.watches] == ["ledger"]
    assert rows() is None  # acme's Service is no longer watched, its rows are gone


@pytest.mark.django_db(transaction=True)
def test_the_command_runs_the_watcher_and_stops_on_sigterm(setup, double, tmp_path):
    import os
    import sys

    from tests.runtime.stack import Process, database_url

    double.upsert(endpoint_slice("cart-a", ["10.1.0.1"]))
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1",
           "GANTRY_DISCOVERY_REFRESH_SECONDS": "0.2",
           "GANTRY_DISCOVERY_WATCH_SECONDS": "1"}  # fmt: skip
    heartbeat = tmp_path / "alive"
    command = [sys.executable, "manage.py", "discovery_watcher", "--heartbeat", str(heartbeat)]
    process = Process("discovery", command, env, tmp_path / "discovery.log").start()
    try:
        wait_for(lambda: rows() is not None, timeout=20, message=process.output)
        double.upsert(endpoint_slice("cart-b", ["10.1.0.2"]))
        wait_for(lambda: len(rows()) == 2, timeout=10, message=process.output)
        touched = heartbeat.stat().st_mtime
        wait_for(lambda: heartbeat.stat().st_mtime > touched, message="a new heartbeat")
    finally:
        assert process.stop(timeout=15) == 0, process.output()
    assert "discovery: stopped" in process.output()
