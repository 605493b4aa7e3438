"""A hostile tenant against the API's limits: plan quotas, tokens minting tokens, secrets kept
out of caches, input that used to answer 500, route filters and route sizes, free text that
could mislead other people, and who a tenant admin may add as a member.

Every test goes through DRF's test client, as a tenant member with a real API token.
"""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from gateways.models import Backend, Certificate, Consumer, Route
from tenants.models import ApiToken, AuditEvent, Plan
from tenants.roles import Role
from tests.api import pki
from tests.conftest import make_user

API = "/api/v1/tenants/acme/"
GATEWAY_SPEC = {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}


def _quota(response) -> dict:
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    return error["quota"]


def _backend(client, name):
    spec = {"endpoints": [{"ip": {"address": "10.0.0.1", "port": 8080}}]}
    return client.post(API + "backends/", {"name": name, "spec": spec}, format="json")


def _certificate(client, name):
    cert, key = pki.certificate([f"{name}.example.com"])
    spec = {"certificatePem": cert, "privateKeyPem": key}
    return client.post(API + "certificates/", {"name": name, "spec": spec}, format="json")


def _consumer(client, name):
    return client.post(API + "consumers/", {"name": name, "spec": {}}, format="json")


@pytest.mark.parametrize(
    ("column", "quota", "create", "model"),
    [
        ("max_backends", "maxBackends", _backend, Backend),
        ("max_certificates", "maxCertificates", _certificate, Certificate),
        ("max_consumers", "maxConsumers", _consumer, Consumer),
    ],
)
def test_a_tenant_cannot_create_more_than_its_plan_allows(org, column, quota, create, model):
    Plan.objects.filter(name="standard").update(**{column: 2})
    editor = org.client(Role.EDITOR)
    assert create(editor, "one").status_code == 202
    assert create(editor, "two").status_code == 202
    events = AuditEvent.objects.count()
    assert _quota(create(editor, "three")) == {
        "name": quota, "limit": 2, "used": 2, "requested": 1, "plan": "standard",
    }  # fmt: skip
    assert sorted(model.objects.values_list("name", flat=True)) == ["one", "two"]
    assert AuditEvent.objects.count() == events  # nothing written, nothing audited


def test_a_user_cannot_hold_more_tokens_than_the_plan_allows(org):
    Plan.objects.filter(name="standard").update(max_tokens_per_user=3)
    viewer = org.client(Role.VIEWER)  # already holds one token (the one it uses)
    later = (timezone.now() + timedelta(days=1)).isoformat()
    body = {"name": "ci", "expiresAt": later}
    first = viewer.post(API + "tokens/", body, format="json")
    assert first.status_code == 201
    assert viewer.post(API + "tokens/", body, format="json").status_code == 201
    assert _quota(viewer.post(API + "tokens/", body, format="json"))["used"] == 3
    assert ApiToken.objects.filter(user=org.users[Role.VIEWER]).count() == 3
    # Revoked tokens do not count, and other users have their own allowance.
    assert viewer.delete(API + f"tokens/{first.json()['prefix']}/").status_code == 204
    assert viewer.post(API + "tokens/", body, format="json").status_code == 201
    assert org.client(Role.EDITOR).post(API + "tokens/", body, format="json").status_code == 201


def test_plans_show_the_new_quotas(org):
    plan = org.client(Role.VIEWER).get("/api/v1/plans/developer/").json()
    assert (plan["maxBackends"], plan["maxCertificates"]) == (20, 10)
    assert (plan["maxConsumers"], plan["maxTokensPerUser"]) == (100, 10)


# --- tokens minting tokens -------------------------------------------------------------------


def _token_client(org, expires_at=None):
    from rest_framework.test import APIClient

    from tenants import services
    from tenants.audit import Actor

    _, plaintext = services.create_token(
        Actor.system("tests"), org.tenant, "parent", user=org.users[Role.EDITOR],
        expires_at=expires_at,
    )  # fmt: skip
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def test_a_token_cannot_mint_a_token_that_outlives_it(org):
    parent_expiry = timezone.now() + timedelta(days=2)
    client = _token_client(org, parent_expiry)
    later = (parent_expiry + timedelta(days=30)).isoformat()
    response = client.post(API + "tokens/", {"name": "x", "expiresAt": later}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "expiresAt"
    never = client.post(API + "tokens/", {"name": "x", "expiresAt": None}, format="json")
    assert never.status_code == 201  # omitted or null: the parent's expiry, not "never"
    assert ApiToken.objects.get(prefix=never.json()["prefix"]).expires_at == parent_expiry
    sooner = (parent_expiry - timedelta(days=1)).isoformat()
    ok = client.post(API + "tokens/", {"name": "y", "expiresAt": sooner}, format="json")
    assert ok.status_code == 201


def test_a_token_that_never_expires_cannot_mint_one_that_never_expires(org):
    client = org.client(Role.EDITOR)
    before = ApiToken.objects.count()
    response = client.post(API + "tokens/", {"name": "forever"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "expiresAt"
    assert ApiToken.objects.count() == before


def test_a_signed_in_user_may_still_make_a_token_that_never_expires(org, client):
    client.force_login(org.users[Role.EDITOR])
    response = client.post(API + "tokens/", {"name": "ci"}, content_type="application/json")
    assert response.status_code == 201
    assert response.json()["expiresAt"] is None


def test_new_secrets_are_never_cached(org):
    editor = org.client(Role.EDITOR)
    later = (timezone.now() + timedelta(days=1)).isoformat()
    token = editor.post(API + "tokens/", {"name": "ci", "expiresAt": later}, format="json")
    assert token.status_code == 201
    assert "no-store" in token["Cache-Control"]
    assert _consumer(editor, "alice").status_code == 202
    key = editor.post(API + "consumers/alice/credentials/", {"type": "api-key"}, format="json")
    assert key.status_code == 201
    assert "no-store" in key["Cache-Control"]


def test_the_console_page_showing_a_new_token_is_never_cached(org, client):
    client.force_login(org.users[Role.VIEWER])
    page = client.get("/t/acme/tokens/")
    nonce = page.content.decode().split('name="nonce" value="')[1].split('"')[0]
    created = client.post("/t/acme/tokens/", {"name": "laptop", "nonce": nonce})
    assert created.status_code == 200
    assert "gty_" in created.content.decode()
    assert "no-store" in created["Cache-Control"]


def test_the_console_does_not_make_tokens_for_a_suspended_tenant(org, client):
    org.tenant.suspended = True
    org.tenant.save()
    client.force_login(org.users[Role.OWNER])
    page = client.get("/t/acme/tokens/")
    nonce = page.content.decode().split('name="nonce" value="')[1].split('"')[0]
    before = ApiToken.objects.count()
    answer = client.post("/t/acme/tokens/", {"name": "laptop", "nonce": nonce})
    assert "suspended" in answer.content.decode()
    assert ApiToken.objects.count() == before
    api = org.client(Role.OWNER).post(
        API + "tokens/", {"name": "x", "expiresAt": "2099-01-01T00:00:00Z"}, format="json"
    )
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "tenant_suspended"
    assert ApiToken.objects.count() == before


# --- input that used to answer 500 ----------------------------------------------------------


@pytest.mark.parametrize("depth", [100, 100_000])
def test_a_deeply_nested_body_is_a_400_not_a_500(org, depth):
    body = '{"name": "deep", "spec": ' + "[" * depth + "]" * depth + "}"
    response = org.client(Role.EDITOR).post(
        API + "gateways/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert "nested more than 64 levels" in error["message"]


def test_a_body_over_the_limit_is_a_413_naming_the_limit(org, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    spec = {"description": "x" * 20_000}
    response = org.client(Role.EDITOR).post(
        API + "consumers/", {"name": "big", "spec": spec}, format="json"
    )
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["code"], error["limit"]) == ("payload_too_large", 10_000)
    assert "10000 bytes" in error["message"]
    assert "requestId" in error
    assert not Consumer.objects.filter(name="big").exists()


def test_a_session_request_over_the_limit_is_a_413_too(org, client, settings):
    # The console's session works for the API too: the same limit, the same answer.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    client.force_login(org.users[Role.EDITOR])
    body = json.dumps({"name": "big", "spec": {"description": "x" * 20_000}})
    response = client.post(API + "consumers/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["limit"] == 10_000


@pytest.mark.parametrize("version", ["²", "٣", "1_0", "true", " 1"])
def test_a_resource_version_must_be_ascii_digits(org, version):
    editor = org.client(Role.EDITOR)
    assert _consumer(editor, "alice").status_code == 202
    response = editor.patch(
        API + "consumers/alice/", {"spec": {"description": "x"}}, format="json",
        HTTP_IF_MATCH=f'"{version}"',
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "If-Match"
    assert Consumer.objects.get(name="alice").spec == {}


# --- route filters and route sizes ----------------------------------------------------------


@pytest.fixture
def gateway(org):
    editor = org.client(Role.EDITOR)
    body = {"name": "edge", "spec": GATEWAY_SPEC}
    assert editor.post(API + "gateways/", body, format="json").status_code == 202
    return editor


def _route_with_filter(kind: str, action: str, name: str) -> dict:
    field = kind[0].lower() + kind[1:]
    item = name if action == "remove" else {"name": name, "value": "1"}
    return {"rules": [{"filters": [{"type": kind, field: {action: [item]}}]}]}


@pytest.mark.parametrize(
    "name",
    ["content-length", "Transfer-Encoding", "connection", "keep-alive", "upgrade", "te",
     "trailer", "proxy-connection", "host", "x-gantry-consumer", "X-Gantry-Anything"],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["RequestHeaderModifier", "ResponseHeaderModifier"])
@pytest.mark.parametrize("action", ["set", "add", "remove"])
def test_a_header_filter_cannot_touch_framing_or_platform_headers(gateway, kind, action, name):
    spec = _route_with_filter(kind, action, name)
    response = gateway.post(API + "gateways/edge/routes/", {"name": "web", "spec": spec},
                            format="json")  # fmt: skip
    assert response.status_code == 400, response.content
    field = kind[0].lower() + kind[1:]
    suffix = "" if action == "remove" else ".name"
    path = f"spec.rules[0].filters[0].{field}.{action}[0]{suffix}"
    assert [f["path"] for f in response.json()["error"]["fields"]] == [path]
    assert not Route.objects.exists()


def test_a_header_filter_may_still_set_ordinary_headers(gateway):
    spec = _route_with_filter("RequestHeaderModifier", "set", "x-request-source")
    response = gateway.post(API + "gateways/edge/routes/", {"name": "web", "spec": spec},
                            format="json")  # fmt: skip
    assert response.status_code == 202


def _big_route(matches_per_rule: int, value_size: int) -> dict:
    headers = [{"name": f"x-h{i}", "value": "v" * value_size} for i in range(16)]
    match = {"path": {"type": "PathPrefix", "value": "/"}, "headers": headers}
    return {"rules": [{"matches": [match] * matches_per_rule} for _ in range(2)]}


def test_a_route_spec_over_64_kib_is_refused_naming_the_limit(gateway):
    spec = _big_route(matches_per_rule=8, value_size=4096)  # ~1 MB within Gateway API's counts
    response = gateway.post(API + "gateways/edge/routes/", {"name": "huge", "spec": spec},
                            format="json")  # fmt: skip
    assert response.status_code == 400
    field = response.json()["error"]["fields"][0]
    assert field["path"] == "spec"
    assert "65536" in field["message"]
    assert not Route.objects.exists()
    patched = _big_route(matches_per_rule=1, value_size=100)
    created = gateway.post(API + "gateways/edge/routes/", {"name": "web", "spec": patched},
                           format="json")  # fmt: skip
    assert created.status_code == 202
    grown = gateway.patch(API + "gateways/edge/routes/web/", {"spec": spec}, format="json")
    assert grown.status_code == 400
    assert (
        Route.objects.get(name="web").spec["rules"][0]["matches"][0]["headers"][0]["value"]
        == "v" * 100
    )


# --- free text shown to other people --------------------------------------------------------

DECEPTIVE = ["invoice\u202egpj.exe", "ad\u2066min\u2069", "a\u200bb", "x\u0000", "line\u2028two",
             "bell\u0007", "\ufeffbom"]  # fmt: skip


@pytest.mark.parametrize("text", DECEPTIVE)
def test_display_names_refuse_bidi_overrides_and_invisible_characters(org, text):
    admin = org.client(Role.ADMIN)
    response = admin.patch(API, {"displayName": text}, format="json")
    assert response.status_code == 400
    field = response.json()["error"]["fields"][0]
    assert field["path"] == "displayName"
    assert "U+" in field["message"]
    org.tenant.refresh_from_db()
    assert org.tenant.display_name == "acme"


@pytest.mark.parametrize("text", DECEPTIVE[:3])
def test_token_names_and_consumer_descriptions_refuse_them_too(org, text):
    editor = org.client(Role.EDITOR)
    body = {"name": text, "expiresAt": "2099-01-01T00:00:00Z"}
    token = editor.post(API + "tokens/", body, format="json")
    assert token.status_code == 400
    assert token.json()["error"]["fields"][0]["path"] == "name"
    consumer = editor.post(
        API + "consumers/", {"name": "alice", "spec": {"description": text}}, format="json"
    )
    assert consumer.status_code == 400
    assert consumer.json()["error"]["fields"][0]["path"] == "spec.description"
    assert not Consumer.objects.exists()


def test_the_console_refuses_them_in_token_names(org, client):
    client.force_login(org.users[Role.VIEWER])
    page = client.get("/t/acme/tokens/")
    nonce = page.content.decode().split('name="nonce" value="')[1].split('"')[0]
    before = ApiToken.objects.count()
    answer = client.post("/t/acme/tokens/", {"name": "ci\u202eyek", "nonce": nonce})
    assert "U+202E" in answer.content.decode()
    assert ApiToken.objects.count() == before


@pytest.mark.parametrize("text", ["Zürich Ops", "شرکت\u200cما", "👩\u200d💻 team", "東京"])
def test_ordinary_text_in_any_script_is_still_accepted(org, text):
    response = org.client(Role.ADMIN).patch(API, {"displayName": text}, format="json")
    assert response.status_code == 200
    assert response.json()["displayName"] == text


# --- who a tenant admin may add -------------------------------------------------------------


def test_an_admin_cannot_add_or_probe_users_they_share_no_tenant_with(org, other_org):
    make_user("stranger")  # exists, in no tenant of acme's admin
    admin = org.client(Role.ADMIN)
    answers = []
    for username in ("stranger", "globex-owner", "no-such-user"):
        response = admin.post(API + "members/", {"user": username, "role": "viewer"}, format="json")
        assert response.status_code == 400
        error = response.json()["error"]
        del error["requestId"]
        answers.append(json.dumps(error).replace(username, "NAME"))
    assert answers[0] == answers[1] == answers[2]  # nothing tells who exists
    assert json.loads(answers[0])["fields"][0]["path"] == "user"
    assert not org.tenant.memberships.filter(user__username="stranger").exists()


def test_an_admin_may_add_someone_they_already_share_a_tenant_with(org):
    from tests.api.people import colleague

    colleague(org, "bob")
    response = org.client(Role.ADMIN).post(
        API + "members/", {"user": "bob", "role": "viewer"}, format="json"
    )
    assert response.status_code == 201


def test_an_operator_may_add_anyone(org, staff_client):
    make_user("stranger")
    response = staff_client.post(
        API + "members/", {"user": "stranger", "role": "viewer"}, format="json"
    )
    assert response.status_code == 201


def test_a_console_form_over_the_limit_is_a_413_too(client, db, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client.post("/login/", {"username": "x" * 5000, "password": "y"})
    assert response.status_code == 413
    assert "1024 bytes" in response.content.decode()
