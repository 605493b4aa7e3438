"""TCP and TLS listeners on Kubernetes: each listener port is a Service port and a
NetworkPolicy ingress port (TCP, whatever the listener protocol), and the listeners' URLs say
``tcp://`` and ``tls://`` with their port."""

from provisioning.runtimes.kubernetes.render import render_gateway
from provisioning.runtimes.kubernetes.status import listener_urls
from tests.kubernetes.cases import load

CASE = "tcp-and-tls-listeners"


def test_every_listener_port_is_exposed_and_allowed_in():
    cluster, _, gateway = load(CASE)
    objects = {obj["kind"]: obj for obj in render_gateway(gateway, cluster)}
    service_ports = [(p["port"], p["targetPort"], p["protocol"])
                     for p in objects["Service"]["spec"]["ports"]]  # fmt: skip
    assert service_ports == [(80, 80, "TCP"), (443, 443, "TCP"), (5432, 5432, "TCP")]
    policies = [obj for obj in render_gateway(gateway, cluster) if obj["kind"] == "NetworkPolicy"]
    ingress = {
        port["port"]
        for policy in policies
        for rule in policy["spec"].get("ingress", [])
        for port in rule.get("ports", [])
    }
    assert {80, 443, 5432} <= ingress


def test_listener_urls_name_the_protocol_and_port():
    _, _, gateway = load(CASE)
    service = {"spec": {"type": "LoadBalancer", "ports": []},
               "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}  # fmt: skip
    assert listener_urls(gateway, service, None) == {
        "http": "http://203.0.113.7",
        "postgres": "tcp://203.0.113.7:5432",
        "tls-a": "tls://203.0.113.7:443",
        "tls-b": "tls://203.0.113.7:443",
    }
