"""Bad route specs: each invalid field is a 400 naming its JSON path and changes nothing; a
regular expression RE2 refuses is a 400 quoting RE2's reason."""

import pytest

from gateways import services
from gateways.models import Route
from tenants.audit import Actor
from tenants.models import AuditEvent
from tenants.roles import Role

URL = "/api/v1/tenants/acme/gateways/edge/routes/"
LISTENERS = [
    {"name": "http", "protocol": "HTTP", "port": 80},
    {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": "*.example.com",
     "tls": {"certificateRefs": [{"name": "example-cert"}]}},
]  # fmt: skip
RULE = {
    "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
    "backendRefs": [{"name": "api"}],
}


@pytest.fixture
def editor(org):
    actor = Actor.system("tests")
    services.create_gateway(actor, org.tenant, "edge", {"listeners": LISTENERS})
    return org.client(Role.EDITOR)


def create(client, name="web", **spec):
    return client.post(URL, {"name": name, "spec": spec}, format="json")


@pytest.mark.parametrize(
    ("match", "path", "says"),
    [
        ({"path": {"type": "RegularExpression", "value": "/(?=x)"}},
         "spec.rules[0].matches[0].path.value", "invalid perl operator"),
        ({"path": {"type": "RegularExpression", "value": "/a(b"}},
         "spec.rules[0].matches[0].path.value", "missing )"),
        ({"path": {"type": "RegularExpression", "value": "/x{2000}"}},
         "spec.rules[0].matches[0].path.value", "invalid repetition size"),
        ({"path": {"type": "RegularExpression", "value": "/\\pN{1,50}"}},
         "spec.rules[0].matches[0].path.value", "program size"),
        ({"headers": [{"type": "RegularExpression", "name": "x-a", "value": "(a|b"}]},
         "spec.rules[0].matches[0].headers[0].value", "missing )"),
        ({"queryParams": [{"type": "RegularExpression", "name": "q", "value": "\\1"}]},
         "spec.rules[0].matches[0].queryParams[0].value", "invalid escape sequence"),
    ],
)  # fmt: skip
def test_a_regex_re2_refuses_is_a_400_quoting_re2(editor, match, path, says):
    response = create(editor, rules=[{"matches": [match]}])
    assert response.status_code == 400, response.content
    fields = {f["path"]: f["message"] for f in response.json()["error"]["fields"]}
    assert path in fields, fields
    assert "RE2" in fields[path] or "program size" in fields[path]
    assert says in fields[path]
    assert not Route.objects.exists()


def rule(**fields):
    return {"rules": [fields]}


def flt(kind: str, **config):
    field = kind[0].lower() + kind[1:] if kind != "URLRewrite" else "urlRewrite"
    return {"type": kind, field: config}


def redirect(**config):
    return flt("RequestRedirect", **config)


def rewrite(**config):
    return flt("URLRewrite", **config)


PREFIX = {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}
P = "spec.rules[0]"


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"hostnames": ["Example.com"]}, "spec.hostnames[0]"),
        ({"hostnames": ["example.com:8080"]}, "spec.hostnames[0]"),
        ({"hostnames": ["10.0.0.1"]}, "spec.hostnames[0]"),
        ({"hostnames": ["a.*.example.com"]}, "spec.hostnames[0]"),
        ({"hostnames": ["a.com", "a.com"]}, "spec.hostnames[1]"),
        ({"hostnames": [f"h{i}.com" for i in range(17)]}, "spec.hostnames"),
        ({"parentRefs": [{"sectionName": "grpc"}]}, "spec.parentRefs[0].sectionName"),
        ({"parentRefs": [{"sectionName": "http"}, {"sectionName": "http"}]},
         "spec.parentRefs[1].sectionName"),
        ({"parentRefs": [{"name": "edge"}]}, "spec.parentRefs[0].name"),
        ({"rules": []}, "spec.rules"),
        ({"rules": [{}] * 17}, "spec.rules"),
        ({"rules": [{"matches": [{}] * 64}, {"matches": [{}] * 64}, {"matches": [{}]}]},
         "spec.rules[2].matches"),
        ({"rules": [{"name": "a"}, {"name": "a"}]}, "spec.rules[1].name"),
        (rule(matches=[{}] * 65), f"{P}.matches"),
        (rule(matches=[{"path": {"value": "api"}}]), f"{P}.matches[0].path.value"),
        (rule(matches=[{"path": {"type": "Exact", "value": "/a//b"}}]),
         f"{P}.matches[0].path.value"),
        (rule(matches=[{"path": {"value": "/a/../b"}}]), f"{P}.matches[0].path.value"),
        (rule(matches=[{"path": {"value": "/a/./b"}}]), f"{P}.matches[0].path.value"),
        (rule(matches=[{"path": {"value": "/a%2fb"}}]), f"{P}.matches[0].path.value"),
        (rule(matches=[{"path": {"value": "/a%2Fb"}}]), f"{P}.matches[0].path.value"),
        (rule(matches=[{"path": {"value": "/a#b"}}]), f"{P}.matches[0].path.value"),
        (rule(matches=[{"path": {"value": "/a/.."}}]), f"{P}.matches[0].path.value"),
        (rule(matches=[{"path": {"value": "/a b"}}]), f"{P}.matches[0].path.value"),
        (rule(matches=[{"path": {"value": "/" + "a" * 1024}}]), f"{P}.matches[0].path.value"),
        (rule(matches=[{"path": {"type": "Suffix", "value": "/a"}}]), f"{P}.matches[0].path.type"),
        (rule(matches=[{"method": "get"}]), f"{P}.matches[0].method"),
        (rule(matches=[{"headers": [{"name": ":authority", "value": "a"}]}]),
         f"{P}.matches[0].headers[0].name"),
        (rule(matches=[{"headers": [{"name": "x-a", "value": ""}]}]),
         f"{P}.matches[0].headers[0].value"),
        (rule(matches=[{"headers": [{"name": "x-a", "value": "a\r\nb"}]}]),
         f"{P}.matches[0].headers[0].value"),
        (rule(matches=[{"headers": [{"name": "x-a", "value": "a\u0000"}]}]),
         f"{P}.matches[0].headers[0].value"),
        (rule(matches=[{"headers": [{"name": "X-A", "value": "1"},
                                    {"name": "x-a", "value": "2"}]}]),
         f"{P}.matches[0].headers[1].name"),
        (rule(matches=[{"headers": [{"name": f"x-{i}", "value": "1"} for i in range(17)]}]),
         f"{P}.matches[0].headers"),
        (rule(matches=[{"queryParams": [{"name": "q", "value": "1"},
                                        {"name": "q", "value": "2"}]}]),
         f"{P}.matches[0].queryParams[1].name"),
        (rule(matches=[{"queryParams": [{"name": "q", "value": "v" * 1025}]}]),
         f"{P}.matches[0].queryParams[0].value"),
        (rule(backendRefs=[{"name": "api", "weight": 1000001}]), f"{P}.backendRefs[0].weight"),
        (rule(backendRefs=[{"name": "api", "weight": -1}]), f"{P}.backendRefs[0].weight"),
        (rule(backendRefs=[{"name": "api", "port": 0}]), f"{P}.backendRefs[0].port"),
        (rule(backendRefs=[{"name": "Api"}]), f"{P}.backendRefs[0].name"),
        (rule(backendRefs=[{"name": "api", "kind": "Not a kind"}]), f"{P}.backendRefs[0].kind"),
        (rule(backendRefs=[{"name": "api", "group": "Bad_Group"}]), f"{P}.backendRefs[0].group"),
        (rule(backendRefs=[{"name": "api", "filters": [rewrite()]}]),
         f"{P}.backendRefs[0].filters[0].type"),
        (rule(backendRefs=[{"name": "api", "filters": [flt("RequestHeaderModifier"),
                                                       flt("RequestHeaderModifier")]}]),
         f"{P}.backendRefs[0].filters[1].type"),
        (rule(backendRefs=[{"name": "api", "filters": [
            flt("RequestHeaderModifier", set=[{"name": "Content-Length", "value": "1"}])]}]),
         f"{P}.backendRefs[0].filters[0].requestHeaderModifier.set[0].name"),
        (rule(retry={"codes": [200]}), f"{P}.retry.codes[0]"),
        (rule(retry={"codes": [503, 503]}), f"{P}.retry.codes[1]"),
        (rule(retry={"attempts": 11}), f"{P}.retry.attempts"),
        (rule(retry={"backoff": "fast"}), f"{P}.retry.backoff"),
        (rule(retry={"backoff": "0s"}), f"{P}.retry.backoff"),
        (rule(retry={"perTryTimeout": "1s"}), f"{P}.retry.perTryTimeout"),
        (rule(filters=[{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": "api"}, "fraction": {"numerator": 3, "denominator": 2}}}]),
         f"{P}.filters[0].requestMirror.fraction.numerator"),
        (rule(filters=[{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": "api"}, "fraction": {"numerator": 1, "denominator": 0}}}]),
         f"{P}.filters[0].requestMirror.fraction.denominator"),
        (rule(filters=[{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": "api"}, "percent": 5, "fraction": {"numerator": 1}}}]),
         f"{P}.filters[0].requestMirror.fraction"),
        (rule(filters=[{"type": "CORS", "cors": {"allowOrigins": ["ftp://a.example.com"]}}]),
         f"{P}.filters[0].cors.allowOrigins[0]"),
        (rule(filters=[{"type": "CORS", "cors": {"allowOrigins": []}}]),
         f"{P}.filters[0].cors.allowOrigins"),
        (rule(filters=[{"type": "CORS", "cors": {"allowOrigins": ["*"], "maxAge": 0}}]),
         f"{P}.filters[0].cors.maxAge"),
        (rule(backendRefs=[{"name": "api"}] * 17), f"{P}.backendRefs"),
        (rule(timeouts={"request": "10"}), f"{P}.timeouts.request"),
        (rule(timeouts={"request": "1.5s"}), f"{P}.timeouts.request"),
        (rule(timeouts={"backendRequest": "123456s"}), f"{P}.timeouts.backendRequest"),
        (rule(timeouts={"request": "1s", "backendRequest": "1s1ms"}),
         f"{P}.timeouts.backendRequest"),
        (rule(filters=[{"type": "CORS"}]), f"{P}.filters[0].cors"),
        (rule(filters=[{"type": "ExtensionRef"}]), f"{P}.filters[0].type"),
        (rule(filters=[{"type": "RequestHeaderModifier"}]),
         f"{P}.filters[0].requestHeaderModifier"),
        (rule(filters=[{"type": "RequestMirror", "requestRedirect": {}}]),
         f"{P}.filters[0].requestRedirect"),
        (rule(filters=[flt("RequestHeaderModifier", set=[{"name": "Host", "value": "x"}])]),
         f"{P}.filters[0].requestHeaderModifier.set[0].name"),
        (rule(filters=[flt("ResponseHeaderModifier", add=[{"name": "x", "value": "1"}],
                           remove=["X"])]),
         f"{P}.filters[0].responseHeaderModifier.remove[0]"),
        (rule(filters=[flt("RequestHeaderModifier", remove=["a b"])]),
         f"{P}.filters[0].requestHeaderModifier.remove[0]"),
        (rule(filters=[flt("RequestHeaderModifier"), flt("RequestHeaderModifier")]),
         f"{P}.filters[1].type"),
        (rule(filters=[redirect(), rewrite()]), f"{P}.filters[1].type"),
        (rule(filters=[redirect()], backendRefs=[{"name": "api"}]), f"{P}.filters[0].type"),
        (rule(filters=[redirect(statusCode=305)]), f"{P}.filters[0].requestRedirect.statusCode"),
        (rule(filters=[redirect(scheme="ftp")]), f"{P}.filters[0].requestRedirect.scheme"),
        (rule(filters=[redirect(hostname="*.example.com")]),
         f"{P}.filters[0].requestRedirect.hostname"),
        (rule(filters=[redirect(port=70000)]), f"{P}.filters[0].requestRedirect.port"),
        (rule(filters=[redirect(path={"type": "ReplaceFullPath"})]),
         f"{P}.filters[0].requestRedirect.path.replaceFullPath"),
        (rule(filters=[redirect(path={"type": "ReplaceFullPath", "replacePrefixMatch": "/a",
                                      "replaceFullPath": "/b"})]),
         f"{P}.filters[0].requestRedirect.path.replacePrefixMatch"),
        (rule(filters=[rewrite(path={"type": "ReplaceFullPath", "replaceFullPath": "v2"})]),
         f"{P}.filters[0].urlRewrite.path.replaceFullPath"),
        (rule(matches=[{"path": {"type": "Exact", "value": "/a"}}], filters=[rewrite(path=PREFIX)]),
         f"{P}.filters[0].urlRewrite.path.type"),
        (rule(matches=[{"path": {"value": "/a"}}, {"path": {"type": "Exact", "value": "/b"}}],
              filters=[redirect(path=PREFIX)]),
         f"{P}.filters[0].requestRedirect.path.type"),
        (rule(filters=[flt("RequestMirror", backendRef={"name": "api"}, percent=101)]),
         f"{P}.filters[0].requestMirror.percent"),
        (rule(filters=[flt("RequestMirror")]), f"{P}.filters[0].requestMirror.backendRef"),
        (rule(filters=[flt("RequestMirror", backendRef={"name": "api"})] * 17), f"{P}.filters"),
        (rule(sessionPersistence={"idleTimeout": "30m"}), f"{P}.sessionPersistence.idleTimeout"),
        (rule(sessionPersistence={"type": "Query"}), f"{P}.sessionPersistence.type"),
        (rule(sessionPersistence={"sessionName": "a b"}), f"{P}.sessionPersistence.sessionName"),
        (rule(sessionPersistence={"cookieConfig": {"lifetimeType": "Permanent"}}),
         f"{P}.sessionPersistence.absoluteTimeout"),
        (rule(sessionPersistence={"absoluteTimeout": "1h"}),
         f"{P}.sessionPersistence.absoluteTimeout"),
        (rule(sessionPersistence={"type": "Header", "cookieConfig": {}}),
         f"{P}.sessionPersistence.cookieConfig"),
        (rule(sessionPersistence={"absoluteTimeout": "500ms",
                                  "cookieConfig": {"lifetimeType": "Permanent"}}),
         f"{P}.sessionPersistence.absoluteTimeout"),
        ({"rules": [{"matches": [{"path": {"value": "/"}}], "sessionAffinity": {}}]},
         f"{P}.sessionAffinity"),
        ({"hostname": ["a.com"]}, "spec.hostname"),
    ],
)  # fmt: skip
def test_bad_input_names_the_json_path_and_changes_nothing(editor, spec, path):
    create(editor, rules=[RULE])
    before = (Route.objects.get(name="web").spec, AuditEvent.objects.count())
    for response in (
        create(editor, "other", **spec),
        editor.patch(URL + "web/", {"spec": spec}, format="json"),
        editor.put(URL + "web/", {"spec": spec}, format="json"),
    ):
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert path in [field["path"] for field in error["fields"]], error
        assert path in error["message"]
    assert not Route.objects.filter(name="other").exists()
    assert (Route.objects.get(name="web").spec, AuditEvent.objects.count()) == before
