"""EndpointSlices → endpoint rows → ClusterLoadAssignments: ports by name and number, only
ready endpoints get traffic (terminating ones drain), the egress policy applies even in a
granted namespace, and an ungranted namespace gets no endpoints. Pure."""

from gateways.egress import EgressPolicy
from provisioning.discovery.assignments import assignments, discovery_refs
from provisioning.discovery.endpoints import endpoints_of
from provisioning.ir.build import DesiredState, gateway_ir
from provisioning.translate import translate
from provisioning.xds.resources import to_any

SERVICE = {
    "metadata": {"name": "cart", "namespace": "shop"},
    "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080},
                       {"name": "metrics", "port": 9100}]},
}  # fmt: skip


def endpoint(address, ready=None, serving=None, terminating=None):
    conditions = {k: v for k, v in (("ready", ready), ("serving", serving),
                                    ("terminating", terminating)) if v is not None}  # fmt: skip
    return {"addresses": [address], "conditions": conditions}


def slice_(name, endpoints, ports=(("http", 8080), ("metrics", 9100)), kind="IPv4"):
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "cart"}},
        "addressType": kind,
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
        "endpoints": endpoints,
    }


def test_the_service_port_picks_the_slice_port_by_name():
    slices = [
        slice_("cart-a", [endpoint("10.1.0.1", ready=True), endpoint("10.1.0.2")]),
        slice_("cart-b", [endpoint("10.1.0.3", ready=False)], ports=(("http", 8080),)),
        slice_("cart-c", [endpoint("fd00::1", ready=True)], kind="IPv6"),
        slice_("cart-fqdn", [endpoint("cart.example", ready=True)], kind="FQDN"),
    ]
    found, message = endpoints_of(slices, SERVICE, 80)
    assert message == ""
    assert [(e["address"], e["port"], e["ready"]) for e in found] == [
        ("10.1.0.1", 8080, True),
        ("10.1.0.2", 8080, True),  # ready unset means ready
        ("10.1.0.3", 8080, False),
        ("fd00::1", 8080, True),
    ]
    metrics, _ = endpoints_of(slices, SERVICE, 9100)
    assert {e["port"] for e in metrics} == {9100}
    assert "10.1.0.3" not in {e["address"] for e in metrics}  # that slice has no metrics port


def test_a_missing_service_or_port_has_no_endpoints_and_says_why():
    slices = [slice_("cart-a", [endpoint("10.1.0.1", ready=True)])]
    assert endpoints_of(slices, None, 80) == ([], "the Service does not exist")
    assert endpoints_of(slices, SERVICE, 81) == ([], "the Service has no port 81")
    unnamed = {"spec": {"ports": [{"port": 80}]}}
    assert endpoints_of(slices, unnamed, 80) == ([], "no endpoints")  # slice ports are named
    single = [slice_("cart-a", [endpoint("10.1.0.1", ready=True)], ports=(("", 8080),))]
    assert endpoints_of(single, unnamed, 80)[0][0]["port"] == 8080


REFS = {"acme/backend/cart": ("prod", "shop", "cart", 80)}
ROW = [
    {"address": "10.1.0.1", "port": 8080, "ready": True, "serving": True, "terminating": False},
    {"address": "10.1.0.2", "port": 8080, "ready": False, "serving": True, "terminating": True},
    {"address": "10.1.0.3", "port": 8080, "ready": False, "serving": False, "terminating": True},
    {"address": "10.1.0.4", "port": 8080, "ready": False, "serving": False, "terminating": False},
    {"address": "169.254.169.254", "port": 80, "ready": True, "serving": True,
     "terminating": False},
    {"address": "127.0.0.1", "port": 8080, "ready": True, "serving": True, "terminating": False},
    {"address": "10.9.0.1", "port": 5432, "ready": True, "serving": True, "terminating": False},
]  # fmt: skip
POLICY = EgressPolicy.from_values(platform_cidrs=["10.9.0.0/16"])


def lb_endpoints(made):
    (assignment,) = made
    return [
        (lb["endpoint"]["address"]["socket_address"]["address"], lb["health_status"])
        for group in assignment["endpoints"]
        for lb in group["lb_endpoints"]
    ]


def test_ready_endpoints_get_traffic_terminating_ones_drain_and_egress_is_enforced():
    made, version = assignments(REFS, {REFS["acme/backend/cart"]: ROW}, {("prod", "shop")}, POLICY)
    # 10.1.0.3/.4: neither ready nor serving; metadata, loopback and a platform range: refused
    assert lb_endpoints(made) == [("10.1.0.1", "HEALTHY"), ("10.1.0.2", "DRAINING")]
    assert made[0]["cluster_name"] == "acme/backend/cart"
    to_any(made[0])  # a valid ClusterLoadAssignment
    same, again = assignments(REFS, {REFS["acme/backend/cart"]: ROW}, {("prod", "shop")}, POLICY)
    assert again == version
    _, moved = assignments(REFS, {REFS["acme/backend/cart"]: ROW[:1]}, {("prod", "shop")}, POLICY)
    assert moved != version


def test_without_the_grant_there_are_no_endpoints():
    made, _ = assignments(REFS, {REFS["acme/backend/cart"]: ROW}, {("prod", "billing")}, POLICY)
    assert made[0]["endpoints"] == []
    made, _ = assignments(REFS, {}, {("prod", "shop")}, POLICY)  # no row yet: empty, not absent
    assert made[0]["endpoints"] == []


def test_the_compiled_clusters_name_the_services_they_follow():
    state = DesiredState(
        tenant="acme", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": "web", "spec": {"rules": [{"backendRefs": [{"name": "cart"}]}]}}],
        backends={"cart": {"kubernetesService": {"cluster": "prod", "namespace": "shop",
                                                 "name": "cart", "port": 80}}},
    )  # fmt: skip
    resources = translate(gateway_ir(state))
    assert discovery_refs(resources.clusters) == REFS
    assert "load_assignment" not in resources.clusters[0]
