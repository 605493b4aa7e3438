"""TCP and TLS listeners on the local runtime end to end: the real runtime agent and xDS
server run the gateway's Envoy, the listeners get host ports and ``tcp://``/``tls://`` URLs,
and connections reach the TCPRoute's and the TLSRoute's backends through them."""

import pytest

from gateways import services
from gateways.models import Gateway
from provisioning.models import LocalPort
from provisioning.reconcile import reconcile
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.provisioning.certs import self_signed
from tests.provisioning.test_tcp_tls_routes import EchoServer, talk, tls_talk
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LISTENERS = [
    {"name": "db", "protocol": "TCP", "port": 5432},
    {"name": "tls", "protocol": "TLS", "port": 443, "tls": {"mode": "Passthrough"}},
]


def test_tcp_and_tls_listeners_answer_on_their_host_ports(stack):
    echo, site = EchoServer("db"), EchoServer("site", self_signed(["a.example"]))
    try:
        tenant = make_org("acme").tenant
        gateway = services.create_gateway(ACTOR, tenant, "edge", {"listeners": LISTENERS})
        services.create_backend(ACTOR, tenant, "db", echo.backend())
        services.create_backend(ACTOR, tenant, "site", site.backend())
        services.create_tcp_route(ACTOR, gateway, "pg",
                                  {"rules": [{"backendRefs": [{"name": "db"}]}]})  # fmt: skip
        tls_spec = {"hostnames": ["a.example"], "rules": [{"backendRefs": [{"name": "site"}]}]}
        services.create_tls_route(ACTOR, gateway, "a", tls_spec)
        assert reconcile(gateway.pk).result == "created"
        wait_for(
            lambda: Gateway.objects.get(pk=gateway.pk).status.get("phase") == "Ready",
            timeout=30, interval=0.05, message=lambda: f"Ready\n{stack.logs()}",
        )  # fmt: skip
        host_ports = dict(
            LocalPort.objects.filter(gateway=gateway).values_list("listener_port", "host_port")
        )
        urls = {entry["name"]: entry["url"]
                for entry in Gateway.objects.get(pk=gateway.pk).status["listeners"]}  # fmt: skip
        assert urls == {"db": f"tcp://127.0.0.1:{host_ports[5432]}",
                        "tls": f"tls://127.0.0.1:{host_ports[443]}"}  # fmt: skip
        assert talk(host_ports[5432], "select 1") == "db:select 1\n"
        assert tls_talk(host_ports[443], "a.example") == (["a.example"], "site:hello\n")
    finally:
        echo.close()
        site.close()
