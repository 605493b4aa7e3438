"""SDS Secrets over ADS (SecurityPolicy oidc's client secrets and HMAC keys): asked for by name,
sent before the listeners of a change that names them, a rotated secret sent alone (the
listener, which names it, does not change and drains nothing), a gateway's Envoys given only
its own; and real Envoys on both ADS flavours holding them."""

import json

import pytest
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from gateways.validation.policies import validate_policy_spec
from provisioning.compile import compile_gateway
from provisioning.impact import compare
from provisioning.ir.build import DesiredState
from provisioning.translate.types import CLUSTER, LISTENER, ROUTE_CONFIGURATION, SECRET
from provisioning.xds.delta import DeltaSession
from provisioning.xds.snapshots import Snapshot
from provisioning.xds.sotw import SotwSession
from tests.provisioning.harness import free_port
from tests.xds.conftest import TOKENS
from tests.xds.harness import running_envoy, wait_for

NAMES = ["acme/edge/oidc/sso/client-secret", "acme/edge/oidc/sso/hmac"]


def oidc_state(client_secret: str = "first-secret", tenant="acme", gateway="edge"):
    oidc = {"provider": {"issuer": "https://idp.test", "authorizationEndpoint":
                         "https://idp.test/auth", "tokenEndpoint": "https://idp.test/token"},
            "clientID": "app"}  # fmt: skip
    spec = validate_policy_spec("SecurityPolicy", {"targetRefs": [
        {"kind": "Gateway", "name": gateway}], "oidc": oidc}, gateway, ["http"])  # fmt: skip
    rule = {"backendRefs": [{"name": "app"}]}
    return DesiredState(
        tenant=tenant, gateway=gateway,
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": "web", "spec": {"hostnames": ["x.test"], "rules": [rule]}}],
        backends={"app": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 9}}]}},
        policies=[{"name": "sso", "kind": "SecurityPolicy", "spec": spec}],
        policy_secrets={"sso": {"oidcClientSecret": client_secret, "oidcHmacSecret": "aG1hYw=="}},
    )  # fmt: skip


def compiled(client_secret="first-secret", port=8080, **names):
    state = oidc_state(client_secret, **names)
    return compile_gateway(state, address="127.0.0.1", port_map={80: port})


def snapshot(version: str, client_secret="first-secret") -> Snapshot:
    return Snapshot.build(version, compiled(client_secret))


def test_a_compiled_gateway_holds_its_secrets_as_sds_resources():
    resources = compiled()
    assert [secret["name"] for secret in resources.secrets] == NAMES
    assert snapshot("v1").resources[SECRET].keys() == set(NAMES)
    assert "first-secret" not in json.dumps(resources.listeners)


def delta_connected(first: Snapshot) -> DeltaSession:
    session = DeltaSession()
    session.on_snapshot(first)
    for type_url, subscribe in ((CLUSTER, []), (LISTENER, []), (SECRET, NAMES),
                                (ROUTE_CONFIGURATION, ["acme/edge/port/80"])):  # fmt: skip
        request = DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=subscribe)
        (response,), _ = session.on_request(request)
        session.on_request(DeltaDiscoveryRequest(type_url=type_url, response_nonce=response.nonce))
    return session


def test_delta_sends_secrets_by_name_and_a_rotated_one_alone():
    session = delta_connected(snapshot("v1"))
    responses, _ = session.on_snapshot(snapshot("v2", "rotated-secret"))
    assert [(r.type_url, [x.name for x in r.resources]) for r in responses] == [
        (SECRET, [NAMES[0]])
    ]


def test_delta_sends_secrets_before_the_listeners_of_a_change():
    session = delta_connected(snapshot("v1"))
    changed = Snapshot.build("v2", compiled("rotated-secret", port=8081))
    responses, _ = session.on_snapshot(changed)
    types = [response.type_url for response in responses]
    assert types.index(SECRET) < types.index(LISTENER)


def test_a_gateway_is_sent_only_its_own_secrets():
    other = Snapshot.build("v1", compiled(tenant="globex", gateway="web"))
    session = DeltaSession()
    session.on_snapshot(other)
    request = DeltaDiscoveryRequest(type_url=SECRET, resource_names_subscribe=NAMES)
    assert session.on_request(request) == ([], [])  # acme's names: nothing of globex's
    sotw = SotwSession()
    sotw.on_snapshot(other)
    (response,), _ = sotw.on_request(DiscoveryRequest(type_url=SECRET, resource_names=NAMES))
    assert list(response.resources) == []


def test_sotw_sends_the_named_secrets_and_a_rotated_one_before_nothing_else():
    session = SotwSession()
    session.on_snapshot(snapshot("v1"))
    for type_url, names in ((CLUSTER, []), (LISTENER, []), (SECRET, NAMES)):
        request = DiscoveryRequest(type_url=type_url, resource_names=names)
        (response,), _ = session.on_request(request)
        request.response_nonce, request.version_info = response.nonce, "v1"
        session.on_request(request)
    responses, _ = session.on_snapshot(snapshot("v2", "rotated-secret"))
    assert [r.type_url for r in responses] == [SECRET]
    assert len(responses[0].resources) == 2  # state of the world: every secret asked for


def test_a_dry_run_calls_a_rotated_secret_hot_and_names_it_only():
    impact = compare(compiled().as_dict(), compiled("rotated-secret").as_dict())
    assert impact["hot"] and not impact["unchanged"]
    assert impact["changes"]["secrets"]["changed"] == [NAMES[0]]
    assert "rotated-secret" not in json.dumps(impact)


@pytest.mark.slow
@pytest.mark.parametrize("api_type", ["DELTA_GRPC", "GRPC"])
def test_a_real_envoy_gets_its_secrets_and_a_rotated_one(xds, api_type):
    port = free_port()
    xds.store.set("acme/edge", "v1", compiled(port=port))
    bootstrap = xds.bootstrap("acme/edge", "r1", "acme-edge-token", free_port(), api_type)
    assert TOKENS["acme-edge-token"] == "acme/edge"
    with running_envoy(bootstrap) as envoy:

        def secrets():
            dump = json.loads(envoy.admin("/config_dump?resource=dynamic_active_secrets"))
            return {entry["name"]: entry["version_info"] for entry in dump.get("configs", [])}

        held = wait_for(secrets)
        assert set(held) == set(NAMES)
        assert envoy.dynamic_listener_names() == {"acme/edge/port/80"}
        listener = envoy.admin("/config_dump?resource=dynamic_listeners")
        xds.store.set("acme/edge", "v2", compiled("rotated-secret", port=port))
        wait_for(lambda: secrets()[NAMES[0]] != held[NAMES[0]], message=envoy.log)
        assert secrets()[NAMES[1]] == held[NAMES[1]]  # the HMAC key did not change
        # The listener was not sent again: nothing drained for a new client secret.
        assert json.loads(envoy.admin("/config_dump?resource=dynamic_listeners")) == (
            json.loads(listener)
        )
        stats = envoy.admin("/stats?filter=listener_manager.listener_modified")
        assert stats.strip().endswith(": 0"), stats
