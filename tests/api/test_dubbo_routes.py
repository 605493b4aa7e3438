"""DubboRoutes and Dubbo listeners through the API: the shape, each invalid field named by its
JSON path with nothing saved, listener protocols (a DubboRoute attaches to Dubbo listeners only,
HTTP routes never to them), names and the route quota shared with HTTPRoutes and GRPCRoutes,
audit, isolation between tenants, and a stored DubboRoute compiled and accepted by Envoy."""

import pytest

from gateways import services
from gateways.models import Gateway, Route
from tenants.audit import Actor
from tenants.models import AuditEvent, Plan
from tenants.roles import Role

URL = "/api/v1/tenants/acme/gateways/edge/dubboroutes/"
HTTP_URL = "/api/v1/tenants/acme/gateways/edge/routes/"
GRPC_URL = "/api/v1/tenants/acme/gateways/edge/grpcroutes/"
GREETER = "org.apache.dubbo.samples.Greeter"
BACKEND = {"endpoints": [{"ip": {"address": "10.0.0.1", "port": 20880}}], "appProtocol": "dubbo"}
LISTENERS = [
    {"name": "http", "protocol": "HTTP", "port": 80},
    {"name": "rpc", "protocol": "Dubbo", "port": 20880},
]
RULE = {
    "matches": [{"service": GREETER, "method": "sayHello", "group": "blue", "version": "1.0.0",
                 "attachments": [{"name": "tier", "value": "gold"}]}],
    "backendRefs": [{"name": "greeter", "weight": 3}],
}  # fmt: skip


@pytest.fixture
def editor(org):
    actor = Actor.system("tests")
    services.create_gateway(actor, org.tenant, "edge", {"listeners": LISTENERS})
    services.create_backend(actor, org.tenant, "greeter", BACKEND)
    return org.client(Role.EDITOR)


def create(client, name="greeter", url=URL, **spec):
    return client.post(url, {"name": name, "spec": spec}, format="json")


def conditions(body: dict) -> dict:
    return {c["type"]: c for c in body["status"]["conditions"]}


def test_create_fills_defaults_reports_status_and_is_audited(editor):
    response = create(editor, rules=[RULE])
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["spec"] == {"rules": [{
        "matches": [{"service": GREETER, "method": "sayHello", "group": "blue",
                     "version": "1.0.0",
                     "attachments": [{"type": "Exact", "name": "tier", "value": "gold"}]}],
        "backendRefs": [{"name": "greeter", "weight": 3}],
    }]}  # fmt: skip
    assert conditions(body)["Accepted"]["status"] == "True"
    assert body["status"]["attachedListeners"] == ["rpc"]  # never the HTTP listener
    assert conditions(body)["ResolvedRefs"]["status"] == "True"
    assert editor.get(f"{URL}greeter/").json()["spec"] == body["spec"]
    assert AuditEvent.objects.filter(object_type="dubboroute", action="create").count() == 1
    assert Route.objects.get(name="greeter").kind == "DubboRoute"


def test_missing_backend_is_reported_in_the_status(editor):
    body = create(editor, rules=[{**RULE, "backendRefs": [{"name": "nowhere"}]}]).json()
    assert conditions(body)["ResolvedRefs"]["reason"] == "BackendNotFound"


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({}, "spec.rules"),
        ({"rules": []}, "spec.rules"),
        ({"rules": [{"backendRefs": [{"name": "greeter"}]}]}, "spec.rules[0].matches"),
        ({"rules": [{"matches": [{}]}]}, "spec.rules[0].matches[0].service"),
        ({"rules": [{"matches": [{"service": "org.example.*"}]}]},
         "spec.rules[0].matches[0].service"),
        ({"rules": [{"matches": [{"service": "not a service"}]}]},
         "spec.rules[0].matches[0].service"),
        ({"rules": [{"matches": [{"service": GREETER, "method": "say/Hello"}]}]},
         "spec.rules[0].matches[0].method"),
        ({"rules": [{"matches": [{"service": GREETER, "group": "a b"}]}]},
         "spec.rules[0].matches[0].group"),
        ({"rules": [{"matches": [{"service": GREETER, "version": ""}]}]},
         "spec.rules[0].matches[0].version"),
        ({"rules": [{"matches": [{"service": GREETER, "path": "/x"}]}]},
         "spec.rules[0].matches[0].path"),
        ({"rules": [{"matches": [{"service": GREETER,
                                  "attachments": [{"name": "Tier", "value": "x"}]}]}]},
         "spec.rules[0].matches[0].attachments[0].name"),
        ({"rules": [{"matches": [{"service": GREETER, "attachments": [
            {"type": "RegularExpression", "name": "tier", "value": "("}]}]}]},
         "spec.rules[0].matches[0].attachments[0].value"),
        ({"rules": [{"matches": [{"service": GREETER, "attachments": [
            {"name": "tier", "value": "a"}, {"name": "tier", "value": "b"}]}]}]},
         "spec.rules[0].matches[0].attachments[1].name"),
        ({"rules": [{**RULE, "backendRefs": [{"name": "greeter", "weight": -1}]}]},
         "spec.rules[0].backendRefs[0].weight"),
        ({"rules": [{**RULE, "backendRefs": [{"name": "greeter", "filters": []}]}]},
         "spec.rules[0].backendRefs[0].filters"),
        ({"rules": [{**RULE, "filters": []}]}, "spec.rules[0].filters"),
        ({"rules": [RULE], "hostnames": ["rpc.example.com"]}, "spec.hostnames"),
        ({"rules": [RULE], "parentRefs": [{"sectionName": "nope"}]},
         "spec.parentRefs[0].sectionName"),
        ({"rules": [RULE], "parentRefs": [{"sectionName": "http"}]},
         "spec.parentRefs[0].sectionName"),
    ],
)  # fmt: skip
def test_bad_input_names_its_json_path_and_saves_nothing(editor, spec, path):
    response = editor.post(URL, {"name": "greeter", "spec": spec}, format="json")
    assert response.status_code == 400, response.content
    fields = [f["path"] for f in response.json()["error"]["fields"]]
    assert path in fields, fields
    assert not Route.objects.exists()


def test_a_parent_ref_to_an_http_listener_says_why(editor):
    response = create(editor, rules=[RULE], parentRefs=[{"sectionName": "http"}])
    [field] = response.json()["error"]["fields"]
    assert "has protocol HTTP; a DubboRoute attaches to Dubbo listeners" in field["message"]


@pytest.mark.parametrize(
    ("listener", "path"),
    [
        ({"name": "rpc", "protocol": "Dubbo", "port": 20880, "hostname": "rpc.example.com"},
         "spec.listeners[0].hostname"),
        ({"name": "rpc", "protocol": "Dubbo", "port": 20880,
          "tls": {"certificateRefs": [{"name": "c"}]}}, "spec.listeners[0].tls"),
        ({"name": "rpc", "protocol": "dubbo", "port": 20880}, "spec.listeners[0].protocol"),
    ],
)  # fmt: skip
def test_bad_dubbo_listeners_are_refused(org, listener, path):
    owner = org.client(Role.EDITOR)
    body = {"name": "edge", "spec": {"listeners": [listener]}}
    response = owner.post("/api/v1/tenants/acme/gateways/", body, format="json")
    assert response.status_code == 400, response.content
    assert path in [f["path"] for f in response.json()["error"]["fields"]]
    assert not Gateway.objects.exists()


def test_a_dubbo_listener_cannot_share_a_port_with_http(org):
    owner = org.client(Role.EDITOR)
    listeners = [{"name": "http", "protocol": "HTTP", "port": 80},
                 {"name": "rpc", "protocol": "Dubbo", "port": 80}]  # fmt: skip
    body = {"name": "edge", "spec": {"listeners": listeners}}
    response = owner.post("/api/v1/tenants/acme/gateways/", body, format="json")
    assert response.status_code == 400
    assert "spec.listeners[1].protocol" in [f["path"] for f in response.json()["error"]["fields"]]


def test_routes_attach_only_to_listeners_of_their_protocol(editor, org):
    web = create(editor, name="web", url=HTTP_URL, rules=[{"backendRefs": [{"name": "greeter"}]}])
    assert web.json()["status"]["attachedListeners"] == ["http"]
    named = create(editor, name="named", url=HTTP_URL, parentRefs=[{"sectionName": "rpc"}])
    assert named.status_code == 202
    accepted = conditions(named.json())["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "NotAllowedByListeners")
    # A gateway without a Dubbo listener: the DubboRoute is stored, attached to nothing.
    services.create_gateway(Actor.system("tests"), org.tenant, "web-only",
                            {"listeners": [LISTENERS[0]]})  # fmt: skip
    other = create(editor, url="/api/v1/tenants/acme/gateways/web-only/dubboroutes/",
                   rules=[RULE])  # fmt: skip
    assert other.status_code == 202
    assert conditions(other.json())["Accepted"]["reason"] == "NotAllowedByListeners"
    # A Dubbo listener added to that gateway: the route attaches to it.
    patched = editor.patch("/api/v1/tenants/acme/gateways/web-only/",
                           {"spec": {"listeners": LISTENERS}}, format="json")  # fmt: skip
    assert patched.status_code == 202, patched.content
    again = editor.get("/api/v1/tenants/acme/gateways/web-only/dubboroutes/greeter/").json()
    assert conditions(again)["Accepted"]["status"] == "True"
    assert again["status"]["attachedListeners"] == ["rpc"]


def test_patch_keeps_the_kind_and_validates_as_dubbo(editor):
    create(editor, rules=[RULE])
    bad = editor.patch(f"{URL}greeter/", {"spec": {"hostnames": ["x.example"]}}, format="json")
    assert bad.status_code == 400
    patched = {**RULE, "matches": [{"service": GREETER, "method": "shout"}]}
    good = editor.patch(f"{URL}greeter/", {"spec": {"rules": [patched]}}, format="json")
    assert good.status_code == 202, good.content
    assert good.json()["spec"]["rules"][0]["matches"] == [{"service": GREETER, "method": "shout"}]
    assert Route.objects.get(name="greeter").kind == "DubboRoute"


def test_every_kind_has_its_own_url_and_they_share_names(editor):
    assert create(editor, rules=[RULE]).status_code == 202
    assert editor.get(f"{HTTP_URL}greeter/").status_code == 404
    assert editor.get(f"{GRPC_URL}greeter/").status_code == 404
    assert [r["name"] for r in editor.get(URL).json()["results"]] == ["greeter"]
    assert editor.get(HTTP_URL).json()["results"] == []
    assert create(editor, url=HTTP_URL).status_code == 409
    assert create(editor, url=GRPC_URL).status_code == 409
    assert create(editor, name="web", url=HTTP_URL).status_code == 202
    assert create(editor, name="web", rules=[RULE]).status_code == 409
    assert editor.get(f"{URL}web/").status_code == 404
    assert editor.delete(f"{URL}greeter/").status_code == 204
    assert list(Route.objects.values_list("name", flat=True)) == ["web"]


def test_route_quota_counts_every_kind(editor, org):
    Plan.objects.filter(pk=org.tenant.plan_id).update(max_routes_per_gateway=2)
    assert create(editor, name="web", url=HTTP_URL).status_code == 202
    assert create(editor, name="rpc", url=GRPC_URL).status_code == 202
    response = create(editor, rules=[RULE])
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert not Route.objects.filter(kind="DubboRoute").exists()


def test_another_tenant_gets_404(editor, other_org):
    other = other_org.client(Role.OWNER)
    assert create(editor, rules=[RULE]).status_code == 202
    assert other.get(f"{URL}greeter/").status_code == 404
    assert other.get(URL).status_code == 404
    assert create(other, name="mine", rules=[RULE]).status_code == 404
    assert other.patch(f"{URL}greeter/", {"spec": {}}, format="json").status_code == 404
    assert other.delete(f"{URL}greeter/").status_code == 404
    assert Route.objects.filter(name="greeter").exists()


def test_a_viewer_reads_and_cannot_write(editor, org):
    create(editor, rules=[RULE])
    viewer = org.client(Role.VIEWER)
    assert viewer.get(f"{URL}greeter/").status_code == 200
    assert create(viewer, name="mine", rules=[RULE]).status_code == 403
    assert viewer.delete(f"{URL}greeter/").status_code == 403


@pytest.mark.slow
def test_a_stored_dubbo_route_compiles_to_dubbo_proxy_and_envoy_accepts_it(editor, org):
    from provisioning.compile import compile_gateway
    from provisioning.desired import load_desired_state
    from provisioning.envoy import validate

    create(editor, rules=[RULE])
    create(editor, name="web", url=HTTP_URL, rules=[{"backendRefs": [{"name": "greeter"}]}])
    gateway = org.tenant.gateways.get(name="edge")
    state = load_desired_state(gateway.pk)
    assert [(r["name"], r["kind"]) for r in state.routes] == [
        ("greeter", "DubboRoute"),
        ("web", "HTTPRoute"),
    ]
    resources = compile_gateway(state)
    dubbo = next(lst for lst in resources.listeners if lst["name"].endswith("/port/20880"))
    proxy = dubbo["filter_chains"][0]["filters"][0]
    assert proxy["name"] == "envoy.filters.network.dubbo_proxy"
    [config] = proxy["typed_config"]["multiple_route_config"]["route_config"]
    assert (config["interface"], config["group"], config["version"]) == (GREETER, "blue", "1.0.0")
    assert [r["name"] for r in resources.routes] == ["acme/edge/port/80"]  # no RDS for Dubbo
    assert validate(resources).ok


@pytest.mark.slow
def test_a_reconcile_stores_a_valid_revision_and_a_dubbo_listener_url(editor, org):
    from provisioning.reconcile import reconcile

    create(editor, rules=[RULE])
    gateway = org.tenant.gateways.get(name="edge")
    outcome = reconcile(gateway.pk)
    assert outcome.revision is not None and outcome.revision.state == "valid", outcome
    gateway.refresh_from_db()
    urls = {item["name"]: item.get("url", "") for item in gateway.status["listeners"]}
    assert urls["rpc"].startswith("dubbo://")
    assert urls["http"].startswith("http://")


def test_kubernetes_listener_urls_name_a_dubbo_listener_with_its_port():
    from provisioning.runtimes.kubernetes.inputs import GatewayInput, ListenerPort
    from provisioning.runtimes.kubernetes.status import listener_urls

    gateway = GatewayInput(
        tenant="acme", name="edge", vcpu=1, memory_gib=1, replicas=1,
        listeners=(ListenerPort("http", 80, "HTTP"), ListenerPort("rpc", 20880, "Dubbo")),
    )  # fmt: skip
    service = {"spec": {"type": "LoadBalancer"},
               "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}  # fmt: skip
    assert listener_urls(gateway, service, None) == {
        "http": "http://203.0.113.7",
        "rpc": "dubbo://203.0.113.7:20880",
    }


def test_the_console_shows_the_dubbo_listener_and_every_kind_of_route(editor, org):
    """The console lists DubboRoutes with the other kinds and shows and edits them as their
    spec."""
    from django.test import Client

    create(editor, rules=[RULE])
    create(editor, name="web", url=HTTP_URL)
    console = Client()
    console.force_login(org.users[Role.EDITOR])
    for page in ("/t/acme/gateways/", "/t/acme/gateways/edge/", "/t/acme/backends/"):
        assert console.get(page).status_code == 200, page
    assert b"rpc Dubbo:20880" in console.get("/t/acme/gateways/").content
    routes = console.get("/t/acme/gateways/edge/routes/")
    assert routes.status_code == 200
    assert b"/routes/web/" in routes.content
    assert b"/routes/greeter/" in routes.content
    detail = console.get("/t/acme/gateways/edge/routes/greeter/")
    assert detail.status_code == 200 and b"DubboRoute" in detail.content
    form = console.get("/t/acme/gateways/edge/routes/greeter/edit/")
    assert b"Common fields" not in form.content and b"a Gantry DubboRoute spec" in form.content


def test_a_policy_naming_a_dubbo_route_or_listener_says_it_applies_nowhere(editor):
    """Policies do not apply to Dubbo calls: a policy's status must not claim they do."""
    create(editor, rules=[RULE])
    create(editor, name="web", url=HTTP_URL)
    policies = "/api/v1/tenants/acme/gateways/edge/policies/"
    targets = [
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "greeter"},
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge",
         "sectionName": "rpc"},
        {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web"},
    ]  # fmt: skip
    response = editor.post(policies, {"name": "retries", "kind": "BackendTrafficPolicy",
                                      "spec": {"targetRefs": targets, "retry": {}}},
                           format="json")  # fmt: skip
    assert response.status_code == 202, response.content
    ancestors = response.json()["status"]["ancestors"]
    reasons = [
        next(c["reason"] for c in a["conditions"] if c["type"] == "Accepted") for a in ancestors
    ]
    assert reasons == ["TargetNotFound", "TargetNotFound", "Accepted"]
