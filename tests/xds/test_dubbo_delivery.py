"""A Dubbo listener delivered the way every gateway's config is: services write the gateway and
its DubboRoute, a reconcile stores the revision, the xDS server (as ``manage.py xds_server``
runs it) serves it to a real Envoy over ADS, and Dubbo calls on the listener's host port reach
the route's backend; a route change is served without a restart."""

import pytest

from gateways import services
from gateways.models import Route
from provisioning import tasks
from provisioning.models import LocalPort
from provisioning.reconcile import reconcile
from provisioning.xds.credentials import issue_replica_token
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.provisioning.dubbo_server import OK, DubboClient, DubboServer
from tests.xds.harness import running_envoy, wait_for
from tests.xds.test_db_envoy import serve

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
GREETER = "org.apache.dubbo.samples.Greeter"


def spec(backend: str) -> dict:
    return {"rules": [{"matches": [{"service": GREETER}], "backendRefs": [{"name": backend}]}]}


def backend_of(port: int) -> str | None:
    try:
        with DubboClient(port, timeout=2) as client:
            answer = client.call(GREETER, "sayHello", "x")
    except OSError:
        return None
    return answer.backend if answer.status == OK else None


def test_a_dubbo_route_is_delivered_over_xds_and_changes_are_served(loop_thread, monkeypatch):
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    servers = {name: DubboServer(name) for name in ("a", "b")}
    xds = serve(loop_thread, None, poll_interval=0.5)
    try:
        tenant = make_org("acme").tenant
        listeners = [{"name": "rpc", "protocol": "Dubbo", "port": 20880}]
        gateway = services.create_gateway(ACTOR, tenant, "edge", {"listeners": listeners})
        for name, server in servers.items():
            services.create_backend(ACTOR, tenant, name, server.backend())
        services.create_dubbo_route(ACTOR, gateway, "greeter", spec("a"))
        assert reconcile(gateway.pk).result == "created"
        port = LocalPort.objects.get(gateway=gateway, listener_port=20880).host_port
        with running_envoy(xds.bootstrap(issue_replica_token(gateway, 0))):
            wait_for(lambda: backend_of(port) == "a", message="calls served by a")
            services.patch_route_spec(ACTOR, Route.objects.get(name="greeter"), spec("b"))
            assert reconcile(gateway.pk).result == "created"
            wait_for(lambda: backend_of(port) == "b", message="calls served by b")
    finally:
        xds.stop()
        for server in servers.values():
            server.close()
