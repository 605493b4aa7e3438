"""Declarative configuration: ``POST …/apply/`` and ``GET …/export/`` through the API."""

import json

import pytest
import requests
import yaml
from django.db import connection

from gateways.models import Backend, Gateway, Policy, Route
from provisioning.compile import compile_gateway
from provisioning.desired import load_desired_state
from provisioning.envoy import validate
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.provisioning.harness import Upstream, running_envoy

APPLY = "/api/v1/tenants/{}/apply/"
EXPORT = "/api/v1/tenants/{}/export/"

FILE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge, namespace: acme}}
spec:
  gatewayClassName: gantry
  listeners:
  - {{name: http, protocol: HTTP, port: 80}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: app}}
spec:
  endpoints:
  - ip: {{address: 127.0.0.1, port: {port}}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: legacy}}
spec:
  endpoints:
  - ip: {{address: 10.0.0.9, port: 8080}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [shop.test]
  rules:
  - backendRefs: [{{name: app}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api}}
spec:
  parentRefs: [{{name: edge, sectionName: http}}]
  hostnames: [api.test]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /v1}}}}]
    backendRefs: [{{name: app}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: old}}
spec:
  parentRefs: [{{name: edge}}]
  hostnames: [old.test]
  rules:
  - backendRefs: [{{name: legacy}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {{name: retries}}
spec:
  targetRefs: [{{kind: Gateway, name: edge}}]
  retry: {{numRetries: 2}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: SecurityPolicy
metadata: {{name: cors}}
spec:
  targetRefs: [{{kind: HTTPRoute, name: shop}}]
  cors: {{allowOrigins: ["https://shop.test"]}}
"""


def post(client, slug, body, *, content_type="application/yaml", **query):
    url = APPLY.format(slug)
    if not isinstance(body, str):
        body = json.dumps(body)
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return client.generic("POST", url, body, content_type=content_type)


def snapshot_tables() -> dict:
    """Every row of the tables apply may touch, as text (to compare byte for byte)."""
    tables = ["gateways_gateway", "gateways_backend", "gateways_route", "gateways_policy",
              "tenants_auditevent", "provisioning_configrevision"]  # fmt: skip
    out = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT t::text FROM {table} t ORDER BY 1")  # noqa: S608
            out[table] = [row[0] for row in cursor.fetchall()]
    return out


@pytest.fixture
def editor(org):
    return org.client(Role.EDITOR)


def test_a_realistic_file_creates_everything_and_envoy_serves_it(org, editor):
    upstream = Upstream("app")
    try:
        answer = post(editor, "acme", FILE.format(port=upstream.port))
        assert answer.status_code == 200, answer.json()
        body = answer.json()
        assert body["summary"] == {"created": 8, "configured": 0, "unchanged": 0, "pruned": 0}
        assert {(r["kind"], r["name"]) for r in body["results"]} >= {
            ("Gateway", "edge"), ("HTTPRoute", "shop"), ("SecurityPolicy", "cors")}  # fmt: skip
        shop = next(r for r in body["results"] if r["name"] == "shop")
        assert shop["gateway"] == "edge" and "+  - shop.test" in shop["diff"]
        assert Route.objects.filter(gateway__name="edge").count() == 3
        assert Policy.objects.get(name="cors").gateway.name == "edge"
        assert Route.objects.get(name="api").spec["parentRefs"] == [{"sectionName": "http"}]
        assert "parentRefs" not in Route.objects.get(name="shop").spec
        # every write is audited like a single write
        assert AuditEvent.objects.filter(tenant=org.tenant, action="create").count() >= 8

        state = load_desired_state(Gateway.objects.get(name="edge").pk)
        result = validate(compile_gateway(state))
        assert result.ok, result.message
        with running_envoy(state) as ports:
            url = f"http://127.0.0.1:{ports[80]}/hello"
            served = requests.get(url, headers={"Host": "shop.test"}, timeout=5)
            assert served.status_code == 200 and served.json()["backend"] == "app"
            unrouted = requests.get(url, headers={"Host": "api.test"}, timeout=5)
            assert unrouted.status_code == 404  # api.test only routes /v1
    finally:
        upstream.close()


def test_applying_the_same_file_twice_changes_nothing(org, editor):
    text = FILE.format(port=9000)
    assert post(editor, "acme", text).status_code == 200
    before = snapshot_tables()
    again = post(editor, "acme", text).json()
    assert again["summary"] == {"created": 0, "configured": 0, "unchanged": 8, "pruned": 0}
    assert all(result["diff"] == "" for result in again["results"])
    assert snapshot_tables() == before  # no new audit records, revisions or versions


def test_a_dry_run_reports_and_writes_nothing(org, editor):
    post(editor, "acme", FILE.format(port=9000))
    before = snapshot_tables()
    changed = FILE.format(port=9001).replace("numRetries: 2", "numRetries: 5")
    changed += "---\n" + yaml.safe_dump({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "Backend",
        "metadata": {"name": "extra"},
        "spec": {"endpoints": [{"ip": {"address": "10.1.1.1", "port": 80}}]}})  # fmt: skip
    answer = post(editor, "acme", changed, dryRun="true")
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["dryRun"] is True
    actions = {r["name"]: r["action"] for r in body["results"]}
    assert actions["app"] == actions["retries"] == "configured"
    assert actions["extra"] == "created" and actions["shop"] == "unchanged"
    retries = next(r for r in body["results"] if r["name"] == "retries")
    assert "-  retry:\n-    numRetries: 2" in retries["diff"] or "numRetries: 5" in retries["diff"]
    assert "+    numRetries: 5" in retries["diff"]
    assert snapshot_tables() == before


def test_prune_deletes_what_the_file_no_longer_names(org, editor):
    post(editor, "acme", FILE.format(port=9000))
    docs = [d for d in yaml.safe_load_all(FILE.format(port=9000))
            if d["metadata"]["name"] not in ("old", "legacy", "cors")]  # fmt: skip
    text = "---\n".join(yaml.safe_dump(d) for d in docs)
    preview = post(editor, "acme", text, prune="true", dryRun="true").json()
    pruned = [(r["kind"], r["name"]) for r in preview["results"] if r["action"] == "pruned"]
    # dependents go first: the route, then the backend it used; no SecurityPolicy is left in
    # the file, so that kind is not pruned
    assert pruned == [("HTTPRoute", "old"), ("Backend", "legacy")]
    assert Route.objects.filter(name="old").exists()
    # without prune nothing is deleted
    assert post(editor, "acme", text).json()["summary"]["pruned"] == 0
    assert Backend.objects.filter(name="legacy").exists()
    answer = post(editor, "acme", text, prune="true").json()
    assert answer["summary"] == {"created": 0, "configured": 0, "unchanged": 5, "pruned": 2}
    assert not Route.objects.filter(name="old").exists()
    assert not Backend.objects.filter(name="legacy").exists()
    assert Policy.objects.filter(name="cors").exists()
    assert AuditEvent.objects.filter(action="delete", object_name="edge/old").exists()


def test_prune_only_touches_the_kinds_in_the_file(org, editor):
    post(editor, "acme", FILE.format(port=9000))
    only_backend = yaml.safe_dump({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "Backend",
        "metadata": {"name": "app"},
        "spec": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 9000}}]}})  # fmt: skip
    answer = post(editor, "acme", only_backend, prune="true")
    assert answer.status_code == 200
    assert [(r["name"], r["action"]) for r in answer.json()["results"]] == [
        ("app", "unchanged"), ("legacy", "pruned")]  # fmt: skip
    assert Route.objects.count() == 3 and Policy.objects.count() == 2
    assert Gateway.objects.filter(name="edge").exists()


def test_a_bad_fifth_document_leaves_everything_as_it_was(org, editor):
    post(editor, "acme", FILE.format(port=9000))
    before = snapshot_tables()
    docs = list(yaml.safe_load_all(FILE.format(port=9001)))
    docs[4]["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Sometimes"
    docs[6]["spec"]["surprise"] = True
    docs.append({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "UDPRoute",
                 "metadata": {"name": "rpc"}, "spec": {}})  # fmt: skip
    answer = post(editor, "acme", "---\n".join(yaml.safe_dump(d) for d in docs))
    assert answer.status_code == 400
    fields = {f["path"]: f["message"] for f in answer.json()["error"]["fields"]}
    assert "documents[4].spec.rules[0].matches[0].path.type" in fields
    assert fields["documents[4].spec.rules[0].matches[0].path.type"].startswith(
        "HTTPRoute edge/api"
    )
    assert "documents[6].spec.surprise" in fields
    assert fields["documents[8].kind"] == "kind UDPRoute is not supported yet"
    assert snapshot_tables() == before


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ({"kind": "Gateway", "spec": {"addresses": [{"value": "1.2.3.4"}]}},
         "documents[0].spec.addresses", ""),
        ({"kind": "Gateway", "spec": {"gatewayClassName": "istio"}},
         "documents[0].spec.gatewayClassName", "gantry"),
        ({"kind": "Gateway", "metadata": {"name": "edge", "namespace": "globex"}},
         "documents[0].metadata.namespace", "acme"),
        ({"kind": "Gateway", "apiVersion": "v1"}, "documents[0].apiVersion", "gateway.networking"),
        ({"kind": "Secret", "apiVersion": "v1"}, "documents[0].kind", "not supported yet"),
        ({"kind": "Deployment"}, "documents[0].kind", "not a kind"),
        ({"kind": "HTTPRoute", "spec": {"parentRefs": [{"name": "a"}, {"name": "b"}]}},
         "documents[0].spec.parentRefs", "one HTTPRoute per gateway"),
        ({"kind": "HTTPRoute", "spec": {"parentRefs": [{"name": "elsewhere"}]}},
         "documents[0].spec.parentRefs[0].name", "no gateway named 'elsewhere'"),
        ({"kind": "HTTPRoute", "spec": {}}, "documents[0].spec.parentRefs", "must name"),
        ({"kind": "BackendTrafficPolicy", "apiVersion": "gateway.envoyproxy.io/v1alpha1",
          "spec": {"targetRefs": [{"kind": "HTTPRoute", "name": "nope"}], "retry": {}}},
         "documents[0].metadata.labels", "cannot tell which gateway"),
    ],
)  # fmt: skip
def test_what_gantry_cannot_take_is_a_400_naming_the_document(editor, document, path, message):
    doc = {"apiVersion": "gateway.networking.k8s.io/v1", "metadata": {"name": "edge"},
           "spec": {}, **document}  # fmt: skip
    answer = post(editor, "acme", [doc], content_type="application/json")
    assert answer.status_code == 400, answer.json()
    fields = {f["path"]: f["message"] for f in answer.json()["error"]["fields"]}
    assert path in fields, fields
    assert message in fields[path]
    assert not Gateway.objects.exists()


def test_bad_yaml_names_the_line_and_aliases_are_refused(editor):
    answer = post(editor, "acme", "kind: Gateway\nmetadata: [unclosed\n")
    assert answer.status_code == 400
    assert "line" in answer.json()["error"]["message"]
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    answer = post(editor, "acme", bomb)
    assert answer.status_code == 400 and "aliases" in answer.json()["error"]["message"]


def test_the_body_size_limit_applies(editor, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    answer = post(editor, "acme", "# " + "x" * 4096 + "\n")
    assert answer.status_code == 413


def test_quotas_apply_and_name_the_document(org, editor):
    org.tenant.plan.max_gateways = 1
    org.tenant.plan.save()
    docs = [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
             "metadata": {"name": name}, "spec": {}} for name in ("one", "two")]  # fmt: skip
    answer = post(editor, "acme", docs, content_type="application/json")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "quota_exceeded"
    assert answer.json()["error"]["message"].startswith("documents[1] (Gateway two)")
    assert not Gateway.objects.exists()


def test_export_then_apply_elsewhere_reproduces_it(org, other_org, editor):
    post(editor, "acme", FILE.format(port=9000))
    exported = editor.get(EXPORT.format("acme"))
    assert exported.status_code == 200
    assert exported["Content-Type"].startswith("application/yaml")
    text = exported.content.decode()
    for server_field in ("status", "resourceVersion", "uid", "generation", "namespace"):
        assert f"{server_field}:" not in text
    kinds = [d["kind"] for d in yaml.safe_load_all(text)]
    assert kinds == ["Backend", "Backend", "Gateway", "HTTPRoute", "HTTPRoute", "HTTPRoute",
                     "SecurityPolicy", "BackendTrafficPolicy"]  # fmt: skip
    other = other_org.client(Role.EDITOR)
    assert post(other, "globex", text).status_code == 200
    assert other.get(EXPORT.format("globex")).content.decode() == text
    assert post(other, "globex", text).json()["summary"]["unchanged"] == 8


GRPC_FILE = """\
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: greeter}
spec:
  appProtocol: gRPC
  endpoints:
  - ip: {address: 127.0.0.1, port: 50051}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: rpc}
spec:
  listeners:
  - {name: http, protocol: HTTP, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greet}
spec:
  parentRefs: [{name: rpc}]
  rules:
  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]
    backendRefs: [{name: greeter}]
"""


def test_grpc_routes_apply_export_and_keep_their_kind(org, editor):
    answer = post(editor, "acme", GRPC_FILE)
    assert answer.status_code == 200, answer.content
    route = Route.objects.get(name="greet")
    assert route.kind == Route.Kind.GRPC
    assert route.spec["rules"][0]["matches"][0]["method"]["service"] == "helloworld.Greeter"
    exported = editor.get(EXPORT.format("acme")).content.decode()
    assert [d["kind"] for d in yaml.safe_load_all(exported)] == ["Backend", "Gateway", "GRPCRoute"]
    assert post(editor, "acme", exported).json()["summary"]["unchanged"] == 3
    # The same name as an HTTPRoute: a route's kind never changes.
    as_http = GRPC_FILE.replace("kind: GRPCRoute", "kind: HTTPRoute").replace(
        "  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]\n", "  - "
    )
    answer = post(editor, "acme", as_http)
    assert answer.status_code == 400, answer.content
    fields = {f["path"]: f["message"] for f in answer.json()["error"]["fields"]}
    assert "cannot change" in fields["documents[2].kind"]
    assert Route.objects.get(name="greet").kind == Route.Kind.GRPC


STREAM_FILE = """\
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: pg}
spec:
  endpoints:
  - ip: {address: 10.0.0.5, port: 5432}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: site}
spec:
  endpoints:
  - ip: {address: 10.0.0.6, port: 8443}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: l4}
spec:
  listeners:
  - {name: db, protocol: TCP, port: 5432}
  - {name: tls, protocol: TLS, port: 443, tls: {mode: Passthrough}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: postgres}
spec:
  parentRefs: [{name: l4, sectionName: db}]
  rules:
  - backendRefs: [{name: pg, weight: 3}, {name: site, weight: 1}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: sites}
spec:
  parentRefs: [{name: l4}]
  hostnames: [a.example, "*.b.example"]
  rules:
  - backendRefs: [{name: site}]
"""


def test_tcp_and_tls_routes_apply_export_and_keep_their_kind(org, other_org, editor):
    answer = post(editor, "acme", STREAM_FILE)
    assert answer.status_code == 200, answer.content
    assert Route.objects.get(name="postgres", gateway__tenant=org.tenant).kind == Route.Kind.TCP
    sites = Route.objects.get(name="sites", gateway__tenant=org.tenant)
    assert sites.kind == Route.Kind.TLS
    assert sites.spec["hostnames"] == ["a.example", "*.b.example"]
    exported = editor.get(EXPORT.format("acme")).content.decode()
    docs = list(yaml.safe_load_all(exported))
    assert [(d["apiVersion"], d["kind"]) for d in docs][-2:] == [
        ("gateway.networking.k8s.io/v1alpha2", "TCPRoute"),
        ("gateway.networking.k8s.io/v1alpha2", "TLSRoute"),
    ]
    assert post(editor, "acme", exported).json()["summary"]["unchanged"] == 5
    other = other_org.client(Role.EDITOR)
    assert post(other, "globex", exported).status_code == 200
    assert other.get(EXPORT.format("globex")).content.decode() == exported
    # Validated as its kind, at the document's JSON path; a kind never changes.
    bad = STREAM_FILE.replace("hostnames: [a.example", "hostnames: [10.0.0.1")
    answer = post(editor, "acme", bad)
    fields = {f["path"]: f["message"] for f in answer.json()["error"]["fields"]}
    assert "documents[4].spec.hostnames[0]" in fields, fields
    as_tls = STREAM_FILE.replace("kind: TCPRoute", "kind: TLSRoute")
    fields = {
        f["path"]: f["message"] for f in post(editor, "acme", as_tls).json()["error"]["fields"]
    }
    assert "cannot change" in fields["documents[3].kind"]
    assert Route.objects.get(name="postgres", gateway__tenant=org.tenant).kind == Route.Kind.TCP


DUBBO_FILE = """\
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: greeter}
spec:
  appProtocol: dubbo
  endpoints:
  - ip: {address: 127.0.0.1, port: 40880}  # outside the runtime's per-test port windows
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: rpc}
spec:
  listeners:
  - {name: http, protocol: HTTP, port: 80}
  - {name: dubbo, protocol: Dubbo, port: 20880}
---
apiVersion: gantry.io/v1alpha1
kind: DubboRoute
metadata: {name: greet}
spec:
  parentRefs: [{name: rpc, sectionName: dubbo}]
  rules:
  - matches: [{service: org.apache.dubbo.samples.Greeter, group: canary}]
    backendRefs: [{name: greeter}]
"""


def test_dubbo_routes_apply_export_and_are_checked_as_dubbo(org, editor):
    answer = post(editor, "acme", DUBBO_FILE)
    assert answer.status_code == 200, answer.content
    route = Route.objects.get(name="greet")
    assert route.kind == Route.Kind.DUBBO
    assert route.spec["parentRefs"] == [{"sectionName": "dubbo"}]
    assert route.status["attachedListeners"] == ["dubbo"]
    exported = editor.get(EXPORT.format("acme")).content.decode()
    documents = list(yaml.safe_load_all(exported))
    assert [d["kind"] for d in documents] == ["Backend", "Gateway", "DubboRoute"]
    assert documents[2]["apiVersion"] == "gantry.io/v1alpha1"
    assert post(editor, "acme", exported).json()["summary"]["unchanged"] == 3
    # Checked as a DubboRoute: an HTTP listener is no parent of it, a hostname no field of it.
    bad = DUBBO_FILE.replace("sectionName: dubbo", "sectionName: http").replace(
        "  rules:\n", "  hostnames: [rpc.example.com]\n  rules:\n")  # fmt: skip
    answer = post(editor, "acme", bad)
    assert answer.status_code == 400, answer.content
    fields = {f["path"] for f in answer.json()["error"]["fields"]}
    assert {"documents[2].spec.parentRefs[0].sectionName", "documents[2].spec.hostnames"} <= fields
    wrong_version = DUBBO_FILE.replace("gantry.io/v1alpha1", "gateway.networking.k8s.io/v1")
    answer = post(editor, "acme", wrong_version)
    assert answer.status_code == 400
    assert "documents[2].apiVersion" in {f["path"] for f in answer.json()["error"]["fields"]}


def test_roles_and_other_tenants(org, other_org, editor):
    text = FILE.format(port=9000)
    assert post(org.client(Role.VIEWER), "acme", text).status_code == 403
    assert org.client(Role.VIEWER).get(EXPORT.format("acme")).status_code == 200
    assert post(other_org.client(Role.OWNER), "acme", text).status_code == 404
    assert other_org.client(Role.OWNER).get(EXPORT.format("acme")).status_code == 404
    assert not Gateway.objects.exists()


def test_a_file_cannot_reach_another_tenants_gateway(org, other_org, editor):
    post(other_org.client(Role.EDITOR), "globex", FILE.format(port=9000))
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "sneaky", "namespace": "globex"},
             "spec": {"parentRefs": [{"name": "edge"}]}}  # fmt: skip
    answer = post(editor, "acme", [route], content_type="application/json")
    assert answer.status_code == 400
    paths = {f["path"] for f in answer.json()["error"]["fields"]}
    assert paths == {"documents[0].metadata.namespace"}
    del route["metadata"]["namespace"]
    answer = post(editor, "acme", [route], content_type="application/json")
    assert answer.status_code == 400
    assert {f["path"] for f in answer.json()["error"]["fields"]} == {
        "documents[0].spec.parentRefs[0].name"}  # fmt: skip
    assert not Route.objects.filter(name="sneaky").exists()
