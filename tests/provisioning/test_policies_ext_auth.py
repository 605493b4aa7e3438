"""SecurityPolicy extAuth through real Envoy, a real HTTP authorization service and a real
upstream: the service's decision, its answer's headers upstream (only those listed), what it
is sent (path prefix, only the allowed headers), failing closed or open when it is down, and
a policy naming a missing backend (500); and a policy written through the API."""

import json

import pytest
import requests

from provisioning.desired import load_desired_state
from provisioning.ir.build import DesiredState
from tenants.roles import Role
from tests.provisioning.harness import (
    LoopbackServer,
    Upstream,
    free_port,
    running_envoy,
    send,
)

pytestmark = pytest.mark.slow


class AuthServer(LoopbackServer):
    """Allows ``Authorization: Bearer letmein`` (200, ``x-user: alice``) and ``Bearer quiet``
    (200, no headers), answers ``Bearer challenge`` with a 401 challenge and ``Bearer broken``
    with a 500, and refuses everything else with 403. Remembers what it was asked."""

    ANSWERS = {
        "Bearer letmein": (200, b"", {"x-user": "alice", "x-role": "admin"}),
        "Bearer quiet": (200, b"", {}),
        "Bearer broken": (500, b"the auth service broke", {}),
        "Bearer challenge": (401, b"who are you?", {"WWW-Authenticate": 'Bearer realm="acme"'}),
    }
    DENIED = (403, b"denied by the auth service", {"x-denied-by": "auth"})

    def __init__(self):
        def answer(handler, seen):
            status, body, headers = self.ANSWERS.get(
                seen["headers"].get("authorization", ""), self.DENIED
            )
            send(handler, status, body, {**headers, "Content-Type": "text/plain"})

        self._serve_recorded(answer)


def route(name):
    return {"name": name, "spec": {"hostnames": [f"{name}.test"],
                                   "rules": [{"backendRefs": [{"name": "app"}]}]}}  # fmt: skip


def policy(name, backend, **ext_auth):
    http = {"backendRefs": [{"name": backend}], **ext_auth.pop("http", {})}
    ref = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}
    return {"name": name, "kind": "SecurityPolicy",
            "spec": {"targetRefs": [ref], "extAuth": {"http": http, **ext_auth}}}  # fmt: skip


def with_api_keys(ext_auth_policy):
    """The same policy also asking for alice's API key."""
    ext_auth_policy["spec"]["apiKeyAuth"] = {
        "credentialRefs": [{"kind": "Consumer", "name": "alice"}],
        "extractFrom": [{"headers": ["X-API-Key"]}],
    }
    return ext_auth_policy


BEARER = {"Authorization": "Bearer letmein"}
ALICE_KEY = "gak_alice001_secret-one"


@pytest.fixture(scope="module")
def gateway():
    app, auth = Upstream("app"), AuthServer()
    dead = free_port()  # nothing listens there: the authorization service is down
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[route(name) for name in ("guarded", "plain", "open", "down", "lenient",
                                         "tolerant", "missing", "both")],
        backends={"app": app.backend(), "auth": auth.backend(),
                  "dead": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": dead}}]}},
        policies=[
            policy("guarded", "auth", headersToExtAuth=["X-Trace-Hint"],
                   http={"path": "/check", "headersToBackend": ["X-User"]}),
            policy("plain", "auth"),
            policy("down", "dead", timeout="2s"),
            policy("lenient", "dead", timeout="2s", failOpen=True),
            policy("tolerant", "auth", failOpen=True),
            policy("missing", "ghost"),
            with_api_keys(policy("both", "auth", http={"headersToBackend": ["x-user"]})),
        ],
        consumers={"alice": {"apiKeys": [ALICE_KEY], "basicAuth": []}},
    )  # fmt: skip
    with running_envoy(state) as ports:
        session = requests.Session()

        def get(host, path="/", **kwargs):
            headers = {"Host": host, **kwargs.pop("headers", {})}
            url = f"http://127.0.0.1:{ports[80]}{path}"
            return session.get(url, headers=headers, timeout=10, **kwargs)

        def post(path, **kwargs):
            return session.post(f"http://127.0.0.1:{ports[80]}{path}", timeout=10, **kwargs)

        get.app, get.auth, get.post = app, auth, post
        yield get
    app.close()
    auth.close()


def test_an_allowed_request_reaches_the_upstream_with_the_listed_headers(gateway):
    response = gateway("guarded.test", "/orders/7?full=1", headers=BEARER)
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["x-user"] == "alice"
    assert "x-role" not in seen  # the service sent it, but headersToBackend does not list it
    assert response.json()["path"] == "/orders/7?full=1"  # the upstream path is unchanged


def test_the_service_overrides_a_listed_header_the_client_sent(gateway):
    response = gateway("guarded.test", headers={**BEARER, "X-User": "mallory"})
    assert response.status_code == 200
    assert response.json()["headers"]["x-user"] == "alice"


def test_a_client_cannot_pass_a_listed_header_the_answer_lacks(gateway):
    quiet = {"Authorization": "Bearer quiet", "X-User": "mallory"}
    response = gateway("guarded.test", headers=quiet)
    assert response.status_code == 200
    assert "x-user" not in response.json()["headers"]  # the client's own is removed first


def test_without_headers_to_backend_nothing_of_the_answer_goes_upstream(gateway):
    response = gateway("plain.test", headers=BEARER)
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert "x-user" not in seen and "x-role" not in seen


def test_the_service_is_asked_under_its_path_with_only_the_allowed_headers(gateway):
    before = len(gateway.auth.requests)
    extra = {"X-Trace-Hint": "req-1", "Cookie": "session=s3cret", "X-Other": "nope"}
    response = gateway("guarded.test", "/orders/7?full=1", headers={**BEARER, **extra})
    assert response.status_code == 200
    asked = gateway.auth.requests[before:]
    assert len(asked) == 1
    assert asked[0]["path"] == "/check/orders/7?full=1"
    assert asked[0]["headers"]["authorization"] == "Bearer letmein"
    assert asked[0]["headers"]["x-trace-hint"] == "req-1"  # headersToExtAuth
    assert asked[0]["headers"]["host"] == "guarded.test"
    assert "cookie" not in asked[0]["headers"] and "x-other" not in asked[0]["headers"]


def test_without_a_path_the_service_is_asked_with_the_request_path(gateway):
    before = len(gateway.auth.requests)
    gateway("plain.test", "/a/b", headers={**BEARER, "X-Trace-Hint": "req-2"})
    asked = gateway.auth.requests[before:]
    assert [a["path"] for a in asked] == ["/a/b"]
    assert "x-trace-hint" not in asked[0]["headers"]  # not listed by this policy


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_a_denial_goes_to_the_client_as_it_is_and_never_upstream(gateway, headers):
    before = len(gateway.app.requests)
    response = gateway("guarded.test", headers=headers)
    assert response.status_code == 403
    assert response.text == "denied by the auth service"
    assert response.headers.get("x-denied-by") == "auth"
    assert len(gateway.app.requests) == before


def test_a_challenge_goes_to_the_client_as_it_is(gateway):
    before = len(gateway.app.requests)
    response = gateway("guarded.test", headers={"Authorization": "Bearer challenge"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="acme"'
    assert response.text == "who are you?"
    assert len(gateway.app.requests) == before


def test_a_route_without_the_policy_is_not_affected(gateway):
    before = len(gateway.auth.requests)
    response = gateway("open.test", headers={"X-User": "mallory"})
    assert response.status_code == 200
    assert response.json()["headers"]["x-user"] == "mallory"
    assert len(gateway.auth.requests) == before  # the service was not asked


def test_a_service_that_is_down_refuses_requests(gateway):
    before = len(gateway.app.requests)
    response = gateway("down.test", headers=BEARER)
    assert response.status_code == 403  # Envoy's answer when the service cannot be asked
    assert len(gateway.app.requests) == before


def test_fail_open_lets_requests_through_when_the_service_is_down(gateway):
    response = gateway("lenient.test")
    assert response.status_code == 200
    assert response.json()["backend"] == "app"


def test_a_policy_naming_a_missing_backend_fails_closed(gateway):
    before = len(gateway.app.requests)
    assert gateway("missing.test", headers=BEARER).status_code == 500
    assert len(gateway.app.requests) == before


def test_the_answer_of_an_allowed_request_is_the_upstreams(gateway):
    response = gateway("guarded.test", headers=BEARER)
    assert response.headers["server"] == "envoy"  # Envoy rewrites Server; the body is upstream's
    assert json.loads(response.text)["backend"] == "app"


def test_a_service_error_refuses_requests_unless_it_fails_open(gateway):
    broken = {"Authorization": "Bearer broken"}
    assert gateway("guarded.test", headers=broken).status_code == 403  # a 5xx is a failure
    assert gateway("tolerant.test", headers=broken).status_code == 200
    # Failing open is about failures only: the service's denials still stand.
    assert gateway("tolerant.test", headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_a_request_with_a_body_is_checked_without_it(gateway):
    before = len(gateway.auth.requests)
    url_host = {"Host": "guarded.test", **BEARER}
    response = gateway.post("/upload", data=b"x" * 5000, headers=url_host)
    assert response.status_code == 200
    assert len(gateway.app.requests[-1]) and gateway.app.requests[-1]["method"] == "POST"
    asked = gateway.auth.requests[before:]
    assert [a["method"] for a in asked] == ["POST"]
    assert asked[0]["headers"].get("content-length", "0") == "0"


def test_the_service_is_asked_before_the_policys_api_keys_are_checked(gateway):
    key = {"X-API-Key": ALICE_KEY}
    assert gateway("both.test", headers=key).status_code == 403  # the service refused first
    assert gateway("both.test", headers=BEARER).status_code == 401  # then: no key
    response = gateway("both.test", headers={**BEARER, **key})
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert (seen["x-user"], seen["x-gantry-consumer"]) == ("alice", "alice")


def test_a_policy_written_through_the_api_guards_the_gateway(org):
    """API → desired state (the service's backend, which no route uses) → real Envoy; deleting
    the backend makes the policy's routes answer 500."""
    editor, app, auth = org.client(Role.EDITOR), Upstream("app"), AuthServer()
    base = "/api/v1/tenants/acme/"
    try:
        listeners = [{"name": "http", "protocol": "HTTP", "port": 80}]
        for url, body in [
            ("gateways/", {"name": "edge", "spec": {"listeners": listeners}}),
            ("backends/", {"name": "app", "spec": app.backend()}),
            ("backends/", {"name": "auth", "spec": auth.backend()}),
            ("gateways/edge/routes/", {"name": "web", "spec": {
                "rules": [{"backendRefs": [{"name": "app"}]}]}}),
            ("gateways/edge/policies/", {"name": "gate", "kind": "SecurityPolicy", "spec": {
                "targetRefs": [{"kind": "Gateway", "name": "edge"}],
                "extAuth": {"http": {"backendRefs": [{"name": "auth"}],
                                     "headersToBackend": ["x-user"]}}}}),
        ]:  # fmt: skip
            assert editor.post(base + url, body, format="json").status_code == 202
        gateway_id = org.tenant.gateways.get(name="edge").pk
        with running_envoy(load_desired_state(gateway_id)) as ports:
            url = f"http://127.0.0.1:{ports[80]}/"
            allowed = requests.get(url, headers=BEARER, timeout=10)
            assert allowed.status_code == 200
            assert allowed.json()["headers"]["x-user"] == "alice"
            assert requests.get(url, timeout=10).status_code == 403
        editor.delete(base + "backends/auth/")
        with running_envoy(load_desired_state(gateway_id)) as ports:
            url = f"http://127.0.0.1:{ports[80]}/"
            assert requests.get(url, headers=BEARER, timeout=10).status_code == 500
    finally:
        app.close()
        auth.close()
