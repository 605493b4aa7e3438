"""A WebSocket through a gateway of the local runtime stays open across route changes: the real
xDS server and runtime agent (``stack``) push each change to the real Envoy replica while a
client keeps talking to an echo server through it, and nothing it sent is lost."""

import pytest
import requests
import websocket

from gateways import services
from gateways.models import Gateway
from provisioning.reconcile import reconcile
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.provisioning.test_websocket import EchoServer
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
CHANGES = 12


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.close()


def test_a_websocket_stays_open_while_routes_change(stack, echo):
    org = make_org("acme")
    services.create_backend(ACTOR, org.tenant, "echo", {
        "endpoints": [{"ip": {"address": "127.0.0.1", "port": echo.port}}]})  # fmt: skip
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {"replicas": 1})
    route = services.create_route(ACTOR, gateway, "ws",
                                  {"rules": [{"backendRefs": [{"name": "echo"}]}]})  # fmt: skip
    reconcile(gateway.pk)
    wait_for(lambda: Gateway.objects.get(pk=gateway.pk).status.get("phase") == "Ready",
             timeout=30, interval=0.05, message=stack.logs)  # fmt: skip
    url = Gateway.objects.get(pk=gateway.pk).status["listeners"][0]["url"]

    client = websocket.create_connection(url.replace("http://", "ws://") + "ws", timeout=5)
    try:
        client.send("before")
        assert client.recv() == "echo:before"
        for index in range(CHANGES):
            # Another route, answered by Envoy itself once it is there (a redirect) ...
            moved = {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/moved"}}
            services.create_route(ACTOR, gateway, f"r{index}", {"rules": [{
                "matches": [{"path": {"type": "Exact", "value": f"/r{index}"}}],
                "filters": [{"type": "RequestRedirect", "requestRedirect": moved}]}]})  # fmt: skip
            # ... and every third change, the WebSocket's own route (a header it adds).
            if index % 3 == 2:
                route.refresh_from_db()
                services.patch_route_spec(ACTOR, route, {"rules": [{
                    "backendRefs": [{"name": "echo"}],
                    "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                        "set": [{"name": "x-change", "value": str(index)}]}}]}]})  # fmt: skip
            reconcile(gateway.pk)
            wait_for(
                lambda i=index: requests.get(f"{url}r{i}", allow_redirects=False,
                                             timeout=5).status_code == 302,
                timeout=30, interval=0.05, message=f"route r{index} served",
            )  # fmt: skip
            client.send(f"after change {index}")
            assert client.recv() == f"echo:after change {index}"
        assert client.connected
    finally:
        client.close()
    # The new connections see the last change to the WebSocket's own route.
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200 and answer.text == "plain"
