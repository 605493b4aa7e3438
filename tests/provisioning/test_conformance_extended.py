"""HTTPRoute Extended features through real Envoy and real upstreams, one test per Gateway API
conformance behaviour (named after it): per-backend header filters, an unknown backendRef kind,
mirroring a fraction of requests, retries, and the CORS filter."""

import collections
import time

import pytest
import requests

from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, running_envoy
from tests.provisioning.test_conformance import prefix, route, rule

pytestmark = pytest.mark.slow


def mirror(fraction=None, percent=None):
    config = {"backendRef": {"name": "shadow"}}
    if fraction:
        config["fraction"] = fraction
    if percent is not None:
        config["percent"] = percent
    return {"type": "RequestMirror", "requestMirror": config}


def header_filter(value):
    modifier = {"set": [{"name": "X-Backend-Filter", "value": value}]}
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": modifier}


ROUTES = [
    route("backend-filters", ["backend-filters.test"], rule(
        [prefix("/")],
        {"name": "a", "filters": [header_filter("for-a")]},
        {"name": "b", "filters": [header_filter("for-b"), {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {"set": [{"name": "X-Answered-By", "value": "b"}]}}]},
    )),
    route("one-backend-filter", ["one-filter.test"],
          rule([prefix("/")], {"name": "a", "filters": [header_filter("only-a")]})),
    route("unknown-kind", ["unknown-kind.test"],
          rule([prefix("/service")], {"group": "", "kind": "Service", "name": "a"}),
          rule([prefix("/half")], {"name": "a"}, {"group": "example.com", "kind": "Thing",
                                                  "name": "b"}),
          rule([prefix("/backend")], {"group": "gateway.envoyproxy.io", "kind": "Backend",
                                      "name": "a"})),
    route("mirror-half", ["mirror-half.test"],
          rule([prefix("/")], "a", filters=[mirror({"numerator": 1, "denominator": 2})])),
    route("mirror-none", ["mirror-none.test"],
          rule([prefix("/")], "a", filters=[mirror(percent=0)])),
    route("retry", ["retry.test"],
          rule([prefix("/flaky")], "flaky", retry={"codes": [503], "attempts": 2,
                                                   "backoff": "1ms"}),
          rule([prefix("/failing")], "failing", retry={"codes": [503], "attempts": 3,
                                                       "backoff": "1ms"}),
          rule([prefix("/no-retry")], "failing")),
    route("session", ["session.test"],
          rule([prefix("/cookie")], "pair", sessionPersistence={
              "sessionName": "sticky", "absoluteTimeout": "1h",
              "cookieConfig": {"lifetimeType": "Permanent"}}),
          rule([prefix("/header")], "pair", sessionPersistence={"type": "Header"}),
          rule([prefix("/none")], "pair")),
    route("cors", ["cors.test"], rule([prefix("/")], "a", filters=[{"type": "CORS", "cors": {
        "allowOrigins": ["https://app.example.com", "https://*.trusted.example"],
        "allowMethods": ["GET", "PUT"], "allowHeaders": ["x-client"], "maxAge": 600,
        "allowCredentials": True}}])),
]  # fmt: skip


@pytest.fixture(scope="module")
def gateway():
    upstreams = {name: Upstream(name) for name in ["a", "b", "shadow"]}
    upstreams["failing"] = Upstream("failing", status=503)
    backends = {name: u.backend() for name, u in upstreams.items()}
    # One endpoint that always fails and one that works: a retry goes to the other one.
    good = Upstream("good")
    upstreams["good"] = good
    upstreams["s1"], upstreams["s2"] = Upstream("s1"), Upstream("s2")
    backends["pair"] = {"endpoints": [
        {"ip": {"address": "127.0.0.1", "port": upstreams[name].port}} for name in ("s1", "s2")
    ]}  # fmt: skip
    backends["flaky"] = {"endpoints": [
        {"ip": {"address": "127.0.0.1", "port": upstreams["failing"].port}},
        {"ip": {"address": "127.0.0.1", "port": good.port}},
    ]}  # fmt: skip
    state = DesiredState(
        tenant="acme", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=ROUTES, backends=backends,
    )  # fmt: skip
    with running_envoy(state) as ports:
        session = requests.Session()

        def get(host, path="/", method="GET", **kwargs):
            headers = {"Host": host, **kwargs.pop("headers", {})}
            url = f"http://127.0.0.1:{ports[80]}{path}"
            return session.request(method, url, headers=headers, allow_redirects=False,
                                   timeout=10, **kwargs)  # fmt: skip

        get.upstreams = upstreams
        yield get
    for upstream in upstreams.values():
        upstream.close()


def test_http_route_backend_request_header_modifier(gateway):
    seen = collections.Counter()
    for _ in range(40):
        response = gateway("backend-filters.test")
        assert response.status_code == 200
        body = response.json()
        seen[body["backend"]] += 1
        expected = {"a": "for-a", "b": "for-b"}[body["backend"]]
        assert body["headers"]["x-backend-filter"] == expected
        # The response filter of b's share alone.
        assert (response.headers.get("x-answered-by") == "b") == (body["backend"] == "b")
    assert set(seen) == {"a", "b"}, seen
    body = gateway("one-filter.test").json()
    assert (body["backend"], body["headers"]["x-backend-filter"]) == ("a", "only-a")


def test_http_route_invalid_backend_ref_unknown_kind(gateway):
    """A Service is no Backend of the tenant (even one named like a Backend): 500, and the
    unknown kind's share of a split answers 500 too; naming the Backend kind works."""
    assert gateway("unknown-kind.test", "/service").status_code == 500
    statuses = collections.Counter(
        gateway("unknown-kind.test", "/half").status_code for _ in range(100)
    )
    assert set(statuses) == {200, 500}, statuses
    assert gateway("unknown-kind.test", "/backend").json()["backend"] == "a"


def _mirrored(gateway, host: str, count: int) -> int:
    shadow = gateway.upstreams["shadow"]
    before = len(shadow.requests)
    for index in range(count):
        assert gateway(host, f"/m/{index}").status_code == 200
    time.sleep(0.5)  # mirrored requests are sent alongside, not waited for
    return len([r for r in shadow.requests[before:] if r["path"].startswith("/m/")])


def test_http_route_request_percentage_mirror(gateway):
    """A fraction of 1/2 mirrors about half the requests; 0 % none."""
    mirrored = _mirrored(gateway, "mirror-half.test", 200)
    assert 60 <= mirrored <= 140, mirrored
    assert _mirrored(gateway, "mirror-none.test", 50) == 0


def test_http_route_retry(gateway):
    """A 503 is retried on the other endpoint: every request succeeds. A backend that always
    fails is tried 1 + attempts times; without retry, once."""
    assert all(gateway("retry.test", "/flaky").status_code == 200 for _ in range(30))
    failing = gateway.upstreams["failing"]
    before = len(failing.requests)
    assert gateway("retry.test", "/failing").status_code == 503
    assert len(failing.requests) - before == 4
    before = len(failing.requests)
    assert gateway("retry.test", "/no-retry").status_code == 503
    assert len(failing.requests) - before == 1


def test_http_route_cors(gateway):
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT",
                 "Access-Control-Request-Headers": "x-client"}  # fmt: skip
    answer = gateway("cors.test", "/", method="OPTIONS", headers=preflight)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "PUT" in answer.headers["access-control-allow-methods"]
    assert answer.headers["access-control-max-age"] == "600"
    assert answer.headers["access-control-allow-credentials"] == "true"
    wildcard = gateway("cors.test", "/", headers={"Origin": "https://api.trusted.example"})
    assert wildcard.headers["access-control-allow-origin"] == "https://api.trusted.example"
    other = gateway("cors.test", "/", headers={"Origin": "https://evil.example.com"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


def test_http_route_session_persistence(gateway):
    """Gateway API SessionPersistence: a Permanent cookie (Max-Age from absoluteTimeout) or a
    header names the endpoint that answered first; requests bringing it back go there."""
    plain = collections.Counter(gateway("session.test", "/none").json()["backend"]
                                for _ in range(40))  # fmt: skip
    assert set(plain) == {"s1", "s2"}, plain  # balanced without a session

    first = gateway("session.test", "/cookie")
    cookie = first.cookies.get("sticky")
    assert cookie, first.headers
    assert "Max-Age=3600" in first.headers["set-cookie"]
    pinned = first.json()["backend"]
    followed = {gateway("session.test", "/cookie", headers={"Cookie": f"sticky={cookie}"})
                .json()["backend"] for _ in range(20)}  # fmt: skip
    assert followed == {pinned}

    first = gateway("session.test", "/header")
    session = first.headers["x-gantry-session"]
    pinned = first.json()["backend"]
    followed = {gateway("session.test", "/header", headers={"x-gantry-session": session})
                .json()["backend"] for _ in range(20)}  # fmt: skip
    assert followed == {pinned}
