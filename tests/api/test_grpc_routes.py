"""GRPCRoutes through the API: Gateway API GRPCRoute specs under a gateway, defaults, each
invalid field named by its JSON path with nothing saved, names shared with HTTPRoutes, the
route quota counting both kinds, audit, and isolation between tenants."""

import pytest

from gateways import services
from gateways.models import Route
from tenants.audit import Actor
from tenants.models import AuditEvent, Plan
from tenants.roles import Role

URL = "/api/v1/tenants/acme/gateways/edge/grpcroutes/"
HTTP_URL = "/api/v1/tenants/acme/gateways/edge/routes/"
BACKEND = {"endpoints": [{"ip": {"address": "10.0.0.1", "port": 50051}}], "appProtocol": "gRPC"}
ALTERNATIVES = "(ab|cd|ef|gh)" * 5  # RE2 program size 54: fits alone, not twice in one path regex
RULE = {
    "matches": [{"method": {"service": "helloworld.Greeter", "method": "SayHello"}}],
    "backendRefs": [{"name": "greeter"}],
}


@pytest.fixture
def editor(org):
    actor = Actor.system("tests")
    services.create_gateway(
        actor, org.tenant, "edge", {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}
    )
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
    assert body["spec"] == {
        "rules": [
            {
                "matches": [
                    {"method": {"type": "Exact", "service": "helloworld.Greeter",
                                "method": "SayHello"}}
                ],
                "backendRefs": [{"name": "greeter", "weight": 1}],
            }
        ]
    }  # fmt: skip
    assert conditions(body)["Accepted"]["status"] == "True"
    assert conditions(body)["ResolvedRefs"]["status"] == "True"
    assert editor.get(f"{URL}greeter/").json()["spec"] == body["spec"]
    assert AuditEvent.objects.filter(object_type="grpcroute", action="create").count() == 1
    assert Route.objects.get(name="greeter").kind == "GRPCRoute"


def test_empty_spec_matches_every_call(editor):
    body = create(editor).json()
    assert body["spec"] == {"rules": [{"matches": [{}]}]}


def test_missing_backend_is_reported_in_the_status(editor):
    body = create(editor, rules=[{"backendRefs": [{"name": "nowhere"}]}]).json()
    assert conditions(body)["ResolvedRefs"]["status"] == "False"


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"rules": [{"matches": [{"method": {"type": "RegularExpression", "service": "("}}]}]},
         "spec.rules[0].matches[0].method.service"),
        ({"rules": [{"matches": [{"method": {"service": "not a service"}}]}]},
         "spec.rules[0].matches[0].method.service"),
        ({"rules": [{"matches": [{"method": {"service": "a.B", "method": "Say/Hello"}}]}]},
         "spec.rules[0].matches[0].method.method"),
        ({"rules": [{"matches": [{"method": {"type": "Prefix", "service": "a.B"}}]}]},
         "spec.rules[0].matches[0].method.type"),
        ({"rules": [{"matches": [{"method": {}}]}]}, "spec.rules[0].matches[0].method.service"),
        # Alone each fits; the one path regex Envoy gets would exceed its RE2 program size.
        ({"rules": [{"matches": [{"method": {"method": "M" * 200}}]}]},
         "spec.rules[0].matches[0].method.method"),
        ({"rules": [{"matches": [{"method": {"type": "RegularExpression",
                                             "service": ALTERNATIVES, "method": ALTERNATIVES}}]}]},
         "spec.rules[0].matches[0].method.method"),
        ({"rules": [{"matches": [{"path": {"value": "/x"}}]}]}, "spec.rules[0].matches[0].path"),
        ({"rules": [{"matches": [{"headers": [{"name": "bad name", "value": "x"}]}]}]},
         "spec.rules[0].matches[0].headers[0].name"),
        ({"rules": [{"filters": [{"type": "URLRewrite", "urlRewrite": {}}]}]},
         "spec.rules[0].filters[0].type"),
        ({"rules": [{"filters": [{"type": "RequestMirror"}]}]},
         "spec.rules[0].filters[0].requestMirror"),
        ({"rules": [{"backendRefs": [{"name": "greeter", "weight": -1}]}]},
         "spec.rules[0].backendRefs[0].weight"),
        ({"parentRefs": [{"sectionName": "nope"}]}, "spec.parentRefs[0].sectionName"),
        ({"hostnames": ["10.0.0.1"]}, "spec.hostnames[0]"),
    ],
)  # fmt: skip
def test_bad_input_names_its_json_path_and_saves_nothing(editor, spec, path):
    response = create(editor, **spec)
    assert response.status_code == 400, response.content
    fields = [f["path"] for f in response.json()["error"]["fields"]]
    assert path in fields, fields
    assert not Route.objects.exists()


def test_patch_keeps_the_kind_and_validates_as_grpc(editor):
    create(editor, rules=[RULE])
    bad = editor.patch(
        f"{URL}greeter/",
        {"spec": {"rules": [{"matches": [{"path": {"type": "Exact", "value": "/x"}}]}]}},
        format="json",
    )
    assert bad.status_code == 400
    good = editor.patch(f"{URL}greeter/", {"spec": {"hostnames": ["rpc.example"]}}, format="json")
    assert good.status_code == 202, good.content
    assert good.json()["spec"]["hostnames"] == ["rpc.example"]
    assert Route.objects.get(name="greeter").kind == "GRPCRoute"


def test_http_and_grpc_routes_have_their_own_urls_and_share_names(editor):
    assert create(editor, rules=[RULE]).status_code == 202
    assert editor.get(f"{HTTP_URL}greeter/").status_code == 404
    assert [r["name"] for r in editor.get(URL).json()["results"]] == ["greeter"]
    assert editor.get(HTTP_URL).json()["results"] == []
    taken = create(editor, url=HTTP_URL)
    assert taken.status_code == 409
    assert create(editor, name="web", url=HTTP_URL).status_code == 202
    assert editor.get(f"{URL}web/").status_code == 404
    assert editor.delete(f"{URL}greeter/").status_code == 204
    assert list(Route.objects.values_list("name", flat=True)) == ["web"]


def test_route_quota_counts_both_kinds(editor, org):
    Plan.objects.filter(pk=org.tenant.plan_id).update(max_routes_per_gateway=1)
    assert create(editor, name="web", url=HTTP_URL).status_code == 202
    response = create(editor, rules=[RULE])
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert not Route.objects.filter(kind="GRPCRoute").exists()


def test_another_tenants_gateway_is_404(editor, org, other_org):
    other = other_org.client(Role.OWNER)
    assert create(editor, rules=[RULE]).status_code == 202
    assert other.get(f"{URL}greeter/").status_code == 404
    assert create(other, name="mine", rules=[RULE]).status_code == 404
    assert other.delete(f"{URL}greeter/").status_code == 404
    assert Route.objects.filter(name="greeter").exists()


@pytest.mark.slow
def test_a_stored_grpc_route_compiles_as_grpc_and_envoy_accepts_it(editor, org):
    from provisioning.compile import compile_gateway
    from provisioning.desired import load_desired_state
    from provisioning.envoy import validate

    create(editor, rules=[RULE])
    create(editor, name="web", url=HTTP_URL)
    gateway = org.tenant.gateways.get(name="edge")
    state = load_desired_state(gateway.pk)
    assert [(r["name"], r["kind"]) for r in state.routes] == [
        ("greeter", "GRPCRoute"),
        ("web", "HTTPRoute"),
    ]
    resources = compile_gateway(state)
    routes = resources.routes[0]["virtual_hosts"][0]["routes"]
    assert routes[0]["match"]["path"] == "/helloworld.Greeter/SayHello"
    assert routes[-1]["direct_response"]["status"] == 200
    assert validate(resources).ok


def test_the_console_lists_both_kinds_and_edits_a_grpc_route_as_its_spec(editor, org):
    from django.test import Client

    create(editor, rules=[RULE])
    create(editor, name="web", url=HTTP_URL)
    console = Client()
    console.force_login(org.users[Role.EDITOR])
    page = console.get("/t/acme/gateways/edge/routes/")
    assert page.status_code == 200
    assert b"/routes/web/" in page.content and b"/routes/greeter/" in page.content
    assert b"Routes (2)" in page.content
    assert b"<td >GRPCRoute</td>" in page.content or b">GRPCRoute<" in page.content
    only_grpc = console.get("/t/acme/gateways/edge/routes/?kind=GRPCRoute")
    assert b"/routes/greeter/" in only_grpc.content
    assert b"/routes/web/" not in only_grpc.content

    detail = console.get("/t/acme/gateways/edge/routes/greeter/")
    assert detail.status_code == 200
    assert b"GRPCRoute" in detail.content and b"helloworld.Greeter" in detail.content
    form = console.get("/t/acme/gateways/edge/routes/greeter/edit/")
    assert b"Common fields" not in form.content and b"Save spec" in form.content

    route = Route.objects.get(name="greeter")
    bad = "rules:\n- matches:\n  - method: {service: 'bad service'}\n"
    response = console.post(
        "/t/acme/gateways/edge/routes/greeter/edit/",
        {"spec": bad, "resource_version": route.resource_version},
    )
    assert response.status_code == 400
    assert b"spec.rules[0].matches[0].method.service" in response.content
    assert Route.objects.get(pk=route.pk).generation == 1

    good = (
        "rules:\n- matches:\n  - method: {service: helloworld.Greeter}\n"
        "  backendRefs: [{name: greeter}]\n"
    )
    response = console.post(
        "/t/acme/gateways/edge/routes/greeter/edit/",
        {"spec": good, "resource_version": route.resource_version},
    )
    assert response.status_code == 302, response.content
    route.refresh_from_db()
    assert route.kind == "GRPCRoute" and route.generation == 2
    assert route.spec["rules"][0]["matches"][0]["method"] == {
        "type": "Exact",
        "service": "helloworld.Greeter",
    }

    response = console.post(
        "/t/acme/gateways/edge/routes/new/?kind=GRPCRoute", {"name": "second", "spec": good}
    )
    assert response.status_code == 302, response.content
    assert Route.objects.get(name="second").kind == "GRPCRoute"
    assert console.get("/t/acme/gateways/edge/routes/new/?kind=Nonsense").status_code == 404


def test_a_policy_reaches_a_route_only_through_its_kind(editor, org):
    """Names are shared by HTTPRoutes and GRPCRoutes, so a policy's targetRef kind decides:
    ``kind: HTTPRoute`` naming a GRPCRoute is not found (and does not apply there)."""
    from provisioning.compile import compile_gateway
    from provisioning.desired import load_desired_state

    create(editor, rules=[RULE])
    policies = "/api/v1/tenants/acme/gateways/edge/policies/"

    def policy(name, kind):
        body = {"name": name, "kind": "BackendTrafficPolicy",
                "spec": {"targetRefs": [{"kind": kind, "name": "greeter"}],
                         "timeout": {"http": {"requestTimeout": "7s"}}}}  # fmt: skip
        response = editor.post(policies, body, format="json")
        assert response.status_code == 202, response.content
        ancestor = response.json()["status"]["ancestors"][0]
        return {c["type"]: c for c in ancestor["conditions"]}["Accepted"]

    wrong = policy("as-http", "HTTPRoute")
    assert (wrong["status"], wrong["reason"]) == ("False", "TargetNotFound")
    assert wrong["message"] == "HTTPRoute 'greeter' does not exist ('greeter' is a GRPCRoute)"
    resources = compile_gateway(load_desired_state(org.tenant.gateways.get(name="edge").pk))
    route = resources.routes[0]["virtual_hosts"][0]["routes"][0]
    assert route["route"].get("timeout") != "7.000s"

    right = policy("as-grpc", "GRPCRoute")
    assert (right["status"], right["reason"]) == ("True", "Accepted")
    resources = compile_gateway(load_desired_state(org.tenant.gateways.get(name="edge").pk))
    route = resources.routes[0]["virtual_hosts"][0]["routes"][0]
    assert route["route"]["timeout"] == "7.000s"
