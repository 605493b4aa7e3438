"""A dry run says what a change would do to the Envoys serving a gateway: hot (routes,
clusters, endpoints only) or a listener drained, and how many open connections that listener
holds now, read from the replica's own Envoy (admin on its Unix socket, as the local runtime
runs it). Nothing is written."""

import http.client
import json
import subprocess
import time

import pytest
from django.conf import settings

from gateways import services
from provisioning import tasks
from provisioning.envoy import envoy_binary
from provisioning.models import ConfigRevision, LocalPort, LocalReplica
from provisioning.reconcile import reconcile
from provisioning.runtimes.local.admin import admin_request
from provisioning.xds.bootstrap import envoy_bootstrap
from provisioning.xds.credentials import issue_replica_token
from tenants.roles import Role
from tests.api.test_declarative import post
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.xds.harness import wait_for
from tests.xds.test_db_envoy import serve

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def route(value: str) -> dict:
    header = {"set": [{"name": "x-version", "value": value}]}
    modifier = {"type": "ResponseHeaderModifier", "responseHeaderModifier": header}
    return {"rules": [{"backendRefs": [{"name": "app"}], "filters": [modifier]}]}


def documents(version: str, idle_timeout: str | None = None) -> list[dict]:
    docs = [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": "web"}, "spec": {"parentRefs": [{"name": "edge"}], **route(version)}},
    ]  # fmt: skip
    if idle_timeout:
        docs.append({
            "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "ClientTrafficPolicy",
            "metadata": {"name": "idle"},
            "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                     "name": "edge"}],
                     "timeout": {"http": {"idleTimeout": idle_timeout}}},
        })  # fmt: skip
    return docs


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test provides it)")
def test_a_dry_run_says_hot_or_which_listener_drains_and_the_connections_it_holds(
    loop_thread, upstream, tmp_path, monkeypatch
):
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    org = make_org("acme")
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    services.create_backend(ACTOR, org.tenant, "app", upstream.backend())
    services.create_route(ACTOR, gateway, "web", route("v1"))
    assert reconcile(gateway.pk).result == "created"
    port = LocalPort.objects.get(gateway=gateway, listener_port=80).host_port
    xds = serve(loop_thread, settings.REDIS_URL, poll_interval=60)
    socket = tmp_path / "admin-0.sock"
    bootstrap = envoy_bootstrap(
        gateway_key="acme/edge", replica=0, token=issue_replica_token(gateway, 0),
        xds_address="127.0.0.1", xds_port=xds.server.port, admin_socket=str(socket),
    )  # fmt: skip
    (tmp_path / "bootstrap.json").write_text(json.dumps(bootstrap))
    envoy = subprocess.Popen(
        [envoy_binary(), "--config-path", str(tmp_path / "bootstrap.json"),
         "--use-dynamic-base-id", "--concurrency", "1", "--log-path", str(tmp_path / "envoy.log")],
        cwd=tmp_path,  # its access log goes to access.log in its working directory
    )  # fmt: skip
    clients = []
    try:
        wait_for(lambda: socket.exists() and admin_request(str(socket), "GET", "/ready")[0] == 200,
                 timeout=30, message="Envoy ready")  # fmt: skip
        LocalReplica.objects.create(gateway=gateway, index=0, state="running",
                                    admin_socket=str(socket))  # fmt: skip
        for _ in range(3):  # three clients on keep-alive connections
            client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            client.request("GET", "/")
            answer = client.getresponse()
            answer.read()
            assert answer.getheader("x-version") == "v1"
            clients.append(client)
        revisions_before = ConfigRevision.objects.count()
        editor = org.client(Role.EDITOR)

        hot = post(editor, "acme", documents("v2"), content_type="application/json", dryRun="true")
        assert hot.status_code == 200, hot.content
        impact = hot.json()["impact"]["edge"]
        assert impact["hot"] is True and impact["drains"] == []
        assert impact["changes"]["routeConfigurations"]["changed"] == ["acme/edge/port/80"]
        assert impact["openConnections"] == 0

        time.sleep(0.1)
        drains = post(editor, "acme", documents("v1", idle_timeout="30s"),
                      content_type="application/json", dryRun="true")  # fmt: skip
        assert drains.status_code == 200, drains.content
        impact = drains.json()["impact"]["edge"]
        assert impact["hot"] is False
        assert impact["drains"] == [{"listener": "acme/edge/port/80", "reason": "changed"}]
        assert impact["openConnections"] == 3, impact

        # A dry run writes nothing: the same revision is served, the clients see v1.
        assert ConfigRevision.objects.count() == revisions_before
        clients[0].request("GET", "/")
        answer = clients[0].getresponse()
        answer.read()
        assert answer.getheader("x-version") == "v1"
    finally:
        for client in clients:
            client.close()
        envoy.terminate()
        envoy.wait(10)
        xds.stop()
