"""The console's resource pages through Django's test client, where a browser adds nothing:
roles as in the API, bad input shown next to the field it names with nothing saved, writes
through the same services as the API (audited, reconciled), lists, live status, no secrets.
Each test has an owner, an editor, a viewer and another tenant (``tests.conftest``)."""

import re

import pytest
from django.test import Client

from config.errors import FieldError, ValidationFailed
from frontend.form_errors import apply_service_error
from frontend.forms import BackendForm, RouteForm
from gateways import services
from gateways.models import Backend, Certificate, Credential, Gateway, Policy, Route
from provisioning import tasks
from tenants import services as tenant_services
from tenants.audit import Actor
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.api.pki import certificate
from tests.conftest import make_user

SYSTEM = Actor.system("tests")
LISTENERS = "- name: http\n  protocol: HTTP\n  port: 80\n"
IP_ENDPOINT = {"ip": {"address": "10.0.0.1", "port": 8080}}


@pytest.fixture
def reconciles(monkeypatch):
    """Gateway ids whose reconcile the writes enqueued: what ``enqueue_reconcile`` sends once
    the write commits (tests run ``committed`` to run those callbacks)."""
    sent = []
    monkeypatch.setattr(tasks, "send_reconcile", lambda gateway_id, **kw: sent.append(gateway_id))
    return sent


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """``committed(client.post, url, data)``: the request, then what runs when it commits."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


def signed_in(user, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.fixture
def editor(org):
    return signed_in(org.users[Role.EDITOR])


@pytest.fixture
def viewer(org):
    return signed_in(org.users[Role.VIEWER])


@pytest.fixture
def edge(org):
    gateway = services.create_gateway(SYSTEM, org.tenant, "edge", {"replicas": 2})
    services.create_route(SYSTEM, gateway, "web", {"rules": [{"backendRefs": [{"name": "app"}]}]})
    services.create_backend(SYSTEM, org.tenant, "api", {"endpoints": [IP_ENDPOINT]})
    return gateway


def field_errors(response, field: str) -> str:
    """The text of the error list shown under form field ``field``."""
    html = response.content.decode()
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', html, re.S)
    return re.sub(r"<[^>]+>", " ", match.group(1)) if match else ""


def page_text(response) -> str:
    return response.content.decode()


# --- Roles ------------------------------------------------------------------------------------

PAGES = [
    "/t/acme/",
    "/t/acme/gateways/",
    "/t/acme/gateways/edge/",
    "/t/acme/gateways/edge/status/",
    "/t/acme/gateways/edge/routes/",
    "/t/acme/gateways/edge/routes/web/",
    "/t/acme/backends/",
    "/t/acme/backends/api/",
    "/t/acme/gateways/edge/policies/",
    "/t/acme/gateways/edge/revisions/",
]
WRITE_PAGES = [
    "/t/acme/gateways/new/",
    "/t/acme/gateways/edge/scale/",
    "/t/acme/gateways/edge/delete/",
    "/t/acme/gateways/edge/routes/new/",
    "/t/acme/gateways/edge/routes/web/edit/",
    "/t/acme/gateways/edge/routes/web/delete/",
    "/t/acme/backends/new/",
    "/t/acme/backends/api/edit/",
    "/t/acme/backends/api/delete/",
    "/t/acme/gateways/edge/policies/new/",
]
WRITE_LABELS = [
    "New gateway",
    "Scale",
    ">Delete<",
    ">Edit<",
    "New route",
    "New backend",
    "New policy",
]


def test_it_sends_an_unauthenticated_user_to_sign_in(edge):
    client = Client()
    for url in PAGES + WRITE_PAGES:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url
    response = client.post("/t/acme/gateways/new/", {"name": "sneaky"})
    assert response.status_code == 302
    assert not Gateway.objects.filter(name="sneaky").exists()


def test_a_viewer_sees_no_write_controls_and_an_editor_does(edge, viewer, editor):
    for url in PAGES:
        text = page_text(viewer.get(url))
        for label in WRITE_LABELS:
            assert label not in text, (url, label)
    shown = "".join(page_text(editor.get(url)) for url in PAGES)
    for label in WRITE_LABELS:
        assert label in shown, label


def test_a_viewers_forged_posts_are_403_and_change_nothing(org, edge):
    client = signed_in(org.users[Role.VIEWER], csrf=True)
    client.get("/t/acme/gateways/")  # the CSRF cookie, as a browser has it
    token = client.cookies["csrftoken"].value
    posts = {
        "/t/acme/gateways/new/": {"name": "forged", "replicas": "1"},
        "/t/acme/gateways/edge/scale/": {"replicas": "3"},
        "/t/acme/gateways/edge/delete/": {},
        "/t/acme/gateways/edge/routes/new/": {"name": "forged", "mode": "spec", "spec": "{}"},
        "/t/acme/gateways/edge/routes/web/edit/": {"mode": "spec", "spec": "hostnames: [a.io]"},
        "/t/acme/gateways/edge/routes/web/delete/": {},
        "/t/acme/backends/new/": {"name": "forged", "mode": "fields", "endpoints": "10.0.0.9:80"},
        "/t/acme/backends/api/edit/": {"mode": "fields", "endpoints": "10.0.0.9:80"},
        "/t/acme/backends/api/delete/": {},
        "/t/acme/gateways/edge/policies/new/": {"name": "forged", "kind": "SecurityPolicy"},
    }
    events = AuditEvent.objects.count()
    for url, data in posts.items():
        response = client.post(url, {**data, "csrfmiddlewaretoken": token})
        assert response.status_code == 403, url
        assert "you need editor or above" in page_text(response), url
    for url in WRITE_PAGES:
        assert client.get(url).status_code == 403, url
    edge.refresh_from_db()
    assert edge.spec["replicas"] == 2
    assert list(Route.objects.values_list("name", "spec__hostnames")) == [("web", None)]
    assert not Gateway.objects.filter(name="forged").exists()
    assert list(Backend.objects.values_list("name", "spec__endpoints")) == [("api", [IP_ENDPOINT])]
    assert AuditEvent.objects.count() == events


def test_another_tenants_gateways_and_routes_are_404(org, other_org, editor):
    theirs = services.create_gateway(SYSTEM, other_org.tenant, "secret-gw", {})
    services.create_route(SYSTEM, theirs, "hidden", {})
    services.create_backend(SYSTEM, other_org.tenant, "secret-be", {"endpoints": [IP_ENDPOINT]})
    for prefix in ("/t/globex/backends/secret-be/", "/t/acme/backends/secret-be/"):
        for path in ("", "edit/", "delete/"):
            assert editor.get(prefix + path).status_code == 404, prefix + path
            assert editor.post(prefix + path, {"mode": "spec", "spec": "{}"}).status_code == 404
    assert Backend.objects.filter(name="secret-be").exists()
    paths = ["", "status/", "scale/", "delete/", "routes/", "routes/hidden/", "routes/hidden/edit/",
             "routes/hidden/delete/", "routes/new/"]  # fmt: skip
    for prefix in ("/t/globex/gateways/secret-gw/", "/t/acme/gateways/secret-gw/"):
        for path in paths:
            response = editor.get(prefix + path)
            assert response.status_code == 404, prefix + path
            assert "secret-gw" not in page_text(response)
            assert editor.post(prefix + path, {"replicas": "5"}).status_code == 404
    for url in ("/t/globex/", "/t/globex/gateways/", "/t/globex/gateways/new/", "/t/globex/audit/"):
        assert editor.get(url).status_code == 404, url
    assert Gateway.objects.get(pk=theirs.pk).spec["replicas"] == 1
    assert Route.objects.filter(name="hidden").exists()


def test_a_suspended_tenant_is_read_only(org, edge):
    org.tenant.suspended = True
    org.tenant.save()
    owner = signed_in(org.users[Role.OWNER])
    text = page_text(owner.get("/t/acme/gateways/edge/"))
    assert "suspended" in text
    assert "Scale" not in text
    response = owner.post("/t/acme/gateways/edge/scale/", {"replicas": "3"})
    assert response.status_code == 403
    assert Gateway.objects.get(pk=edge.pk).spec["replicas"] == 2


def test_the_audit_log_is_for_admins(org, edge, editor):
    assert editor.get("/t/acme/audit/").status_code == 403
    assert "Audit log" not in page_text(editor.get("/t/acme/"))
    admin = signed_in(org.users[Role.ADMIN])
    response = admin.get("/t/acme/audit/?objectType=route")
    assert response.status_code == 200
    assert "edge/web" in page_text(response)
    assert "Recent audit events" in page_text(admin.get("/t/acme/"))


# --- Bad input ----------------------------------------------------------------------------------

GATEWAY_MISTAKES = [
    ({"name": "Bad_Name"}, "name", "must be a DNS label"),
    ({"name": ""}, "name", "may not be blank"),
    ({"replicas": "0"}, "replicas", "greater than or equal to 1"),
    ({"replicas": "many"}, "replicas", "A valid integer is required"),
    ({"replicas": "500"}, None, "quota maxReplicasPerGateway"),
    ({"size": "xlarge"}, "size", "size 'xlarge' is not allowed by plan 'standard'"),
    ({"size": "huge"}, "size", '"huge" is not a valid choice'),
    ({"listeners": "- {name: http, protocol: HTTP, port: 0}"}, "listeners",
     "spec.listeners[0].port: Ensure this value is greater than or equal to 1."),
    ({"listeners": "- {name: http, protocol: FTP, port: 21}"}, "listeners",
     "spec.listeners[0].protocol:"),
    ({"listeners": "[unclosed"}, "listeners", "is not valid YAML or JSON"),
    ({"listeners": "name: http"}, "listeners", "must be a list"),
    ({"listeners": "- &a [1]\n- *a"}, "listeners", "aliases (*name) are not accepted"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field", "message"), GATEWAY_MISTAKES)
def test_bad_gateway_input_is_shown_at_its_field_and_nothing_is_saved(
    org, editor, reconciles, committed, change, field, message
):
    form = {"name": "edge", "size": "small", "replicas": "1", "runtime": "local",
            "listeners": LISTENERS, **change}  # fmt: skip
    response = committed(editor.post, "/t/acme/gateways/new/", form)
    assert response.status_code == 400
    shown = field_errors(response, field) if field else page_text(response)
    assert message.replace("'", "&#x27;").replace('"', "&quot;") in shown or message in shown
    assert "Nothing was saved" in page_text(response)
    assert not Gateway.objects.exists()
    assert not AuditEvent.objects.filter(object_type="gateway").exists()
    assert reconciles == []


def test_a_taken_gateway_name_is_shown_at_the_name(org, edge, editor):
    response = editor.post("/t/acme/gateways/new/", {"name": "edge", "listeners": LISTENERS})
    assert response.status_code == 400
    assert "already exists" in field_errors(response, "name")
    assert Gateway.objects.count() == 1


def test_bad_scale_is_shown_at_replicas_and_nothing_changes(org, edge, editor):
    response = editor.post("/t/acme/gateways/edge/scale/", {"replicas": "-1"})
    assert response.status_code == 400
    assert "greater than or equal to 1" in field_errors(response, "replicas")
    edge.refresh_from_db()
    assert (edge.spec["replicas"], edge.generation) == (2, 1)


ROUTE_SPEC_MISTAKES = [
    ("rules:\n- backendRefs:\n  - name: Not_A_Name\n",
     "spec.rules[0].backendRefs[0].name: must be a DNS label"),
    ("rules:\n- matches:\n  - path: {type: RegularExpression, value: '(?=x)'}\n",
     "spec.rules[0].matches[0].path.value: is not a valid RE2 regular expression"),
    ("hostnames: [10.0.0.1]\n", "spec.hostnames[0]:"),
    ("retry: {}\n", "spec.retry:"),
    ("- just a list\n", "must be an object"),
    ("rules: [", "is not valid YAML or JSON"),
    ("a: &x [1, 2]\nb: *x\n", "aliases (*name) are not accepted"),
    ("a:" + " [" * 70 + " ]" * 70, "nested more than 64 levels"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), ROUTE_SPEC_MISTAKES)
def test_a_bad_route_spec_is_shown_at_the_spec_and_nothing_is_saved(
    edge, editor, reconciles, committed, text, message
):
    route = Route.objects.get(name="web")
    url = "/t/acme/gateways/edge/routes/web/edit/"
    response = committed(editor.post, url, {"mode": "spec", "spec": text})
    assert response.status_code == 400
    assert message.replace("'", "&#x27;") in field_errors(response, "spec")
    assert Route.objects.get(pk=route.pk).spec == route.spec
    assert Route.objects.get(pk=route.pk).generation == 1
    assert not AuditEvent.objects.filter(object_type="route", action="update").exists()
    assert reconciles == []


ROUTE_FIELD_MISTAKES = [
    ({"backend": "Not_A_Name"}, "backend", "must be a DNS label"),
    ({"path_type": "RegularExpression", "path_value": "(?=x)"}, "path_value",
     "is not a valid RE2 regular expression"),
    ({"path_value": "no-slash"}, "path_value", ""),
    ({"hostnames": "ok.example.com, Bad_Host"}, "hostnames", "spec.hostnames[1]:"),
    ({"name": "Web"}, "name", "must be a DNS label"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field", "message"), ROUTE_FIELD_MISTAKES)
def test_bad_route_fields_are_shown_at_their_field_and_nothing_is_saved(
    edge, editor, change, field, message
):
    form = {"name": "api", "mode": "fields", "path_type": "PathPrefix", "path_value": "/api",
            "backend": "app", "hostnames": "", **change}  # fmt: skip
    response = editor.post("/t/acme/gateways/edge/routes/new/", form)
    assert response.status_code == 400
    shown = field_errors(response, field)
    assert shown.strip(), page_text(response)
    assert message in shown
    assert list(Route.objects.values_list("name", flat=True)) == ["web"]


def test_a_stale_route_edit_is_refused(edge, editor):
    route = Route.objects.get(name="web")
    services.patch_route_spec(SYSTEM, route, {"hostnames": ["new.example.com"]})
    response = editor.post(
        "/t/acme/gateways/edge/routes/web/edit/",
        {"mode": "spec", "spec": "hostnames: [mine.example.com]",
         "resource_version": str(route.resource_version)},
    )  # fmt: skip
    assert response.status_code == 400
    assert "has changed since you read it" in page_text(response)
    assert Route.objects.get(pk=route.pk).spec["hostnames"] == ["new.example.com"]


# --- Writes go through the services --------------------------------------------------------------


def audit(action: str, object_type: str, name: str) -> AuditEvent:
    return AuditEvent.objects.get(action=action, object_type=object_type, object_name=name)


def test_console_writes_are_audited_and_reconciled_as_the_apis(org, reconciles, committed):
    user = org.users[Role.EDITOR].username
    client = signed_in(org.users[Role.EDITOR])

    class editor:  # every request runs its commit callbacks
        @staticmethod
        def post(*args, **kwargs):
            return committed(client.post, *args, **kwargs)

    form = {"name": "edge", "size": "small", "replicas": "2", "runtime": "local",
            "listeners": LISTENERS}  # fmt: skip
    response = editor.post("/t/acme/gateways/new/", form)
    assert response.status_code == 302
    gateway = Gateway.objects.get(name="edge")
    assert response["Location"] == "/t/acme/gateways/edge/"
    assert gateway.spec["replicas"] == 2
    event = audit("create", "gateway", "edge")
    assert (event.actor_name, event.tenant_id) == (user, org.tenant.pk)
    assert event.request_id
    assert reconciles == [gateway.pk]

    editor.post("/t/acme/gateways/edge/scale/", {"replicas": "3"})
    assert Gateway.objects.get(pk=gateway.pk).spec["replicas"] == 3
    assert audit("update", "gateway", "edge").after["spec"]["replicas"] == 3

    form = {"name": "web", "mode": "fields", "path_type": "PathPrefix", "path_value": "/",
            "backend": "app", "hostnames": "a.example.com"}  # fmt: skip
    response = editor.post("/t/acme/gateways/edge/routes/new/", form)
    assert response["Location"] == "/t/acme/gateways/edge/routes/web/"
    route = Route.objects.get(name="web")
    assert route.spec["hostnames"] == ["a.example.com"]
    assert route.spec["rules"][0]["backendRefs"] == [{"name": "app", "weight": 1}]
    assert audit("create", "route", "edge/web").actor_name == user

    spec = "hostnames: [b.example.com]\nrules:\n- backendRefs: [{name: app, weight: 5}]\n"
    editor.post("/t/acme/gateways/edge/routes/web/edit/", {"mode": "spec", "spec": spec,
                "resource_version": str(route.resource_version)})  # fmt: skip
    route.refresh_from_db()
    assert (route.spec["hostnames"], route.generation) == (["b.example.com"], 2)
    assert audit("update", "route", "edge/web").actor_name == user

    editor.post("/t/acme/gateways/edge/routes/web/delete/")
    assert not Route.objects.exists()
    assert audit("delete", "route", "edge/web").actor_name == user

    response = editor.post("/t/acme/gateways/edge/delete/")
    assert response["Location"] == "/t/acme/gateways/"
    assert not Gateway.objects.exists()
    assert audit("delete", "gateway", "edge").actor_name == user
    assert reconciles == [gateway.pk] * 5


def test_editing_common_fields_keeps_the_rest_of_the_spec(edge, editor):
    route = Route.objects.get(name="web")
    full = {"rules": [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/a"}}, {"method": "POST"}],
         "filters": [{"type": "ResponseHeaderModifier",
                      "responseHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]}}],
         "backendRefs": [{"name": "app", "weight": 3}, {"name": "canary", "weight": 1}]},
        {"backendRefs": [{"name": "other"}]}]}  # fmt: skip
    route = services.replace_route_spec(SYSTEM, route, full)
    form = RouteForm.initial_for(route.spec) | {"mode": "fields", "backend": "app2",
                                                "path_value": "/b"}  # fmt: skip
    response = editor.post("/t/acme/gateways/edge/routes/web/edit/", form)
    assert response.status_code == 302
    route.refresh_from_db()
    rule = route.spec["rules"][0]
    assert rule["matches"][0]["path"] == {"type": "PathPrefix", "value": "/b"}
    assert rule["matches"][1]["method"] == "POST"
    assert rule["backendRefs"] == [{"name": "app2", "weight": 3}, {"name": "canary", "weight": 1}]
    assert rule["filters"] == full["rules"][0]["filters"]
    assert route.spec["rules"][1]["backendRefs"][0]["name"] == "other"


# --- Lists and live status ----------------------------------------------------------------------


def test_gateway_list_sorts_filters_and_paginates(org, editor):
    org.tenant.plan.max_gateways = 100
    org.tenant.plan.save()
    for index in range(30):
        services.create_gateway(SYSTEM, org.tenant, f"gw-{index:02d}", {"replicas": 1 + index % 3})

    def names(response):
        return re.findall(r'href="/t/acme/gateways/(gw-\d+)/"', page_text(response))

    assert names(editor.get("/t/acme/gateways/"))[:2] == ["gw-00", "gw-01"]
    assert len(names(editor.get("/t/acme/gateways/"))) == 25
    assert names(editor.get("/t/acme/gateways/?page=2")) == [f"gw-{i}" for i in range(25, 30)]
    assert names(editor.get("/t/acme/gateways/?sort=-name"))[0] == "gw-29"
    by_replicas = names(editor.get("/t/acme/gateways/?sort=-replicas"))
    assert Gateway.objects.get(name=by_replicas[0]).spec["replicas"] == 3
    assert names(editor.get("/t/acme/gateways/?name=gw-1")) == [f"gw-1{i}" for i in range(10)]
    response = editor.get("/t/acme/gateways/?size=huge&page=zz&sort=nonsense")
    assert response.status_code == 200
    assert names(response) == []
    assert "Select a valid choice" in page_text(response)
    assert "30 in all" in page_text(editor.get("/t/acme/gateways/"))


def test_route_list_filters_by_the_apis_filterset(edge, editor):
    services.create_route(SYSTEM, edge, "api-v1", {})
    services.create_route(SYSTEM, edge, "api-v2", {})
    text = page_text(editor.get("/t/acme/gateways/edge/routes/?name=api&sort=-name"))
    assert re.findall(r"routes/(api-v\d)/\"", text) == ["api-v2", "api-v1"]
    assert "BackendNotFound" in page_text(editor.get("/t/acme/gateways/edge/routes/"))


def test_the_status_partial_polls_only_until_the_gateway_settles(edge, editor):
    response = editor.get("/t/acme/gateways/edge/status/")
    assert 'hx-trigger="every 2s"' in page_text(response)
    assert "<html" not in page_text(response)
    status = dict(edge.status, phase="Ready")
    status["conditions"] = [
        dict(c, status="True", reason="Programmed") if c["type"] == "Programmed" else c
        for c in status["conditions"]
    ]
    status["listeners"][0]["url"] = "http://127.0.0.1:20000/"
    Gateway.objects.filter(pk=edge.pk).update(status=status)
    text = page_text(editor.get("/t/acme/gateways/edge/status/"))
    assert "hx-get" not in text
    assert 'data-settled="true"' in text
    assert "http://127.0.0.1:20000/" in text
    detail = page_text(editor.get("/t/acme/gateways/edge/"))
    assert "hx-get" not in detail
    assert "Ready" in detail


# --- Secrets and the one helper ----------------------------------------------------------------


def test_no_page_renders_a_private_key_or_an_api_key(org, edge, reconciles):
    chain, key = certificate(("app.example.com",))
    services.create_certificate(SYSTEM, org.tenant, "app-cert",
                                {"certificatePem": chain, "privateKeyPem": key})  # fmt: skip
    consumer = services.create_consumer(SYSTEM, org.tenant, "mobile", {})
    _, api_key = services.create_credential(SYSTEM, consumer, {"type": "api-key"})
    https = {"name": "https", "protocol": "HTTPS", "port": 443,
             "tls": {"certificateRefs": [{"name": "app-cert"}]}}  # fmt: skip
    services.patch_gateway_spec(SYSTEM, edge, {"listeners": [https]})
    token, plaintext = tenant_services.create_token(SYSTEM, org.tenant, "ci",
                                                    user=org.users[Role.OWNER])  # fmt: skip
    owner = signed_in(org.users[Role.OWNER])
    key_body = key.splitlines()[1]
    for url in [
        *PAGES,
        *WRITE_PAGES,
        "/t/acme/audit/",
        "/t/acme/tokens/",
        "/t/acme/certificates/",
        "/t/acme/certificates/app-cert/",
        "/t/acme/certificates/app-cert/edit/",
        "/t/acme/consumers/",
        "/t/acme/consumers/mobile/",
    ]:
        text = page_text(owner.get(url))
        for secret in (key_body, api_key, plaintext, "PRIVATE KEY"):
            assert secret not in text, (url, secret[:12])


def test_service_errors_go_to_the_field_with_the_longest_matching_path():
    form = RouteForm({"mode": "fields"})
    assert form.is_valid()
    error = ValidationFailed([
        FieldError("spec.rules[0].backendRefs[0].name", "bad name"),
        FieldError("spec.rules[0].backendRefs[1].name", "bad too"),
        FieldError("spec.hostnames[2]", "bad host"),
        FieldError("spec.parentRefs[0].sectionName", "no such listener"),
        FieldError("name", "taken"),
    ])  # fmt: skip
    apply_service_error(form, error, RouteForm.COMMON_FIELDS)
    assert form.errors["backend"] == ["bad name"]
    assert form.errors["hostnames"] == ["spec.hostnames[2]: bad host"]
    assert form.errors["name"] == ["taken"]
    assert form.non_field_errors() == [
        "spec.rules[0].backendRefs[1].name: bad too",
        "spec.parentRefs[0].sectionName: no such listener",
    ]
    form = RouteForm({"mode": "spec"})
    assert form.is_valid()
    apply_service_error(form, error, RouteForm.SPEC_FIELDS)
    assert form.errors["spec"][0] == "spec.rules[0].backendRefs[0].name: bad name"
    assert len(form.errors["spec"]) == 4


# --- Backends ------------------------------------------------------------------------------------

BACKEND_MISTAKES = [
    ({"endpoints": "169.254.169.254:80"}, "endpoints",
     "spec.endpoints[0].ip.address: 169.254.169.254 is link-local"),
    ({"endpoints": "10.0.0.1"}, "endpoints", "spec.endpoints[0].ip.port: This field is required"),
    ({"endpoints": "10.0.0.1:http"}, "endpoints", "spec.endpoints[0].ip.port: A valid integer"),
    ({"endpoints": "10.0.0.1:80\napi.internal:80"}, "endpoints",
     "spec.endpoints[1]: cannot mix ip and fqdn endpoints"),
    ({"endpoints": ""}, "endpoints", "This list may not be empty"),
    ({"app_protocol": "h3"}, "app_protocol", "is not a valid choice"),
    ({"sni": "Not A Host"}, "sni", "must be a lowercase DNS name"),
    ({"ca_refs": "ok, Bad_Name"}, "ca_refs", "spec.tls.caCertificateRefs[1].name: must be a DNS"),
    ({"name": "-bad"}, "name", "must be a DNS label"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field", "message"), BACKEND_MISTAKES)
def test_bad_backend_fields_are_shown_at_their_field_and_nothing_is_saved(
    org, editor, change, field, message
):
    form = {"name": "api", "mode": "fields", "endpoints": "10.0.0.1:8080",
            "app_protocol": "HTTP/1.1", **change}  # fmt: skip
    response = editor.post("/t/acme/backends/new/", form)
    assert response.status_code == 400
    assert message in field_errors(response, field).replace("&#x27;", "'"), page_text(response)
    assert not Backend.objects.exists()


def test_backends_are_created_edited_and_deleted_through_the_services(
    org, edge, reconciles, committed
):
    client = signed_in(org.users[Role.EDITOR])
    form = {"name": "app", "mode": "fields", "endpoints": "10.0.0.1:8080\n[2001:db8::1]:8080",
            "app_protocol": "h2c", "tls": "on", "sni": "app.internal"}  # fmt: skip
    response = committed(client.post, "/t/acme/backends/new/", form)
    assert response["Location"] == "/t/acme/backends/app/"
    backend = Backend.objects.get(name="app")
    assert backend.spec == {
        "endpoints": [{"ip": {"address": "10.0.0.1", "port": 8080}},
                      {"ip": {"address": "2001:db8::1", "port": 8080}}],
        "appProtocol": "h2c",
        "tls": {"sni": "app.internal"},
    }  # fmt: skip
    assert audit("create", "backend", "app").actor_name == org.users[Role.EDITOR].username
    assert reconciles == [edge.pk]
    # The route naming it resolves now.
    assert "BackendNotFound" not in page_text(client.get("/t/acme/gateways/edge/routes/web/"))
    page = page_text(client.get("/t/acme/backends/app/"))
    assert "2001:db8::1" in page and "SNI" in page

    edit = {**BackendForm.initial_for(backend.spec), "mode": "fields", "endpoints": "a.internal:80",
            "resource_version": str(backend.resource_version)}  # fmt: skip
    response = committed(client.post, "/t/acme/backends/app/edit/", edit)
    assert response.status_code == 302
    backend.refresh_from_db()
    assert backend.spec["endpoints"] == [{"fqdn": {"hostname": "a.internal", "port": 80}}]
    assert backend.spec["tls"] == {"sni": "app.internal"}

    response = committed(client.post, "/t/acme/backends/app/edit/",
                         {"mode": "spec", "spec": '{"endpoints": [{"ip": {"address": "10.0.0.2", '
                          '"port": 81}}]}'})  # fmt: skip
    backend.refresh_from_db()
    assert backend.spec == {"endpoints": [{"ip": {"address": "10.0.0.2", "port": 81}}],
                            "appProtocol": "HTTP/1.1"}  # fmt: skip

    response = committed(client.post, "/t/acme/backends/app/delete/")
    assert response["Location"] == "/t/acme/backends/"
    assert not Backend.objects.filter(name="app").exists()
    assert audit("delete", "backend", "app").actor_name == org.users[Role.EDITOR].username
    assert reconciles == [edge.pk] * 4
    assert "BackendNotFound" in page_text(client.get("/t/acme/gateways/edge/routes/web/"))


def test_backend_list_filters_by_protocol(org, editor):
    services.create_backend(SYSTEM, org.tenant, "grpc-api",
                            {"endpoints": [IP_ENDPOINT], "appProtocol": "gRPC"})  # fmt: skip
    services.create_backend(SYSTEM, org.tenant, "web-api", {"endpoints": [IP_ENDPOINT]})
    text = page_text(editor.get("/t/acme/backends/?appProtocol=gRPC"))
    assert "grpc-api" in text and "web-api" not in text


def test_polling_ends_cleanly_when_signed_out_or_the_gateway_is_gone(org, edge, editor):
    polled = {"HTTP_HX_REQUEST": "true"}
    response = Client().get("/t/acme/gateways/edge/status/", **polled)
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=/t/acme/gateways/edge/"
    services.delete_gateway(SYSTEM, edge)
    response = editor.get("/t/acme/gateways/edge/status/", **polled)
    assert response.status_code == 286  # htmx stops polling
    assert "was deleted" in page_text(response) and "hx-get" not in page_text(response)
    assert editor.get("/t/acme/gateways/edge/status/").status_code == 404
    assert editor.get("/t/globex/gateways/edge/status/", **polled).status_code == 404


# --- Certificates: the key is write-only ---------------------------------------------------------


def test_a_certificate_key_is_stored_and_never_rendered_not_even_after_a_mistake(
    org, edge, reconciles, committed
):
    chain, key = certificate(("app.example.com",))
    other_chain, _ = certificate(("other.example.com",), label="other")
    key_body = key.splitlines()[1]
    client = signed_in(org.users[Role.EDITOR])
    # A chain that does not match the key: refused at the key or chain, and the key typed is
    # not sent back in the page that shows the error.
    form = {"name": "app-cert", "certificate_pem": other_chain, "private_key_pem": key}
    response = client.post("/t/acme/certificates/new/", form)
    assert response.status_code == 400
    shown = field_errors(response, "private_key_pem")
    assert "does not match the public key of the first certificate" in shown
    assert key_body not in page_text(response)
    assert not Certificate.objects.exists()

    form = {"name": "app-cert", "certificate_pem": chain, "private_key_pem": key}
    response = committed(client.post, "/t/acme/certificates/new/", form)
    assert response["Location"] == "/t/acme/certificates/app-cert/"
    stored = Certificate.objects.get(name="app-cert")
    assert stored.private_key and stored.status["hasPrivateKey"]
    event = audit("create", "certificate", "app-cert")
    assert key_body not in str(event.after)
    assert reconciles == [edge.pk]
    owner = signed_in(org.users[Role.OWNER])
    for url in ("/t/acme/certificates/", "/t/acme/certificates/app-cert/",
                "/t/acme/certificates/app-cert/edit/", "/t/acme/certificates/app-cert/delete/",
                "/t/acme/audit/", "/t/acme/"):  # fmt: skip
        text = page_text(owner.get(url))
        assert key_body not in text and "PRIVATE KEY" not in text, url
    detail = page_text(owner.get("/t/acme/certificates/app-cert/"))
    assert "app.example.com" in detail and "stored, encrypted (never shown)" in detail

    # A renewal with the chain alone keeps the stored key.
    response = client.post("/t/acme/certificates/app-cert/edit/", {"certificate_pem": chain})
    assert response.status_code == 302
    assert Certificate.objects.get(name="app-cert").private_key == stored.private_key

    viewer = signed_in(org.users[Role.VIEWER])
    assert viewer.post("/t/acme/certificates/app-cert/delete/").status_code == 403
    assert client.post("/t/acme/certificates/app-cert/delete/").status_code == 302
    assert not Certificate.objects.exists()
    assert audit("delete", "certificate", "app-cert").actor_name == org.users[Role.EDITOR].username


# --- Consumers: an API key is shown once ---------------------------------------------------------


def nonce_of(response) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', page_text(response)).group(1)


def test_a_consumers_api_key_is_shown_once_and_passwords_never(org, edge, reconciles, committed):
    client = signed_in(org.users[Role.EDITOR])
    response = committed(client.post, "/t/acme/consumers/new/",
                         {"name": "mobile", "description": "the iOS app"})  # fmt: skip
    assert response["Location"] == "/t/acme/consumers/mobile/"
    assert audit("create", "consumer", "mobile").after["spec"] == {"description": "the iOS app"}

    page = client.get("/t/acme/consumers/mobile/")
    form = {"type": "api-key", "nonce": nonce_of(page)}
    answer = committed(client.post, "/t/acme/consumers/mobile/", form)
    assert answer.status_code == 200
    assert answer["Cache-Control"].startswith("max-age=0") and "no-store" in answer["Cache-Control"]
    credential = Credential.objects.get(type="api-key")
    shown = re.search(r'value="(gak_[^"]+)" aria-label="new API key"', page_text(answer)).group(1)
    assert shown == credential.secret
    assert reconciles == [edge.pk, edge.pk]
    # A reload re-sends the form: no second key, none shown; nor on the next visit.
    again = client.post("/t/acme/consumers/mobile/", form)
    assert again.status_code == 302
    assert Credential.objects.filter(type="api-key").count() == 1
    assert shown not in page_text(client.get("/t/acme/consumers/mobile/"))

    page = client.get("/t/acme/consumers/mobile/")
    short = {"type": "basic-auth", "password": "short", "nonce": nonce_of(page)}
    response = client.post("/t/acme/consumers/mobile/", short)
    assert response.status_code == 400
    assert "at least 8 characters" in field_errors(response, "password")
    assert 'value="short"' not in page_text(response)
    assert not Credential.objects.filter(type="basic-auth").exists()

    good = {"type": "basic-auth", "password": "correct horse", "nonce": nonce_of(response)}
    response = client.post("/t/acme/consumers/mobile/", good)
    assert "Password set" in page_text(response)
    assert "correct horse" not in page_text(response)
    assert Credential.objects.get(type="basic-auth").secret.startswith("{SHA}")
    again = {**good, "nonce": nonce_of(response)}
    response = client.post("/t/acme/consumers/mobile/", again)
    assert response.status_code == 400
    assert "already has a basic-auth credential" in page_text(response)

    owner = signed_in(org.users[Role.OWNER])
    for url in ("/t/acme/consumers/", "/t/acme/consumers/mobile/", "/t/acme/audit/"):
        text = page_text(owner.get(url))
        assert shown not in text and "{SHA}" not in text, url

    viewer = signed_in(org.users[Role.VIEWER])
    assert "Create API key" not in page_text(viewer.get("/t/acme/consumers/mobile/"))
    assert viewer.post("/t/acme/consumers/mobile/", {"type": "api-key"}).status_code == 403
    url = f"/t/acme/consumers/mobile/credentials/{credential.key_id}/delete/"
    assert viewer.post(url).status_code == 403
    assert client.post(url)["Location"] == "/t/acme/consumers/mobile/"
    assert not Credential.objects.filter(pk=credential.pk).exists()
    assert audit("delete", "credential", f"mobile/{credential.key_id}").actor_name == (
        org.users[Role.EDITOR].username
    )
    assert client.post("/t/acme/consumers/mobile/delete/")["Location"] == "/t/acme/consumers/"
    assert not Credential.objects.exists()


# --- Policies ------------------------------------------------------------------------------------

POLICY_SPEC = """targetRefs:
- kind: Gateway
  name: edge
apiKeyAuth:
  credentialRefs:
  - name: mobile
  extractFrom:
  - headers: [x-api-key]
"""


def test_policies_are_written_as_yaml_through_the_services(org, edge, reconciles, committed):
    client = signed_in(org.users[Role.EDITOR])
    bad = {"name": "keys", "kind": "SecurityPolicy",
           "spec": POLICY_SPEC.replace("name: edge", "name: other")}  # fmt: skip
    response = client.post("/t/acme/gateways/edge/policies/new/", bad)
    assert response.status_code == 400
    assert "spec.targetRefs[0].name:" in field_errors(response, "spec")
    response = client.post("/t/acme/gateways/edge/policies/new/", {**bad, "kind": "Nonsense"})
    assert field_errors(response, "kind").strip()
    assert not Policy.objects.exists()

    form = {"name": "keys", "kind": "SecurityPolicy", "spec": POLICY_SPEC}
    response = committed(client.post, "/t/acme/gateways/edge/policies/new/", form)
    assert response["Location"] == "/t/acme/gateways/edge/policies/keys/"
    policy = Policy.objects.get(name="keys")
    assert policy.spec["apiKeyAuth"]["credentialRefs"][0]["name"] == "mobile"
    assert audit("create", "policy", "edge/keys").actor_name == org.users[Role.EDITOR].username
    assert reconciles == [edge.pk]
    listing = page_text(client.get("/t/acme/gateways/edge/policies/?kind=SecurityPolicy"))
    assert "keys" in listing and "Gateway edge" in listing
    assert ">Gateway<" not in listing.split("<thead>")[1].split("</thead>")[0]  # one gateway
    assert "Policies (1)" in page_text(client.get("/t/acme/gateways/edge/"))
    everywhere = page_text(client.get("/t/acme/policies/?name=key"))
    assert "/t/acme/gateways/edge/policies/keys/" in everywhere and ">edge<" in everywhere
    assert ">Gateway<" in everywhere.split("<thead>")[1].split("</thead>")[0]

    edit = {"spec": POLICY_SPEC.replace("x-api-key", "x-key"),
            "resource_version": str(policy.resource_version)}  # fmt: skip
    assert client.post("/t/acme/gateways/edge/policies/keys/edit/", edit).status_code == 302
    policy.refresh_from_db()
    assert policy.spec["apiKeyAuth"]["extractFrom"] == [{"headers": ["x-key"]}]

    viewer = signed_in(org.users[Role.VIEWER])
    assert viewer.get("/t/acme/gateways/edge/policies/keys/").status_code == 200
    assert viewer.post("/t/acme/gateways/edge/policies/keys/delete/").status_code == 403
    response = client.post("/t/acme/gateways/edge/policies/keys/delete/")
    assert response["Location"] == "/t/acme/gateways/edge/policies/"
    assert not Policy.objects.exists()


def test_the_tenant_switcher_appears_for_members_of_several_tenants(org, other_org):
    single = signed_in(org.users[Role.VIEWER])
    assert 'class="switcher"' not in page_text(single.get("/t/acme/"))
    tenant_services.add_member(SYSTEM, Role.OWNER, other_org.tenant,
                               org.users[Role.VIEWER].username, Role.VIEWER)  # fmt: skip
    text = page_text(single.get("/t/acme/gateways/"))
    switcher = text.split('class="switcher"')[1].split("</details>")[0]
    assert 'href="/t/acme/" aria-current="true"' in switcher
    assert 'href="/t/globex/"' in switcher
    assert "switch tenant" in switcher  # its name for screen readers


def test_a_replicas_log_tail_is_readable_by_members_only(org, other_org, edge, viewer, tmp_path):
    from django.utils import timezone

    from provisioning.models import LocalReplica

    log = tmp_path / "envoy-0.log"
    log.write_text("".join(f"line {i}\n" for i in range(500)))
    LocalReplica.objects.create(gateway=edge, index=0, state="running", restarts=2,
                                log_path=str(log), started_at=timezone.now())  # fmt: skip
    status = page_text(viewer.get("/t/acme/gateways/edge/status/"))
    assert 'href="/t/acme/gateways/edge/replicas/0/log/"' in status
    text = page_text(viewer.get("/t/acme/gateways/edge/replicas/0/log/"))
    assert "line 499" in text and "line 300" in text and "line 299\n" not in text
    assert str(tmp_path) not in text  # where logs live is the platform's business
    assert viewer.get("/t/acme/gateways/edge/replicas/1/log/").status_code == 404
    outsider = signed_in(other_org.users[Role.OWNER])
    assert outsider.get("/t/acme/gateways/edge/replicas/0/log/").status_code == 404


# --- Members -------------------------------------------------------------------------------------


def test_admins_manage_members_through_the_services(org, other_org):
    admin = signed_in(org.users[Role.ADMIN])
    newcomer = make_user("nina")
    tenant_services.add_member(SYSTEM, Role.OWNER, other_org.tenant, "nina", Role.VIEWER)
    tenant_services.add_member(SYSTEM, Role.OWNER, other_org.tenant,
                               org.users[Role.ADMIN].username, Role.VIEWER)  # fmt: skip
    # Someone the admin shares no tenant with reads the same as someone who does not exist.
    for name in ("stranger", "nobody-at-all"):
        if name == "stranger":
            make_user(name)
        response = admin.post("/t/acme/members/", {"user": name, "role": "viewer"})
        assert response.status_code == 400
        assert "that you can add" in field_errors(response, "user").replace("&#x27;", "'")
    response = admin.post("/t/acme/members/", {"user": "nina", "role": "owner"})
    assert response.status_code == 400
    assert "only owners may grant" in page_text(response)
    response = admin.post("/t/acme/members/", {"user": "nina", "role": "boss"})
    assert "is not a valid choice" in field_errors(response, "role")
    assert not newcomer.memberships.filter(tenant=org.tenant).exists()

    assert admin.post("/t/acme/members/", {"user": "nina", "role": "editor"}).status_code == 302
    assert newcomer.memberships.get(tenant=org.tenant).role == "editor"
    event = AuditEvent.objects.get(tenant=org.tenant, action="create", object_name="nina")
    assert event.actor_name == org.users[Role.ADMIN].username
    response = admin.post("/t/acme/members/nina/", {"role": "admin"})
    assert response["Location"] == "/t/acme/members/"
    assert newcomer.memberships.get(tenant=org.tenant).role == "admin"
    tenant_services.create_token(SYSTEM, org.tenant, "laptop", user=newcomer)
    assert admin.post("/t/acme/members/nina/remove/").status_code == 302
    assert not newcomer.memberships.filter(tenant=org.tenant).exists()
    assert not newcomer.api_tokens.filter(tenant=org.tenant, revoked_at__isnull=True).exists()

    owner_name = org.users[Role.OWNER].username
    response = signed_in(org.users[Role.OWNER]).post(f"/t/acme/members/{owner_name}/remove/")
    assert response.status_code == 400
    assert "must keep at least one owner" in page_text(response)


def test_members_are_listed_for_everyone_and_managed_by_admins_only(org, editor):
    text = page_text(editor.get("/t/acme/members/"))
    assert org.users[Role.VIEWER].username in text
    assert "Add member" not in text and "Change role" not in text
    viewer_name = org.users[Role.VIEWER].username
    assert editor.post("/t/acme/members/", {"user": "x", "role": "viewer"}).status_code == 403
    assert editor.post(f"/t/acme/members/{viewer_name}/", {"role": "admin"}).status_code == 403
    assert editor.post(f"/t/acme/members/{viewer_name}/remove/").status_code == 403
    assert org.tenant.memberships.get(user__username=viewer_name).role == "viewer"
    admin_text = page_text(signed_in(org.users[Role.ADMIN]).get("/t/acme/members/?role=viewer"))
    assert "Add member" in admin_text and "Change role" in admin_text
    assert viewer_name in admin_text and org.users[Role.EDITOR].username not in admin_text
