"""Routes: Gateway API HTTPRoute specs under a gateway. Defaults and limits as Gateway API has
them, RE2 regular expressions, references that resolve (or not) in the status, the route quota
per gateway, and isolation between gateways and tenants."""

import threading

import pytest
from django.db import connection

from gateways import services
from gateways.models import Route
from tenants.audit import Actor
from tenants.models import AuditEvent, Plan
from tenants.roles import Role

URL = "/api/v1/tenants/acme/gateways/edge/routes/"
LISTENERS = [
    {"name": "http", "protocol": "HTTP", "port": 80},
    {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": "*.example.com",
     "tls": {"certificateRefs": [{"name": "example-cert"}]}},
]  # fmt: skip
BACKEND = {"endpoints": [{"ip": {"address": "10.0.0.1", "port": 8080}}]}
RULE = {
    "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
    "backendRefs": [{"name": "api"}],
}


@pytest.fixture
def editor(org):
    actor = Actor.system("tests")
    services.create_gateway(actor, org.tenant, "edge", {"listeners": LISTENERS})
    services.create_gateway(actor, org.tenant, "other", {})
    services.create_backend(actor, org.tenant, "api", BACKEND)
    return org.client(Role.EDITOR)


def create(client, name="web", url=URL, **spec):
    return client.post(url, {"name": name, "spec": spec}, format="json")


def conditions(body: dict) -> dict:
    return {c["type"]: c for c in body["status"]["conditions"]}


def test_create_fills_gateway_api_defaults_and_reports_status(editor):
    response = create(editor, rules=[{"backendRefs": [{"name": "api"}]}])
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["gateway"] == "edge"
    assert body["spec"] == {
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"name": "api", "weight": 1}],
            }
        ]
    }
    accepted, resolved = conditions(body)["Accepted"], conditions(body)["ResolvedRefs"]
    assert (accepted["status"], resolved["status"]) == ("True", "True")
    assert body["status"]["attachedListeners"] == ["http", "https"]
    assert (body["generation"], body["status"]["observedGeneration"]) == (1, 1)
    assert response["ETag"] == f'"{body["resourceVersion"]}"'
    event = AuditEvent.objects.get(object_type="route", action="create")
    assert event.object_name == "edge/web"
    assert event.after["spec"] == body["spec"]


def test_an_empty_spec_is_one_rule_matching_everything(editor):
    body = create(editor).json()
    assert body["spec"] == {
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]
    }


FULL = {
    "parentRefs": [{"sectionName": "https"}],
    "hostnames": ["app.example.com", "*.api.example.com"],
    "rules": [
        {
            "name": "api",
            "matches": [
                {
                    "path": {"type": "RegularExpression", "value": "/v[0-9]+/users/[a-z]+"},
                    "headers": [
                        {"type": "Exact", "name": "x-version", "value": "2"},
                        {"type": "RegularExpression", "name": "x-tenant", "value": "a.*"},
                    ],
                    "queryParams": [{"type": "Exact", "name": "debug", "value": "1"}],
                    "method": "POST",
                },
                {"path": {"type": "Exact", "value": "/healthz"}},
            ],
            "filters": [
                {"type": "RequestHeaderModifier",
                 "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}],
                                           "add": [{"name": "x-b", "value": "2"}],
                                           "remove": ["x-c"]}},
                {"type": "ResponseHeaderModifier",
                 "responseHeaderModifier": {"remove": ["server"]}},
                {"type": "URLRewrite",
                 "urlRewrite": {"hostname": "api.internal",
                                "path": {"type": "ReplaceFullPath", "replaceFullPath": "/v2"}}},
                {"type": "RequestMirror",
                 "requestMirror": {"backendRef": {"name": "api", "port": 8080}, "percent": 10}},
            ],
            "backendRefs": [{"name": "api", "weight": 90, "port": 8080},
                            {"name": "api", "weight": 10}],
            "timeouts": {"request": "10s", "backendRequest": "2s500ms"},
        },
        {
            "matches": [{"path": {"value": "/old"}}],
            "filters": [
                {"type": "RequestRedirect",
                 "requestRedirect": {"scheme": "https", "hostname": "new.example.com",
                                     "port": 443, "statusCode": 301,
                                     "path": {"type": "ReplacePrefixMatch",
                                              "replacePrefixMatch": "/new"}}},
            ],
        },
    ],
}  # fmt: skip


def test_every_feature_round_trips(editor):
    response = create(editor, **FULL)
    assert response.status_code == 202, response.content
    spec = response.json()["spec"]
    assert spec["rules"][0] == FULL["rules"][0]
    assert spec["rules"][1]["matches"] == [{"path": {"type": "PathPrefix", "value": "/old"}}]
    assert conditions(response.json())["Accepted"]["status"] == "True"
    assert response.json()["status"]["attachedListeners"] == ["https"]
    assert editor.get(URL + "web/").json()["spec"] == spec


def test_a_backend_ref_of_another_kind_is_accepted_and_reported_invalid_kind(editor):
    """Gateway API: a backendRef to a kind the implementation does not know is accepted, the
    route's ResolvedRefs is False with reason InvalidKind, and its requests answer 500."""
    refs = [{"name": "api", "group": "gateway.envoyproxy.io", "kind": "Backend", "weight": 3},
            {"name": "api", "group": "", "kind": "Service", "weight": 1}]  # fmt: skip
    response = create(editor, rules=[{"backendRefs": refs}])
    assert response.status_code == 202, response.content
    resolved = conditions(response.json())["ResolvedRefs"]
    assert (resolved["status"], resolved["reason"]) == ("False", "InvalidKind")
    assert "spec.rules[0].backendRefs[1]: core/Service" in resolved["message"]
    assert "backendRefs[0]" not in resolved["message"]
    assert response.json()["spec"]["rules"][0]["backendRefs"][1]["kind"] == "Service"


def test_a_missing_backend_is_accepted_and_reported(editor):
    rule = {
        "backendRefs": [{"name": "api"}, {"name": "payments"}],
        "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "audit"}}}],
    }
    response = create(editor, rules=[rule])
    assert response.status_code == 202, response.content
    resolved = conditions(response.json())["ResolvedRefs"]
    assert (resolved["status"], resolved["reason"]) == ("False", "BackendNotFound")
    assert "spec.rules[0].backendRefs[1]: backend 'payments'" in resolved["message"]
    assert (
        "spec.rules[0].filters[0].requestMirror.backendRef: backend 'audit'" in resolved["message"]
    )
    assert "500" in resolved["message"]
    assert conditions(response.json())["Accepted"]["status"] == "True"
    backends = "/api/v1/tenants/acme/backends/"
    for name in ("payments", "audit"):
        editor.post(backends, {"name": name, "spec": BACKEND}, format="json")
    after = editor.get(URL + "web/").json()
    assert conditions(after)["ResolvedRefs"]["status"] == "True"
    assert after["generation"] == 1
    editor.delete(backends + "payments/")
    resolved = conditions(editor.get(URL + "web/").json())["ResolvedRefs"]
    assert resolved["status"] == "False" and "payments" in resolved["message"]


@pytest.mark.parametrize(
    ("spec", "accepted", "reason", "attached"),
    [
        ({}, "True", "Accepted", ["http", "https"]),
        ({"hostnames": ["app.example.com"]}, "True", "Accepted", ["http", "https"]),
        ({"hostnames": ["a.b.example.com"]}, "True", "Accepted", ["http", "https"]),
        ({"hostnames": ["*.example.com"]}, "True", "Accepted", ["http", "https"]),
        ({"hostnames": ["example.com"]}, "True", "Accepted", ["http"]),
        ({"hostnames": ["example.com"], "parentRefs": [{"sectionName": "https"}]},
         "False", "NoMatchingListenerHostname", []),
        ({"hostnames": ["app.other.com"], "parentRefs": [{"sectionName": "https"}]},
         "False", "NoMatchingListenerHostname", []),
        ({"parentRefs": [{"sectionName": "https"}]}, "True", "Accepted", ["https"]),
    ],
)  # fmt: skip
def test_routes_attach_to_listeners_whose_hostnames_intersect(
    editor, spec, accepted, reason, attached
):
    body = create(editor, **spec).json()
    condition = conditions(body)["Accepted"]
    assert (condition["status"], condition["reason"]) == (accepted, reason)
    assert body["status"]["attachedListeners"] == attached


def test_a_listener_removed_from_the_gateway_unattaches_its_routes(editor):
    create(editor, parentRefs=[{"sectionName": "https"}])
    version = editor.get(URL + "web/").json()["resourceVersion"]
    response = editor.patch(
        "/api/v1/tenants/acme/gateways/edge/", {"spec": {"listeners": LISTENERS[:1]}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 202
    body = editor.get(URL + "web/").json()
    condition = conditions(body)["Accepted"]
    assert (condition["status"], condition["reason"]) == ("False", "NoMatchingParent")
    assert "'https'" in condition["message"]
    assert body["resourceVersion"] != version and body["generation"] == 1
    # Until the listener is back, the route cannot be changed while still naming it.
    response = editor.patch(URL + "web/", {"spec": {"hostnames": ["a.com"]}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "spec.parentRefs[0].sectionName"


def test_put_replaces_and_patch_merges(editor):
    create(editor, hostnames=["app.example.com"], rules=[RULE])
    response = editor.patch(URL + "web/", {"spec": {"hostnames": ["b.example.com"]}}, format="json")
    assert response.json()["spec"]["hostnames"] == ["b.example.com"]
    assert response.json()["spec"]["rules"][0]["backendRefs"] == [{"name": "api", "weight": 1}]
    assert response.json()["generation"] == 2
    response = editor.patch(URL + "web/", {"spec": {"hostnames": None}}, format="json")
    assert "hostnames" not in response.json()["spec"]
    response = editor.put(URL + "web/", {"spec": {"hostnames": ["c.example.com"]}}, format="json")
    assert response.json()["spec"] == {
        "hostnames": ["c.example.com"],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}],
    }
    assert response.json()["generation"] == 4
    same = editor.put(URL + "web/", {"spec": {"hostnames": ["c.example.com"]}}, format="json")
    assert same.json()["resourceVersion"] == response.json()["resourceVersion"]


def test_a_stale_version_is_409_and_changes_nothing(editor):
    version = create(editor).json()["resourceVersion"]
    editor.patch(URL + "web/", {"spec": {"hostnames": ["a.example.com"]}}, format="json")
    response = editor.patch(
        URL + "web/", {"spec": {"hostnames": ["b.example.com"]}}, format="json",
        HTTP_IF_MATCH=f'"{version}"',
    )  # fmt: skip
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_version"
    assert editor.delete(URL + "web/", HTTP_IF_MATCH=f'"{version}"').status_code == 409
    assert Route.objects.get(name="web").spec["hostnames"] == ["a.example.com"]


def test_the_route_quota_is_per_gateway(org, editor):
    Plan.objects.filter(name="standard").update(max_routes_per_gateway=2)
    assert create(editor, "a").status_code == 202
    assert create(editor, "b").status_code == 202
    response = create(editor, "c")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["quota"] == {
        "name": "maxRoutesPerGateway",
        "limit": 2,
        "used": 2,
        "requested": 1,
        "plan": "standard",
    }
    assert Route.objects.filter(gateway__name="edge").count() == 2
    other = "/api/v1/tenants/acme/gateways/other/routes/"
    assert create(editor, "c", url=other).status_code == 202


def test_names_are_unique_per_gateway(editor):
    assert create(editor).status_code == 202
    assert create(editor).status_code == 409
    other = "/api/v1/tenants/acme/gateways/other/routes/"
    assert create(editor, url=other).status_code == 202


def test_a_route_of_another_gateway_or_tenant_is_404(org, other_org, editor):
    create(editor)
    assert editor.get("/api/v1/tenants/acme/gateways/other/routes/web/").status_code == 404
    assert editor.delete("/api/v1/tenants/acme/gateways/other/routes/web/").status_code == 404
    assert editor.get("/api/v1/tenants/acme/gateways/other/routes/").json()["count"] == 0
    assert editor.get("/api/v1/tenants/acme/gateways/nope/routes/").status_code == 404
    assert create(editor, url="/api/v1/tenants/acme/gateways/nope/routes/").status_code == 404
    stranger = other_org.client(Role.OWNER)
    assert stranger.get(URL + "web/").status_code == 404
    assert stranger.get("/api/v1/tenants/globex/gateways/edge/routes/").status_code == 404
    assert Route.objects.count() == 1


def test_deleting_a_gateway_deletes_its_routes(editor):
    create(editor)
    assert editor.delete("/api/v1/tenants/acme/gateways/edge/").status_code == 204
    assert not Route.objects.exists()


def test_lists_filter_and_order(editor):
    for name in ("b-route", "a-route", "c-other"):
        create(editor, name)
    names = [r["name"] for r in editor.get(URL, {"ordering": "-name"}).json()["results"]]
    assert names == ["c-other", "b-route", "a-route"]
    names = [r["name"] for r in editor.get(URL, {"name": "route"}).json()["results"]]
    assert sorted(names) == ["a-route", "b-route"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_cannot_pass_the_route_quota(org):
    """The gateway row is locked while routes are counted: two creates for the last slot."""
    services.create_gateway(Actor.system("tests"), org.tenant, "edge", {"listeners": LISTENERS})
    Plan.objects.filter(name="standard").update(max_routes_per_gateway=1)
    barrier = threading.Barrier(2)
    results = []

    def create_route(role, name):
        client = org.client(role)
        barrier.wait()
        results.append(create(client, name).status_code)
        connection.close()

    threads = [
        threading.Thread(target=create_route, args=(Role.EDITOR, "a")),
        threading.Thread(target=create_route, args=(Role.ADMIN, "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [202, 403]
    assert Route.objects.count() == 1
