"""SecurityPolicy through real Envoy and real upstreams: API keys and basic auth per consumer,
the consumer's name upstream (never a client's), and policies that fail closed."""

import base64
import hashlib

import pytest
import requests

from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, running_envoy

pytestmark = pytest.mark.slow

ALICE_KEY, BOB_KEY = "gak_alice001_secret-one", "gak_bob00001_secret-two"


def sha(password: str) -> str:
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def route(name, host):
    return {
        "name": name,
        "spec": {"hostnames": [host], "rules": [{"backendRefs": [{"name": "app"}]}]},
    }


def named_rule(name):
    match = {"path": {"type": "PathPrefix", "value": f"/{name}"}}
    return {"name": name, "matches": [match], "backendRefs": [{"name": "app"}]}


def path_route(name, path):
    match = {"path": {"type": "PathPrefix", "value": path}}
    return {"name": name, "spec": {"hostnames": ["mixed.test"], "rules": [
        {"matches": [match], "backendRefs": [{"name": "app"}]}]}}  # fmt: skip


def policy(name, target, **spec):
    ref = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": target}
    return {"name": name, "kind": "SecurityPolicy", "spec": {"targetRefs": [ref], **spec}}


def api_keys(*consumers, **extra):
    return {"credentialRefs": [{"kind": "Consumer", "name": c} for c in consumers], **extra}


@pytest.fixture(scope="module")
def gateway():
    app = Upstream("app")
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80},
                            {"name": "internal", "protocol": "HTTP", "port": 8080}]},
        routes=[route("keys", "keys.test"), route("query", "query.test"),
                route("basic", "basic.test"), route("broken", "broken.test"),
                route("open", "open.test"), path_route("m1", "/one"), path_route("m2", "/two"),
                path_route("m3", "/three"),
                {"name": "rules", "spec": {"hostnames": ["rules.test"], "rules": [
                    named_rule("free"), named_rule("paid")]}}],
        backends={"app": app.backend()},
        policies=[
            policy("keys", "keys", apiKeyAuth=api_keys(
                "alice", extractFrom=[{"headers": ["X-API-Key"]}], sanitize=False)),
            policy("query", "query", apiKeyAuth=api_keys(
                "bob", extractFrom=[{"params": ["key"]}], sanitize=True,
                forwardClientIDHeader="X-Client")),
            policy("basic", "basic", basicAuth={"users": [{"kind": "Consumer", "name": "carol"},
                                                          {"kind": "Consumer", "name": "alice"}]}),
            # Two of three routes of one host share a policy: its config moves to the virtual
            # host, and the third route must not inherit it.
            {"name": "mixed", "kind": "SecurityPolicy", "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                "name": name} for name in ("m1", "m2")],
                "apiKeyAuth": api_keys("alice", extractFrom=[{"headers": ["X-API-Key"]}])}},
            policy("m3", "m3", basicAuth={"users": [{"kind": "Consumer", "name": "carol"}]}),
            # One rule of a route, by its name.
            {"name": "paid", "kind": "SecurityPolicy", "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                "name": "rules", "sectionName": "paid"}],
                "apiKeyAuth": api_keys("bob", extractFrom=[{"headers": ["X-API-Key"]}])}},
            # Every route on the internal listener needs carol's password, but a route's own
            # policy replaces the listener's.
            {"name": "internal", "kind": "SecurityPolicy", "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                "name": "edge", "sectionName": "internal"}],
                "basicAuth": {"users": [{"kind": "Consumer", "name": "carol"}]}}},
            policy("broken", "broken", apiKeyAuth=api_keys(
                "alice", "ghost", extractFrom=[{"headers": ["X-API-Key"]}])),
        ],
        consumers={
            "alice": {"apiKeys": [ALICE_KEY], "basicAuth": []},
            "bob": {"apiKeys": [BOB_KEY], "basicAuth": []},
            "carol": {"apiKeys": [], "basicAuth": [{"hash": sha("carol-password")}]},
        },
    )  # fmt: skip
    with running_envoy(state) as ports:
        session = requests.Session()

        def get(host, path="/", port=80, **kwargs):
            headers = {"Host": host, **kwargs.pop("headers", {})}
            url = f"http://127.0.0.1:{ports[port]}{path}"
            return session.get(url, headers=headers, timeout=10, **kwargs)

        get.app = app
        yield get
    app.close()


def test_the_right_key_reaches_the_upstream_as_its_consumer(gateway):
    response = gateway("keys.test", headers={"X-API-Key": ALICE_KEY})
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["x-gantry-consumer"] == "alice"
    assert seen["x-api-key"] == ALICE_KEY  # sanitize: false keeps it


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "gak_alice001_wrong"}, {"X-API-Key": ""}])
def test_a_missing_or_wrong_key_is_401_and_never_reaches_the_upstream(gateway, headers):
    before = len(gateway.app.requests)
    assert gateway("keys.test", headers=headers).status_code == 401
    assert len(gateway.app.requests) == before


def test_another_consumers_key_is_refused(gateway):
    before = len(gateway.app.requests)
    response = gateway("keys.test", headers={"X-API-Key": BOB_KEY})
    assert response.status_code == 403  # a known key, but bob is not allowed here
    assert len(gateway.app.requests) == before


def test_keys_in_the_query_are_removed_and_the_consumer_named_as_asked(gateway):
    response = gateway("query.test", "/items?key=" + BOB_KEY + "&page=2")
    assert response.status_code == 200
    body = response.json()
    assert body["headers"]["x-client"] == "bob"
    assert BOB_KEY not in body["path"] and "page=2" in body["path"]
    assert gateway("query.test", "/items?key=" + ALICE_KEY).status_code == 403
    assert gateway("query.test", headers={"X-API-Key": BOB_KEY}).status_code == 401


def test_a_client_cannot_claim_to_be_a_consumer(gateway):
    forged = {"X-Gantry-Consumer": "mallory"}
    open_route = gateway("open.test", headers=forged)
    assert open_route.status_code == 200
    assert "x-gantry-consumer" not in open_route.json()["headers"]
    keyed = gateway("keys.test", headers={**forged, "X-API-Key": ALICE_KEY})
    assert keyed.json()["headers"]["x-gantry-consumer"] == "alice"


def test_basic_auth_lets_consumers_with_a_password_in(gateway):
    response = gateway("basic.test", auth=("carol", "carol-password"))
    assert response.status_code == 200
    assert response.json()["headers"]["x-gantry-consumer"] == "carol"
    before = len(gateway.app.requests)
    assert gateway("basic.test", auth=("carol", "wrong-password")).status_code == 401
    assert gateway("basic.test").status_code == 401
    # alice is allowed but has no password: she cannot get in with anything.
    assert gateway("basic.test", auth=("alice", "carol-password")).status_code == 401
    assert len(gateway.app.requests) == before


def test_a_policy_naming_a_missing_consumer_fails_closed(gateway):
    before = len(gateway.app.requests)
    response = gateway("broken.test", headers={"X-API-Key": ALICE_KEY})
    assert response.status_code == 500
    assert len(gateway.app.requests) == before


def test_the_most_specific_policy_applies(gateway):
    # The open route has no policy of its own: on the internal listener, the listener's applies.
    assert gateway("open.test", port=8080).status_code == 401
    inside = gateway("open.test", port=8080, auth=("carol", "carol-password"))
    assert inside.status_code == 200
    assert inside.json()["headers"]["x-gantry-consumer"] == "carol"
    # The keys route's own policy replaces the listener's, whole: a key, not a password.
    assert gateway("keys.test", port=8080, auth=("carol", "carol-password")).status_code == 401
    keyed = gateway("keys.test", port=8080, headers={"X-API-Key": ALICE_KEY})
    assert keyed.status_code == 200
    assert keyed.json()["headers"]["x-gantry-consumer"] == "alice"


def test_routes_sharing_a_host_keep_their_own_policies(gateway):
    for path in ("/one", "/two"):
        assert gateway("mixed.test", path, headers={"X-API-Key": ALICE_KEY}).status_code == 200
        assert gateway("mixed.test", path).status_code == 401
    carol = gateway("mixed.test", "/three", auth=("carol", "carol-password"))
    assert carol.status_code == 200  # no API key asked for here
    assert carol.json()["headers"]["x-gantry-consumer"] == "carol"
    assert gateway("mixed.test", "/three", headers={"X-API-Key": ALICE_KEY}).status_code == 401


def test_a_client_cannot_forge_a_custom_consumer_header(gateway):
    response = gateway("query.test", "/?key=" + BOB_KEY, headers={"X-Client": "mallory"})
    assert response.status_code == 200
    assert response.json()["headers"]["x-client"] == "bob"


def test_a_policy_can_target_one_rule_of_a_route(gateway):
    assert gateway("rules.test", "/free").status_code == 200
    assert gateway("rules.test", "/paid").status_code == 401
    paid = gateway("rules.test", "/paid", headers={"X-API-Key": BOB_KEY})
    assert paid.status_code == 200
    assert paid.json()["headers"]["x-gantry-consumer"] == "bob"
