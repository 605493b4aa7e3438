"""SecurityPolicy oidc through the API: Envoy Gateway's defaults, the client secret write-only
(never returned, audited or in a revision, encrypted at rest, kept when left out), the cookies'
HMAC key generated once and kept, bad input named by its JSON path (nothing written), another
tenant's policy 404, and a provider whose discovery fails making the policy Invalid (never a
500 from the API, never a config Envoy refuses)."""

import json

import pytest
from django.db import connection

from gateways.models import Gateway, Policy
from provisioning.desired import load_desired_state
from provisioning.reconcile import reconcile
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.api.test_policies import BASE, GATEWAY, LISTENERS, URL, ancestors
from tests.provisioning.harness import free_port

SECRET = "s3cret-client-secret-value"
ISSUER = "https://idp.example.com/realms/acme"
ENDPOINTS = {"issuer": ISSUER, "authorizationEndpoint": f"{ISSUER}/auth",
             "tokenEndpoint": f"{ISSUER}/token"}  # fmt: skip
OIDC = {"provider": ENDPOINTS, "clientID": "gantry-app", "clientSecret": SECRET}


@pytest.fixture
def editor(org):
    client = org.client(Role.EDITOR)
    gateway = {"name": "edge", "spec": {"listeners": LISTENERS}}
    assert client.post(BASE + "gateways/", gateway, format="json").status_code == 202
    backend = {"name": "app", "spec": {"endpoints": [{"ip": {"address": "10.0.0.5", "port": 80}}]}}
    assert client.post(BASE + "backends/", backend, format="json").status_code == 202
    route = {"name": "web", "spec": {"rules": [{"backendRefs": [{"name": "app"}]}]}}
    assert client.post(BASE + "gateways/edge/routes/", route, format="json").status_code == 202
    return client


def create(client, name="sso", **oidc):
    body = {"name": name, "kind": "SecurityPolicy",
            "spec": {"targetRefs": [GATEWAY], "oidc": {**OIDC, **oidc}}}  # fmt: skip
    return client.post(URL, body, format="json")


def stored(name="sso") -> dict:
    return json.loads(Policy.objects.get(name=name).secrets)


def test_an_oidc_policy_gets_envoy_gateways_defaults_and_hides_its_secret(editor):
    response = create(editor, scopes=["email", "openid"])
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["spec"]["oidc"] == {
        "provider": ENDPOINTS, "clientID": "gantry-app", "scopes": ["email", "openid"],
        "redirectURL": "%REQ(x-forwarded-proto)%://%REQ(:authority)%/oauth2/callback",
        "logoutPath": "/logout", "forwardAccessToken": False,
    }  # fmt: skip
    assert ancestors(body) == [("edge", "Accepted")]
    assert create(editor, "plain", scopes=["email"]).json()["spec"]["oidc"]["scopes"] == [
        "openid", "email"]  # fmt: skip
    shown = [response.content, editor.get(URL + "sso/").content, editor.get(URL).content]
    assert all(SECRET.encode() not in text for text in shown)
    assert "clientSecret" not in Policy.objects.get(name="sso").spec["oidc"]
    with connection.cursor() as cursor:  # encrypted at rest: a Fernet token
        cursor.execute("SELECT secrets FROM gateways_policy WHERE name = 'sso'")
        raw = cursor.fetchone()[0]
    assert raw.startswith("gAAAA") and SECRET not in raw
    assert stored()["oidcClientSecret"] == SECRET
    assert len(stored()["oidcHmacSecret"]) >= 43  # 256 random bits, base64
    audited = json.dumps(list(AuditEvent.objects.values("before", "after")))
    assert SECRET not in audited


def test_the_client_secret_is_required_once_then_kept_and_the_hmac_key_stays(editor):
    without = {key: value for key, value in OIDC.items() if key != "clientSecret"}
    body = {"name": "sso", "kind": "SecurityPolicy",
            "spec": {"targetRefs": [GATEWAY], "oidc": without}}  # fmt: skip
    response = editor.post(URL, body, format="json")
    assert response.status_code == 400
    assert [f["path"] for f in response.json()["error"]["fields"]] == ["spec.oidc.clientSecret"]
    assert not Policy.objects.exists()

    create(editor)
    hmac_key = stored()["oidcHmacSecret"]
    patched = editor.patch(URL + "sso/", {"spec": {"oidc": {"scopes": ["email"]}}}, format="json")
    assert patched.status_code == 202, patched.content
    assert stored() == {"oidcClientSecret": SECRET, "oidcHmacSecret": hmac_key}
    put = {"spec": {"targetRefs": [GATEWAY], "oidc": without}}
    assert editor.put(URL + "sso/", put, format="json").status_code == 202
    assert stored() == {"oidcClientSecret": SECRET, "oidcHmacSecret": hmac_key}
    rotated = {"spec": {"oidc": {"clientSecret": "another-secret"}}}
    response = editor.patch(URL + "sso/", rotated, format="json")
    assert response.status_code == 202 and b"another-secret" not in response.content
    assert stored() == {"oidcClientSecret": "another-secret", "oidcHmacSecret": hmac_key}
    assert response.json()["generation"] == 4  # a new secret is a change
    cors = {"spec": {"targetRefs": [GATEWAY], "cors": {"allowOrigins": ["*"]}}}
    assert editor.put(URL + "sso/", cors, format="json").status_code == 202
    assert Policy.objects.get(name="sso").secrets is None  # oidc gone: its secrets too


BAD = [
    ({"clientID": ""}, "spec.oidc.clientID", "blank"),
    ({"clientSecret": ""}, "spec.oidc.clientSecret", "blank"),
    ({"provider": {"issuer": "ftp://idp.example.com"}}, "spec.oidc.provider.issuer", "scheme"),
    ({"provider": {"issuer": "https://idp.example.com/?x=1"}}, "spec.oidc.provider.issuer",
     "query"),
    ({"provider": {"issuer": "http://169.254.169.254/"}}, "spec.oidc.provider.issuer",
     "link-local"),
    ({"provider": {**ENDPOINTS, "tokenEndpoint": "http://169.254.169.254/token"}},
     "spec.oidc.provider.tokenEndpoint", "link-local"),
    ({"provider": {**ENDPOINTS, "authorizationEndpoint": "javascript:alert(1)"}},
     "spec.oidc.provider.authorizationEndpoint", "http or https"),
    ({"provider": {**ENDPOINTS, "backendRefs": []}}, "spec.oidc.provider.backendRefs",
     "not supported yet"),
    ({"scopes": ["has space"]}, "spec.oidc.scopes[0]", "scope"),
    ({"scopes": ["email", "email"]}, "spec.oidc.scopes[1]", "duplicates"),
    ({"redirectURL": "https://app.example.com"}, "spec.oidc.redirectURL", "<path>"),
    ({"redirectURL": "%REQ(:authority)%/cb"}, "spec.oidc.redirectURL", "<path>"),
    ({"logoutPath": "logout"}, "spec.oidc.logoutPath", "absolute path"),
    ({"logoutPath": "/logout?x=1"}, "spec.oidc.logoutPath", "absolute path"),
    ({"logoutPath": "/oauth2/callback"}, "spec.oidc.logoutPath", "differ"),
    ({"cookieDomain": "Not A Domain"}, "spec.oidc.cookieDomain", "DNS name"),
    ({"forwardAccessToken": "perhaps"}, "spec.oidc.forwardAccessToken", ""),
    ({"refreshToken": True}, "spec.oidc.refreshToken", "not supported yet"),
    ({"clientIDRef": {"name": "x"}}, "spec.oidc.clientIDRef", "not supported yet"),
    ({"tokenEndpoint": "https://x"}, "spec.oidc.tokenEndpoint", "unknown field"),
]  # fmt: skip


@pytest.mark.parametrize(("oidc", "path", "message"), BAD)
def test_bad_oidc_names_the_field_and_changes_nothing(editor, oidc, path, message):
    response = create(editor, **oidc)
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert [f["path"] for f in fields] == [path]
    assert message in fields[0]["message"]
    assert SECRET.encode() not in response.content
    assert not Policy.objects.exists()


def test_a_bad_write_keeps_the_stored_secret(editor):
    create(editor)
    before = stored()
    bad = {"spec": {"oidc": {"clientSecret": "new-secret", "logoutPath": "nope"}}}
    assert editor.patch(URL + "sso/", bad, format="json").status_code == 400
    assert stored() == before


def test_another_tenants_oidc_policy_is_404(editor, other_org):
    create(editor)
    stranger = other_org.client(Role.OWNER)
    assert stranger.get(URL + "sso/").status_code == 404
    assert stranger.patch(URL + "sso/", {"spec": {"oidc": {"clientSecret": "mine"}}},
                          format="json").status_code == 404  # fmt: skip
    assert stored()["oidcClientSecret"] == SECRET


def test_a_revision_shows_the_filter_and_never_the_secrets(editor):
    create(editor, forwardAccessToken=True)
    hmac_key = stored()["oidcHmacSecret"]
    outcome = reconcile(Gateway.objects.get(name="edge").pk)
    assert outcome.result == "created", outcome.message
    shown = editor.get(BASE + f"gateways/edge/revisions/{outcome.revision.number}/")
    assert shown.status_code == 200
    text = shown.content.decode()
    assert "envoy.filters.http.oauth2/sso" in text and "acme/edge/oidc/sso/hmac" in text
    assert SECRET not in text and hmac_key not in text
    assert "<redacted hmac-sha256:" in text
    listed = editor.get(BASE + "gateways/edge/revisions/").content.decode()
    assert SECRET not in listed and hmac_key not in listed


def test_a_provider_whose_discovery_fails_makes_the_policy_invalid(editor):
    closed = free_port()  # nothing listens there
    issuer = f"http://127.0.0.1:{closed}/o"
    response = create(editor, provider={"issuer": issuer})
    assert response.status_code == 202, response.content
    gateway = Gateway.objects.get(name="edge")
    outcome = reconcile(gateway.pk)
    assert outcome.result == "created", outcome.message  # Envoy accepted the config
    body = editor.get(URL + "sso/").json()
    assert ancestors(body) == [("edge", "Invalid")]
    message = body["status"]["ancestors"][0]["conditions"][0]["message"]
    assert "spec.oidc.provider.issuer: discovery failed" in message
    assert f"{issuer}/.well-known/openid-configuration" in message
    state = load_desired_state(gateway.pk)
    assert "error" in state.oidc_providers[issuer]
