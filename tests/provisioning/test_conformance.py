"""HTTPRoute behaviour through real Envoy and real upstreams, one test per Gateway API core
conformance behaviour (named after it). The compiled config runs in a static bootstrap.
"""

import collections
import time

import pytest
import requests

from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, running_envoy

pytestmark = pytest.mark.slow


def prefix(value):
    return {"path": {"type": "PathPrefix", "value": value}}


def exact(value):
    return {"path": {"type": "Exact", "value": value}}


def rule(matches, *backends, **extra):
    refs = [{"name": b} if isinstance(b, str) else b for b in backends]
    return {"matches": matches, "backendRefs": refs, **extra}


def route(name, hostnames, *rules, **extra):
    return {"name": name, "spec": {"hostnames": hostnames, "rules": list(rules), **extra}}


def redirect_rule(match_path, **config):
    return {"matches": [exact(match_path)],
            "filters": [{"type": "RequestRedirect", "requestRedirect": config}]}  # fmt: skip


def rewrite_rule(match, *backends, **config):
    return rule([match], *backends, filters=[{"type": "URLRewrite", "urlRewrite": config}])


ROUTES = [
    route("exact", ["exact.test"], rule([exact("/one")], "a"), rule([exact("/two")], "b")),
    route("prefix", ["prefix.test"], rule([prefix("/")], "a"), rule([prefix("/v2")], "b")),
    route("headers", ["headers.test"],
          rule([{"headers": [{"name": "version", "value": "one"}]}], "a"),
          rule([{"headers": [{"name": "version", "value": "two"}]}], "b"),
          rule([{"headers": [{"name": "x-color", "type": "RegularExpression",
                              "value": "re+d"}]}], "c")),
    route("query", ["query.test"],
          rule([{"queryParams": [{"name": "animal", "value": "whale"}]}], "a"),
          rule([{"queryParams": [{"name": "animal", "value": "dolphin"}]}], "b")),
    route("method", ["method.test"], rule([{"method": "POST"}], "a"),
          rule([{"method": "GET"}], "b")),
    route("across-1", ["across.test"], rule([prefix("/a")], "a")),
    route("across-2", ["across.test"], rule([prefix("/b")], "b")),
    route("older", ["prec.test"], rule([prefix("/")], "a"), rule([prefix("/p")], "a")),
    route("newer", ["prec.test"], rule([exact("/exact")], "b"), rule([prefix("/p/longer")], "c"),
          rule([{**prefix("/p"), "headers": [{"name": "x-h", "value": "1"}]}], "c"),
          rule([{"path": {"type": "RegularExpression", "value": "/re/[0-9]+"}}], "b")),
    route("wild", ["a.wild.test", "other.test"], rule([prefix("/")], "a"),
          parentRefs=[{"sectionName": "wild"}]),
    route("weights", ["weight.test"],
          rule([prefix("/")], {"name": "a", "weight": 70}, {"name": "b", "weight": 30})),
    route("reqhdr", ["reqhdr.test"], rule([prefix("/")], "a", filters=[{
        "type": "RequestHeaderModifier", "requestHeaderModifier": {
            "set": [{"name": "X-Set", "value": "set-by-gateway"}],
            "add": [{"name": "X-Add", "value": "added"}], "remove": ["X-Remove"]}}])),
    route("resphdr", ["resphdr.test"], rule([prefix("/")], "a", filters=[{
        "type": "ResponseHeaderModifier", "responseHeaderModifier": {
            "set": [{"name": "X-Resp", "value": "from-gateway"}], "remove": ["X-Debug"]}}])),
    route("redirect", ["redirect.test"],
          redirect_rule("/host", hostname="example.org", statusCode=301),
          redirect_rule("/full", path={"type": "ReplaceFullPath", "replaceFullPath": "/new"}),
          {"matches": [prefix("/prefix")], "filters": [{"type": "RequestRedirect",
           "requestRedirect": {"path": {"type": "ReplacePrefixMatch",
                                        "replacePrefixMatch": "/moved"}}}]},
          redirect_rule("/port", port=8443),
          redirect_rule("/scheme", scheme="https", statusCode=308)),
    route("rewrite", ["rewrite.test"],
          rewrite_rule(prefix("/prefix"), "a", hostname="rewritten.example",
                       path={"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}),
          rewrite_rule(prefix("/strip"), "a",
                       path={"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}),
          rewrite_rule(prefix("/full"), "a",
                       path={"type": "ReplaceFullPath", "replaceFullPath": "/replaced"}),
          rewrite_rule(prefix("/"), "a",
                       path={"type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"})),
    route("mirror", ["mirror.test"], rule([prefix("/")], "a", filters=[{
        "type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow"}}}])),
    route("invalid", ["invalid.test"], rule([prefix("/gone")], "nowhere"), rule([prefix("/none")]),
          rule([prefix("/partial")], {"name": "a", "weight": 1}, {"name": "nowhere", "weight": 1})),
    route("timeout", ["timeout.test"], rule([prefix("/")], "a", timeouts={"request": "300ms"})),
]  # fmt: skip


@pytest.fixture(scope="module")
def gateway():
    upstreams = {name: Upstream(name) for name in ["a", "b", "c", "shadow"]}
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [
            {"name": "http", "protocol": "HTTP", "port": 80},
            {"name": "wild", "protocol": "HTTP", "port": 80, "hostname": "*.wild.test"},
        ]},
        routes=ROUTES,
        backends={name: u.backend() for name, u in upstreams.items()},
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


def backend(response):
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()["backend"]


def test_http_route_exact_path_matching(gateway):
    assert backend(gateway("exact.test", "/one")) == "a"
    assert backend(gateway("exact.test", "/two")) == "b"
    assert gateway("exact.test", "/one/").status_code == 404
    assert gateway("exact.test", "/three").status_code == 404


def test_http_route_matching_path_prefix_by_segment(gateway):
    assert backend(gateway("prefix.test", "/v2")) == "b"
    assert backend(gateway("prefix.test", "/v2/users")) == "b"
    assert backend(gateway("prefix.test", "/v2example")) == "a"
    assert backend(gateway("prefix.test", "/")) == "a"


def test_http_route_header_matching(gateway):
    assert backend(gateway("headers.test", headers={"Version": "one"})) == "a"
    assert backend(gateway("headers.test", headers={"version": "two"})) == "b"
    assert backend(gateway("headers.test", headers={"X-Color": "reeed"})) == "c"
    assert gateway("headers.test", headers={"version": "three"}).status_code == 404


def test_http_route_query_param_matching(gateway):
    assert backend(gateway("query.test", "/?animal=whale")) == "a"
    assert backend(gateway("query.test", "/?animal=dolphin&x=1")) == "b"
    assert gateway("query.test", "/?animal=shark").status_code == 404


def test_http_route_method_matching(gateway):
    assert backend(gateway("method.test", method="POST")) == "a"
    assert backend(gateway("method.test", method="GET")) == "b"
    assert gateway("method.test", method="DELETE").status_code == 404


def test_http_route_matching_across_routes(gateway):
    assert backend(gateway("across.test", "/a")) == "a"
    assert backend(gateway("across.test", "/b")) == "b"


def test_http_route_match_precedence(gateway):
    assert backend(gateway("prec.test", "/exact")) == "b"  # exact beats the older prefix
    assert backend(gateway("prec.test", "/p/longer/x")) == "c"  # longest prefix
    assert backend(gateway("prec.test", "/p", headers={"x-h": "1"})) == "c"  # more headers
    assert backend(gateway("prec.test", "/p")) == "a"  # same prefix: the older route
    assert backend(gateway("prec.test", "/re/42")) == "b"


def test_http_route_listener_hostname_matching(gateway):
    assert backend(gateway("a.wild.test")) == "a"
    assert gateway("other.test").status_code == 404  # outside the listener's hostname
    assert gateway("b.wild.test").status_code == 404  # inside, but no route claims it
    assert backend(gateway("a.wild.test:8080")) == "a"  # a port in Host does not matter


def test_http_route_weight(gateway):
    counts = collections.Counter(backend(gateway("weight.test")) for _ in range(400))
    assert set(counts) == {"a", "b"}
    assert 0.60 <= counts["a"] / 400 <= 0.80, counts  # 70 % expected; ~5 standard deviations


def test_http_route_request_header_modifier(gateway):
    seen = gateway("reqhdr.test", headers={"X-Set": "client", "X-Add": "client",
                                           "X-Remove": "gone"}).json()["headers"]  # fmt: skip
    assert seen["x-set"] == "set-by-gateway"
    assert seen["x-add"] == "client,added"
    assert "x-remove" not in seen


def test_http_route_response_header_modifier(gateway):
    response = gateway("resphdr.test")
    assert response.headers["X-Resp"] == "from-gateway"
    assert "X-Debug" not in response.headers
    plain = gateway("prefix.test")
    assert plain.headers["X-Debug"] == "upstream-debug"


def test_http_route_redirect_host_and_status(gateway):
    response = gateway("redirect.test", "/host")
    assert response.status_code == 301
    assert response.headers["Location"] == "http://example.org/host"


def test_http_route_redirect_path(gateway):
    full = gateway("redirect.test", "/full")
    assert (full.status_code, full.headers["Location"]) == (302, "http://redirect.test/new")
    moved = gateway("redirect.test", "/prefix/deep/path")
    assert moved.headers["Location"] == "http://redirect.test/moved/deep/path"


def test_http_route_redirect_port_and_scheme(gateway):
    assert gateway("redirect.test", "/port").headers["Location"] == "http://redirect.test:8443/port"
    scheme = gateway("redirect.test", "/scheme")
    assert (scheme.status_code, scheme.headers["Location"]) == (308, "https://redirect.test/scheme")


def test_http_route_rewrite_host_and_path(gateway):
    seen = gateway("rewrite.test", "/prefix/item?id=1").json()
    assert seen["path"] == "/new/item?id=1"
    assert seen["headers"]["host"] == "rewritten.example"
    assert gateway("rewrite.test", "/strip/item").json()["path"] == "/item"
    assert gateway("rewrite.test", "/strip").json()["path"] == "/"
    assert gateway("rewrite.test", "/full/anything").json()["path"] == "/replaced"
    # A "/" prefix replaced: the replacement becomes the leading path element(s).
    assert gateway("rewrite.test", "/other/item").json()["path"] == "/v2/other/item"


def test_http_route_request_mirror(gateway):
    shadow = gateway.upstreams["shadow"]
    before = len(shadow.requests)
    assert backend(gateway("mirror.test", "/mirrored")) == "a"
    for _ in range(100):
        if len(shadow.requests) > before:
            break
        time.sleep(0.02)
    mirrored = shadow.requests[before]
    assert mirrored["path"] == "/mirrored"
    assert mirrored["headers"]["host"].startswith("mirror.test")


def test_http_route_invalid_backend_ref_answers_500(gateway):
    assert gateway("invalid.test", "/gone").status_code == 500
    assert gateway("invalid.test", "/none").status_code == 500


def test_http_route_invalid_backend_share_answers_500(gateway):
    """Half the weight names a missing backend: about half the requests answer 500."""
    statuses = collections.Counter(gateway("invalid.test", "/partial").status_code
                                   for _ in range(200))  # fmt: skip
    assert set(statuses) == {200, 500}, statuses
    assert 0.35 <= statuses[500] / 200 <= 0.65, statuses
    assert gateway("prefix.test", "/", headers={"x-gantry-invalid-backend": "1"}).ok


def test_http_route_request_timeout_answers_504(gateway):
    assert backend(gateway("timeout.test")) == "a"
    assert gateway("timeout.test", headers={"X-Delay-Ms": "1500"}).status_code == 504
