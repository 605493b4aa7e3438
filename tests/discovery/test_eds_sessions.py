"""ADS with EDS, one stream played by hand: an endpoint change alone pushes only the
ClusterLoadAssignment that changed (Delta) or only the EDS type (state of the world); clusters,
listeners and routes are not sent again, and ACKs report the revision's version."""

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from provisioning.compile import compile_gateway
from provisioning.discovery.assignments import assignments, discovery_refs
from provisioning.ir.build import DesiredState
from provisioning.translate.types import CLUSTER, CLUSTER_LOAD_ASSIGNMENT, LISTENER
from provisioning.translate.types import ROUTE_CONFIGURATION as ROUTES
from provisioning.translate.types import VIRTUAL_HOST as VHOSTS
from provisioning.xds.delta import DeltaSession
from provisioning.xds.snapshots import Snapshot
from provisioning.xds.sotw import SotwSession

EDS = CLUSTER_LOAD_ASSIGNMENT
ROUTE_NAME = "acme/edge/port/80"


def service(name):
    return {"kubernetesService": {"cluster": "prod", "namespace": "shop", "name": name, "port": 80}}


def compiled():
    state = DesiredState(
        tenant="acme", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": "web", "spec": {"rules": [
            {"backendRefs": [{"name": "cart"}, {"name": "orders"}]}]}}],
        backends={"cart": service("cart"), "orders": service("orders")},
    )  # fmt: skip
    return compile_gateway(state, address="127.0.0.1", port_map={80: 8080})


RESOURCES = compiled()
REFS = discovery_refs(RESOURCES.clusters)
GRANTED = {("prod", "shop")}


def row(*addresses):
    return [{"address": a, "port": 8080, "ready": True, "serving": True, "terminating": False}
            for a in addresses]  # fmt: skip


def snapshot(version: str, cart=("10.0.0.1",), orders=("10.0.1.1",)) -> Snapshot:
    rows = {REFS["acme/backend/cart"]: row(*cart), REFS["acme/backend/orders"]: row(*orders)}
    made, endpoints_version = assignments(REFS, rows, GRANTED, None)
    return Snapshot.build(version, RESOURCES, made, endpoints_version)


def test_the_snapshot_is_new_when_only_the_endpoints_change():
    first, moved = snapshot("v1"), snapshot("v1", cart=("10.0.0.2",))
    assert first.version == moved.version and first.key != moved.key
    assert set(first.resources[EDS]) == {"acme/backend/cart", "acme/backend/orders"}
    assert first.resources[CLUSTER] == moved.resources[CLUSTER]


def delta_connected(first: Snapshot) -> DeltaSession:
    session = DeltaSession()
    session.on_snapshot(first)
    for type_url, names in ((CLUSTER, []), (EDS, sorted(REFS)), (LISTENER, []),
                            (ROUTES, [ROUTE_NAME]), (VHOSTS, [])):  # fmt: skip
        request = DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=names)
        (response,), _ = session.on_request(request)
        session.on_request(DeltaDiscoveryRequest(type_url=type_url, response_nonce=response.nonce))
    return session


def test_delta_pushes_only_the_assignment_that_changed():
    session = delta_connected(snapshot("v1"))
    responses, acks = session.on_snapshot(snapshot("v1", cart=("10.0.0.1", "10.0.0.2")))
    assert [(r.type_url, [x.name for x in r.resources]) for r in responses] == [
        (EDS, ["acme/backend/cart"])
    ]
    assert acks == []
    ack = DeltaDiscoveryRequest(type_url=EDS, response_nonce=responses[0].nonce)
    _, acks = session.on_request(ack)
    assert [(a.type_url, a.version) for a in acks] == [(EDS, "v1")]  # the revision's version
    # a new revision with the same endpoints: the assignments are not sent again
    responses, _ = session.on_snapshot(
        Snapshot.build("v2", RESOURCES, *assignments(REFS, {
            REFS["acme/backend/cart"]: row("10.0.0.1", "10.0.0.2"),
            REFS["acme/backend/orders"]: row("10.0.1.1")}, GRANTED, None))
    )  # fmt: skip
    assert EDS not in {r.type_url for r in responses}


def test_state_of_the_world_pushes_only_what_changed():
    session = SotwSession()
    session.on_snapshot(snapshot("v1"))
    for type_url, names in ((CLUSTER, []), (EDS, sorted(REFS)), (LISTENER, []),
                            (ROUTES, [ROUTE_NAME])):  # fmt: skip
        (response,), _ = session.on_request(DiscoveryRequest(type_url=type_url,
                                                              resource_names=names))  # fmt: skip
        session.on_request(
            DiscoveryRequest(
                type_url=type_url,
                resource_names=names,
                version_info="v1",
                response_nonce=response.nonce,
            )
        )
    responses, _ = session.on_snapshot(snapshot("v1", cart=("10.0.0.9",)))
    assert [r.type_url for r in responses] == [EDS]
    assert len(responses[0].resources) == 2  # every assignment asked for, as SotW requires
    assert responses[0].version_info == "v1"
    # a new revision with the same resources: nothing pushed, the standing ACKs report it
    responses, acks = session.on_snapshot(snapshot("v2", cart=("10.0.0.9",)))
    assert responses == []
    # (the endpoints' answer is still to come: it will report v2 when it does)
    assert [(a.type_url, a.version) for a in acks] == [
        (CLUSTER, "v2"), (LISTENER, "v2"), (ROUTES, "v2")
    ]  # fmt: skip


def test_delta_removes_a_dropped_clusters_endpoints_after_the_routes():
    session = delta_connected(snapshot("v1"))
    state = DesiredState(
        tenant="acme", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": "web", "spec": {"rules": [{"backendRefs": [{"name": "cart"}]}]}}],
        backends={"cart": service("cart")},
    )  # fmt: skip
    fewer = compile_gateway(state, address="127.0.0.1", port_map={80: 8080})
    refs = discovery_refs(fewer.clusters)
    made, version = assignments(refs, {refs["acme/backend/cart"]: row("10.0.0.1")}, GRANTED, None)
    responses, _ = session.on_snapshot(Snapshot.build("v2", fewer, made, version))
    order = [(r.type_url, list(r.removed_resources)) for r in responses]
    assert order == [
        (VHOSTS, []),  # the routes that stop using the cluster go first
        (EDS, ["acme/backend/orders"]),
        (CLUSTER, ["acme/backend/orders"]),
    ]
