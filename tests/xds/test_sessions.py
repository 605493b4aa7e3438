"""The ADS protocol state of one stream, request by request (the Envoy side played by hand)."""

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest
from google.rpc.status_pb2 import Status

from provisioning.compile import compile_gateway
from provisioning.ir.build import DesiredState
from provisioning.translate.types import CLUSTER, LISTENER, ROUTE_CONFIGURATION, VIRTUAL_HOST
from provisioning.xds.acks import Ack
from provisioning.xds.delta import DeltaSession
from provisioning.xds.snapshots import Snapshot
from tests.xds.conftest import compiled

ROUTES = ROUTE_CONFIGURATION
ROUTE_NAME = "acme/edge/port/80"
# Over Delta, a route configuration's virtual hosts are resources of their own (VHDS).
VHOSTS = VIRTUAL_HOST
VHOST_NAME = f"{ROUTE_NAME}/x.test"


def endpoint(port):
    return {"endpoints": [{"ip": {"address": "127.0.0.1", "port": port}}]}


def snapshot(version, backend="a", backends=("a", "b")) -> Snapshot:
    resources = compiled("acme", "edge", backend, {b: endpoint(9000) for b in backends}, 8080)
    return Snapshot.build(version, resources)


def no_routes():
    spec = {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}
    state = DesiredState(tenant="acme", gateway="edge", spec=spec)
    return compile_gateway(state, address="127.0.0.1", port_map={80: 8080})


def names(response) -> list[str]:
    return [r.name for r in response.resources]


def nack(message):
    return Status(code=3, message=message)


# Incremental (Delta) ---------------------------------------------------------------------------


def delta_connected(first: Snapshot) -> tuple[DeltaSession, list]:
    """A Delta session that asked for, got and ACKed clusters, listeners, routes and their
    virtual hosts (Envoy's VHDS subscription names nothing)."""
    session = DeltaSession()
    assert session.on_snapshot(first) == ([], [])
    acks = []
    subscriptions = ((CLUSTER, []), (LISTENER, []), (ROUTES, [ROUTE_NAME]), (VHOSTS, []))
    for type_url, subscribe in subscriptions:
        request = DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=subscribe)
        (response,), _ = session.on_request(request)
        ack = DeltaDiscoveryRequest(type_url=type_url, response_nonce=response.nonce)
        acks += session.on_request(ack)[1]
    return session, acks


def test_delta_answers_each_subscription_and_reports_acks():
    session, acks = delta_connected(snapshot("v1"))
    assert acks == [Ack(CLUSTER, "v1"), Ack(LISTENER, "v1"), Ack(ROUTES, "v1"), Ack(VHOSTS, "v1")]


def test_delta_answers_a_type_with_no_resources_so_envoys_initial_fetch_ends():
    """A gateway without backends has no clusters. Envoy waits for a first answer to each
    subscription (15 s by default) before it serves; an empty answer ends the wait and is
    ACKed like any other, whether the snapshot came before the request or after it."""
    empty = Snapshot.build("v1", no_routes())
    assert empty.resources[CLUSTER] == {}
    for snapshot_first in (True, False):
        session = DeltaSession()
        if snapshot_first:
            session.on_snapshot(empty)
        responses, _ = session.on_request(DeltaDiscoveryRequest(type_url=CLUSTER))
        if not snapshot_first:
            assert responses == []  # nothing to say before there is a snapshot
            responses, _ = session.on_snapshot(empty)
        (response,) = responses
        assert (response.type_url, list(response.resources), response.system_version_info) == (
            CLUSTER, [], "v1",
        )  # fmt: skip
        ack = DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=response.nonce)
        assert session.on_request(ack)[1] == [Ack(CLUSTER, "v1")]
        # Answered once: later versions with still no clusters need no message.
        assert session.on_snapshot(Snapshot.build("v2", no_routes()))[0] == []


def test_delta_sends_only_what_changed_and_vouches_for_the_rest():
    session, _ = delta_connected(snapshot("v1"))
    responses, acks = session.on_snapshot(snapshot("v2", backend="b"))
    assert [(r.type_url, names(r), r.system_version_info) for r in responses] == [
        (VHOSTS, [VHOST_NAME], "v2")  # the virtual host, not the whole route configuration
    ]
    # Clusters, listeners and the route configuration did not change: what the Envoy ACKed
    # is version v2's content; that is reported with the virtual host's answer, after it
    # (until then the replica has not applied v2).
    assert acks == []
    (response,) = responses
    ack = DeltaDiscoveryRequest(type_url=VHOSTS, response_nonce=response.nonce)
    assert session.on_request(ack) == ([], [
        Ack(VHOSTS, "v2"), Ack(ROUTES, "v2"), Ack(LISTENER, "v2"), Ack(CLUSTER, "v2"),
    ])  # fmt: skip


def test_delta_holds_acks_while_a_response_is_unanswered_so_a_receipt_is_never_early():
    """Envoy asks for a new listener's routes and their virtual hosts before it ACKs the
    listener; the listener serves only once they are in. The ACKs are reported once nothing
    is unanswered, the types others depend on last, so the last one reported is what
    completes the replica's set."""
    session = DeltaSession()
    session.on_snapshot(snapshot("v1"))
    (clusters,), acks = session.on_request(DeltaDiscoveryRequest(type_url=CLUSTER))
    (listeners,), acks = session.on_request(DeltaDiscoveryRequest(type_url=LISTENER))
    done = DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=clusters.nonce)
    assert session.on_request(done) == ([], [])  # the listeners are unanswered
    wanted = DeltaDiscoveryRequest(type_url=ROUTES, resource_names_subscribe=[ROUTE_NAME])
    (routes,), acks = session.on_request(wanted)
    done = DeltaDiscoveryRequest(type_url=LISTENER, response_nonce=listeners.nonce)
    assert session.on_request(done) == ([], [])
    (vhosts,), acks = session.on_request(DeltaDiscoveryRequest(type_url=VHOSTS))
    done = DeltaDiscoveryRequest(type_url=ROUTES, response_nonce=routes.nonce)
    assert session.on_request(done) == ([], [])
    done = DeltaDiscoveryRequest(type_url=VHOSTS, response_nonce=vhosts.nonce)
    assert session.on_request(done)[1] == [
        Ack(VHOSTS, "v1"), Ack(ROUTES, "v1"), Ack(LISTENER, "v1"), Ack(CLUSTER, "v1"),
    ]  # fmt: skip


def test_delta_adds_clusters_first_and_removes_them_last():
    session, _ = delta_connected(snapshot("v1", backend="a", backends=("a", "b")))
    responses, _ = session.on_snapshot(snapshot("v2", backend="c", backends=("b", "c")))
    assert [(r.type_url, names(r), list(r.removed_resources)) for r in responses] == [
        (CLUSTER, ["acme/backend/c"], []),
        (VHOSTS, [VHOST_NAME], []),
        (CLUSTER, [], ["acme/backend/a"]),
    ]


def test_delta_nack_is_reported_with_envoys_message_and_not_resent():
    session, _ = delta_connected(snapshot("v1"))
    (response,), _ = session.on_snapshot(snapshot("v2", backend="b"))
    rejected = DeltaDiscoveryRequest(
        type_url=VHOSTS, response_nonce=response.nonce, error_detail=nack("invalid regex")
    )
    responses, acks = session.on_request(rejected)
    assert responses == [] and acks[0] == Ack(VHOSTS, "v2", "invalid regex")
    # The same rejected content in a newer version is rejected too; nothing is resent.
    responses, acks = session.on_snapshot(snapshot("v3", backend="b"))
    assert responses == []
    assert Ack(VHOSTS, "v3", "invalid regex") in acks
    # New content is sent.
    (fixed,), _ = session.on_snapshot(snapshot("v4", backend="a"))
    assert fixed.type_url == VHOSTS and fixed.system_version_info == "v4"


def test_delta_answer_still_to_come_covers_a_newer_unchanged_version():
    session, _ = delta_connected(snapshot("v1"))
    (response,), _ = session.on_snapshot(snapshot("v2", backend="b"))
    responses, acks = session.on_snapshot(snapshot("v3", backend="b"))
    assert responses == [] and Ack(VHOSTS, "v3") not in acks
    ack = DeltaDiscoveryRequest(type_url=VHOSTS, response_nonce=response.nonce)
    responses, acks = session.on_request(ack)
    assert responses == [] and acks[0] == Ack(VHOSTS, "v3")


def test_delta_sends_a_later_route_configurations_virtual_hosts_once_envoy_took_it():
    """A second listener's route configuration: Envoy's VHDS watch for it starts when it takes
    the configuration and asks nothing of its own (virtual hosts are already subscribed), and it
    drops virtual hosts nobody watches. So they go out with the configuration's ACK, not
    before (the listener would otherwise warm until Envoy's 15 s fetch timeout)."""
    import dataclasses

    from tests.xds.conftest import gateway_state

    state = gateway_state("acme", "edge", "a", {"a": endpoint(9000)})
    session, _ = delta_connected(Snapshot.build("v1", compile_gateway(state)))
    spec = {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80},
                          {"name": "alt", "protocol": "HTTP", "port": 8080}]}  # fmt: skip
    two = compile_gateway(dataclasses.replace(state, spec=spec))
    responses, _ = session.on_snapshot(Snapshot.build("v2", two))
    assert [(r.type_url, names(r)) for r in responses] == [(LISTENER, ["acme/edge/port/8080"])]
    wanted = DeltaDiscoveryRequest(
        type_url=ROUTES, resource_names_subscribe=["acme/edge/port/8080"]
    )
    (routes,), _ = session.on_request(wanted)
    assert names(routes) == ["acme/edge/port/8080"]
    took = DeltaDiscoveryRequest(type_url=ROUTES, response_nonce=routes.nonce)
    (vhosts,), _ = session.on_request(took)
    assert (vhosts.type_url, names(vhosts)) == (VHOSTS, ["acme/edge/port/8080/x.test"])


def test_delta_reconnecting_envoy_that_is_up_to_date_is_sent_nothing():
    current = snapshot("v1")
    session = DeltaSession()
    session.on_snapshot(current)
    held = {name: r.version for name, r in current.resources[CLUSTER].items()}
    request = DeltaDiscoveryRequest(type_url=CLUSTER, initial_resource_versions=held)
    assert session.on_request(request) == ([], [Ack(CLUSTER, "v1")])


def test_delta_reconnecting_envoy_gets_only_the_difference_and_removals():
    current = snapshot("v2", backends=("a", "b"))
    session = DeltaSession()
    session.on_snapshot(current)
    held = {"acme/backend/a": current.resources[CLUSTER]["acme/backend/a"].version,
            "acme/backend/old": "x"}  # fmt: skip
    request = DeltaDiscoveryRequest(type_url=CLUSTER, initial_resource_versions=held)
    (response,), _ = session.on_request(request)
    assert names(response) == ["acme/backend/b"]
    assert list(response.removed_resources) == ["acme/backend/old"]


def test_delta_routes_are_sent_only_once_subscribed():
    session = DeltaSession()
    session.on_snapshot(snapshot("v1"))
    assert session.on_request(DeltaDiscoveryRequest(type_url=ROUTES)) == ([], [])
    request = DeltaDiscoveryRequest(type_url=ROUTES, resource_names_subscribe=["elsewhere"])
    assert session.on_request(request)[0] == []
    request = DeltaDiscoveryRequest(type_url=ROUTES, resource_names_subscribe=[ROUTE_NAME])
    (response,), _ = session.on_request(request)
    assert names(response) == [ROUTE_NAME]


# State of the world ----------------------------------------------------------------------------


def sotw_connected(first: Snapshot):
    """A SotW session that asked for, got and ACKed clusters, listeners and routes."""
    from provisioning.xds.sotw import SotwSession

    session = SotwSession()
    session.on_snapshot(first)
    nonces = {}
    for type_url, wanted in ((CLUSTER, []), (LISTENER, []), (ROUTES, [ROUTE_NAME])):
        request = DiscoveryRequest(type_url=type_url, resource_names=wanted)
        (response,), _ = session.on_request(request)
        assert response.version_info == first.version
        nonces[type_url] = response.nonce
        ack = DiscoveryRequest(
            type_url=type_url,
            resource_names=wanted,
            version_info=first.version,
            response_nonce=response.nonce,
        )
        assert session.on_request(ack) == ([], [Ack(type_url, first.version)])
    return session, nonces


def test_sotw_pushes_only_the_types_that_changed_and_their_acks_stand_for_the_rest():
    session, _ = sotw_connected(snapshot("v1"))
    responses, acks = session.on_snapshot(snapshot("v2", backend="b"))  # the route changed
    assert [(r.type_url, r.version_info, len(r.resources)) for r in responses] == [
        (ROUTES, "v2", 1)
    ]  # fmt: skip
    # Clusters and listeners are as the Envoy ACKed them: that answer holds for v2.
    assert acks == [Ack(CLUSTER, "v2"), Ack(LISTENER, "v2")]
    # A snapshot whose every type changed is pushed whole, in ADS order.
    changed = snapshot("v3", backend="a", backends=("a",))
    assert [r.type_url for r in session.on_snapshot(changed)[0]] == [CLUSTER, ROUTES]


def test_sotw_nack_is_reported_and_not_answered_with_the_same_config():
    session, _ = sotw_connected(snapshot("v1"))
    responses, _ = session.on_snapshot(snapshot("v2", backend="b"))
    routes = responses[-1]
    rejected = DiscoveryRequest(type_url=ROUTES, resource_names=[ROUTE_NAME], version_info="v1",
                                response_nonce=routes.nonce, error_detail=nack("bad"))  # fmt: skip
    assert session.on_request(rejected) == ([], [Ack(ROUTES, "v2", "bad")])


def test_sotw_ignores_a_request_answering_an_older_response():
    session, nonces = sotw_connected(snapshot("v1"))
    session.on_snapshot(snapshot("v2", backend="b"))
    stale = DiscoveryRequest(type_url=ROUTES, resource_names=[ROUTE_NAME, "other"],
                             version_info="v1", response_nonce=nonces[ROUTES])  # fmt: skip
    assert session.on_request(stale) == ([], [])


def test_sotw_answers_when_the_requested_route_names_change():
    session, nonces = sotw_connected(snapshot("v1"))
    request = DiscoveryRequest(type_url=ROUTES, resource_names=[], version_info="v1",
                               response_nonce=nonces[ROUTES])  # fmt: skip
    (response,), _ = session.on_request(request)
    assert response.resources == [] and response.version_info == "v1"


def test_sotw_removes_dropped_clusters_only_after_the_new_routes_are_acked():
    session, _ = sotw_connected(snapshot("v1", backend="a", backends=("a", "b")))
    responses, _ = session.on_snapshot(snapshot("v2", backend="b", backends=("b",)))
    clusters, routes = responses  # the listeners did not change: not pushed
    assert len(clusters.resources) == 2  # "a" is kept while the old routes may still use it
    ack = DiscoveryRequest(type_url=ROUTES, resource_names=[ROUTE_NAME], version_info="v2",
                           response_nonce=routes.nonce)  # fmt: skip
    (removal,), acks = session.on_request(ack)
    assert acks == [Ack(ROUTES, "v2")]
    assert (removal.type_url, removal.version_info, len(removal.resources)) == (CLUSTER, "v2", 1)
    cluster_ack = DiscoveryRequest(type_url=CLUSTER, version_info="v2",
                                   response_nonce=removal.nonce)  # fmt: skip
    assert session.on_request(cluster_ack) == ([], [Ack(CLUSTER, "v2")])


def test_sotw_keeps_nothing_extra_when_no_cluster_is_dropped():
    session, _ = sotw_connected(snapshot("v1"))
    responses, _ = session.on_snapshot(snapshot("v2", backend="b"))
    routes = responses[-1]
    ack = DiscoveryRequest(type_url=ROUTES, resource_names=[ROUTE_NAME], version_info="v2",
                           response_nonce=routes.nonce)  # fmt: skip
    assert session.on_request(ack) == ([], [Ack(ROUTES, "v2")])
