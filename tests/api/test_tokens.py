"""API tokens: generated server-side, shown once, stored hashed, prefix visible, expiry,
last-used time, revocation."""

import hashlib
from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import ApiToken
from tenants.roles import Role

URL = "/api/v1/tenants/acme/tokens/"
# A token can only make tokens that expire (no later than itself; these fixtures never expire).
LATER = "2099-01-01T00:00:00Z"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_new_token_is_shown_once_and_stored_only_as_a_hash(org):
    response = org.client(Role.VIEWER).post(
        URL, {"name": "laptop", "expiresAt": LATER}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    plaintext = body["token"]
    assert plaintext.startswith(body["prefix"] + "_")
    stored = ApiToken.objects.get(prefix=body["prefix"])
    assert stored.digest == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in str(ApiToken.objects.filter(pk=stored.pk).values().first())
    listed = org.client(Role.VIEWER).get(URL + body["prefix"] + "/").json()
    assert "token" not in listed
    assert listed["user"] == org.users[Role.VIEWER].username
    assert bearer(plaintext).get("/api/v1/tenants/acme/").status_code == 200


def test_last_used_is_recorded(org):
    token = ApiToken.objects.get(user=org.users[Role.EDITOR])
    assert token.last_used_at is None
    org.client(Role.EDITOR).get("/api/v1/tenants/acme/")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_token_works_only_for_its_tenant(org, other_org):
    user = org.users[Role.OWNER]
    from tenants import services
    from tenants.audit import Actor

    services.add_member(Actor.system("tests"), Role.OWNER, other_org.tenant, user.username, "owner")
    client = org.client(Role.OWNER)
    assert client.get("/api/v1/tenants/globex/").status_code == 404
    assert [t["slug"] for t in client.get("/api/v1/tenants/").json()["results"]] == ["acme"]


def test_viewers_see_only_their_own_tokens_admins_see_all(org):
    viewer_list = org.client(Role.VIEWER).get(URL).json()
    assert {t["user"] for t in viewer_list["results"]} == {org.users[Role.VIEWER].username}
    admin_list = org.client(Role.ADMIN).get(URL).json()
    assert admin_list["count"] == 4


def test_revocation_takes_effect_at_once(org):
    created = (
        org.client(Role.EDITOR).post(URL, {"name": "ci", "expiresAt": LATER}, format="json").json()
    )
    client = bearer(created["token"])
    assert client.get("/api/v1/tenants/acme/").status_code == 200
    assert org.client(Role.ADMIN).delete(URL + created["prefix"] + "/").status_code == 204
    response = client.get("/api/v1/tenants/acme/")
    assert response.status_code == 401
    listed = org.client(Role.ADMIN).get(URL, {"active": "false"}).json()["results"]
    assert [t["prefix"] for t in listed] == [created["prefix"]]


def test_an_expiry_must_be_in_the_future_and_is_honoured(org):
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    response = org.client(Role.EDITOR).post(URL, {"name": "x", "expiresAt": past}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "expiresAt"
    soon = (timezone.now() + timedelta(hours=1)).isoformat()
    created = (
        org.client(Role.EDITOR).post(URL, {"name": "x", "expiresAt": soon}, format="json").json()
    )
    ApiToken.objects.filter(prefix=created["prefix"]).update(expires_at=timezone.now())
    assert bearer(created["token"]).get("/api/v1/tenants/acme/").status_code == 401


def test_malformed_and_unknown_tokens_are_401(org):
    for value in ["gty_nothing", "gty_abcdefgh_wrongsecret", "not-a-token", ""]:
        response = bearer(value).get("/api/v1/tenants/acme/")
        assert response.status_code == 401, value
    real = org.tokens[Role.OWNER]
    tampered = real[:-1] + ("A" if real[-1] != "A" else "B")
    assert bearer(tampered).get("/api/v1/tenants/acme/").status_code == 401


def test_removing_a_member_revokes_their_tokens(org):
    assert org.client(Role.EDITOR).get("/api/v1/tenants/acme/").status_code == 200
    username = org.users[Role.EDITOR].username
    assert (
        org.client(Role.ADMIN).delete(f"/api/v1/tenants/acme/members/{username}/").status_code
        == 204
    )
    assert org.client(Role.EDITOR).get("/api/v1/tenants/acme/").status_code == 401
