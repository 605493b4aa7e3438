"""SecurityPolicy cors and authorization through real Envoy and a real upstream: preflights
answered for allowed origins only, CORS headers on simple requests, client addresses and
consumers, request headers and methods allowed or refused with Envoy Gateway's
first-match-wins rules."""

import pytest
import requests

from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, running_envoy

pytestmark = pytest.mark.slow

ALICE_KEY, BOB_KEY = "gak_alice001_secret-one", "gak_bob00001_secret-two"
KEYS = {"credentialRefs": [{"kind": "Consumer", "name": "alice"},
                           {"kind": "Consumer", "name": "bob"}],
        "extractFrom": [{"headers": ["X-API-Key"]}]}  # fmt: skip
CORS = {"allowOrigins": ["https://app.example.org", "https://*.example.com"],
        "allowMethods": ["GET", "POST"], "allowHeaders": ["x-custom"],
        "exposeHeaders": ["x-trace"], "maxAge": "10m", "allowCredentials": True}  # fmt: skip


def route(name):
    return {"name": name, "spec": {"hostnames": [f"{name}.test"],
                                   "rules": [{"backendRefs": [{"name": "app"}]}]}}  # fmt: skip


def policy(name, **spec):
    ref = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}
    return {"name": name, "kind": "SecurityPolicy", "spec": {"targetRefs": [ref], **spec}}


def authz(default, *rules):
    return {"defaultAction": default, "rules": [
        {"action": action, "principal": principal} for action, principal in rules]}  # fmt: skip


def cidrs(*values):
    return {"clientCIDRs": list(values)}


POLICIES = {
    "cors": {"cors": CORS},
    "allow-local": {"authorization": authz("Deny", ("Allow", cidrs("127.0.0.1/32")))},
    "deny-local": {"authorization": authz("Allow", ("Deny", cidrs("127.0.0.0/8")))},
    "deny-first": {"authorization": authz(
        "Allow", ("Deny", cidrs("127.0.0.0/8")), ("Allow", cidrs("127.0.0.1/32")))},
    "allow-first": {"authorization": authz(
        "Deny", ("Allow", cidrs("127.0.0.1/32")), ("Deny", cidrs("127.0.0.0/8")))},
    "elsewhere": {"authorization": authz("Deny", ("Allow", cidrs("10.0.0.0/8", "::1/128")))},
    "nobody": {"authorization": authz("Deny")},
    "consumers": {"apiKeyAuth": KEYS, "authorization": authz(
        "Deny", ("Allow", {"consumers": [{"kind": "Consumer", "name": "alice"}]}))},
    "custom-header": {"apiKeyAuth": {**KEYS, "forwardClientIDHeader": "X-Client"},
                      "authorization": authz("Allow", ("Deny", {"consumers": [{"name": "bob"}]}))},
    # Read-only for everyone; writes for the ops team or a tenant admin, from this host only.
    "headers": {"authorization": {"defaultAction": "Deny", "rules": [
        {"action": "Allow", "operation": {"methods": ["GET", "HEAD"]}},
        {"action": "Deny", "principal": {"headers": [{"name": "x-env", "values": ["prod"]}]},
         "operation": {"methods": ["DELETE"]}},
        {"action": "Allow", "principal": {"clientCIDRs": ["127.0.0.0/8"], "headers": [
            {"name": "X-Team", "values": ["ops", "sre"]},
            {"name": "x-role", "values": ["admin"]}]}},
        {"action": "Allow", "principal": {"headers": [{"name": "x-role", "values": ["root"]}]},
         "operation": {"methods": ["PUT"]}},
    ]}},
}  # fmt: skip


@pytest.fixture(scope="module")
def gateway():
    app = Upstream("app")
    state = DesiredState(
        tenant="acme", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[route(name) for name in [*POLICIES, "open"]],
        backends={"app": app.backend()},
        policies=[policy(name, **spec) for name, spec in POLICIES.items()],
        consumers={"alice": {"apiKeys": [ALICE_KEY], "basicAuth": []},
                   "bob": {"apiKeys": [BOB_KEY], "basicAuth": []}},
    )  # fmt: skip
    with running_envoy(state) as ports:
        session = requests.Session()

        def call(method, host, **headers):
            url = f"http://127.0.0.1:{ports[80]}/"
            return session.request(method, url, headers={"Host": host, **headers}, timeout=10)

        call.app = app
        yield call
    app.close()


def preflight(gateway, origin, host="cors.test"):
    return gateway(
        "OPTIONS",
        host,
        Origin=origin,
        **{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-custom"},
    )


@pytest.mark.parametrize("origin", ["https://app.example.org", "https://shop.example.com"])
def test_a_preflight_from_an_allowed_origin_is_answered_by_the_gateway(gateway, origin):
    seen = len(gateway.app.requests)
    response = preflight(gateway, origin)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "x-custom"
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert len(gateway.app.requests) == seen  # never reached the upstream


@pytest.mark.parametrize("origin", [
    "https://evil.test", "http://app.example.org", "https://example.com.evil.test",
    "https://app.example.org.evil.test"])  # fmt: skip
def test_a_preflight_from_another_origin_gets_no_cors_headers(gateway, origin):
    response = preflight(gateway, origin)
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_a_simple_request_from_an_allowed_origin_carries_the_cors_headers(gateway):
    response = gateway("GET", "cors.test", Origin="https://app.example.org")
    assert response.status_code == 200
    assert response.json()["backend"] == "app"
    assert response.headers["access-control-allow-origin"] == "https://app.example.org"
    assert response.headers["access-control-expose-headers"] == "x-trace"
    other = gateway("GET", "cors.test", Origin="https://evil.test")
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


def test_routes_without_cors_answer_no_cors_headers(gateway):
    response = preflight(gateway, "https://app.example.org", host="open.test")
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(("host", "status"), [
    ("allow-local.test", 200),  # allowed by its address, default Deny
    ("deny-local.test", 403),  # denied by its address, default Allow
    ("deny-first.test", 403),  # both rules match: the first decides
    ("allow-first.test", 200),
    ("elsewhere.test", 403),  # no rule matches: default Deny
    ("nobody.test", 403),
    ("open.test", 200),
])  # fmt: skip
def test_client_addresses_are_allowed_by_the_first_matching_rule(gateway, host, status):
    response = gateway("GET", host)
    assert response.status_code == status
    if status == 200:
        assert response.json()["backend"] == "app"


@pytest.mark.parametrize(("host", "headers", "status"), [
    ("consumers.test", {"X-API-Key": ALICE_KEY}, 200),
    ("consumers.test", {"X-API-Key": BOB_KEY}, 403),
    ("consumers.test", {"X-API-Key": BOB_KEY, "x-gantry-consumer": "alice"}, 403),  # forged
    ("consumers.test", {}, 401),  # authentication comes first
    ("custom-header.test", {"X-API-Key": ALICE_KEY}, 200),
    ("custom-header.test", {"X-API-Key": BOB_KEY}, 403),
    ("custom-header.test", {"X-API-Key": BOB_KEY, "X-Client": "alice"}, 403),  # forged
])  # fmt: skip
def test_consumers_are_allowed_or_refused_by_name(gateway, host, headers, status):
    response = gateway("GET", host, **headers)
    assert response.status_code == status
    if status == 200:
        header = "x-client" if host == "custom-header.test" else "x-gantry-consumer"
        assert response.json()["headers"][header] == "alice"


WRITER = {"X-Team": "sre", "X-Role": "admin"}


@pytest.mark.parametrize(("method", "headers", "status"), [
    ("GET", {}, 200),  # rule 0: reading is open
    ("HEAD", {"x-env": "prod"}, 200),
    ("POST", {}, 403),  # no rule matches: default Deny
    ("POST", WRITER, 200),  # rule 2: every header, each with one of its values
    ("POST", {"X-Team": "sre"}, 403),  # one header is not enough
    ("POST", {"X-Team": "dev", "X-Role": "admin"}, 403),  # a value not listed
    ("POST", {"X-Team": "SRE", "X-Role": "admin"}, 403),  # values are case-sensitive
    ("DELETE", WRITER, 200),
    ("DELETE", {**WRITER, "x-env": "prod"}, 403),  # rule 1 decides first
    ("PUT", {"x-role": "root"}, 200),  # rule 3: header and method
    ("PATCH", {"x-role": "root"}, 403),
])  # fmt: skip
def test_headers_and_methods_are_allowed_or_refused_by_the_first_matching_rule(
    gateway, method, headers, status
):
    response = gateway(method, "headers.test", **headers)
    assert response.status_code == status
