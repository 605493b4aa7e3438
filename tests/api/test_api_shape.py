"""The API's common shape: error envelope, request ids, throttling, schema and docs."""

import pytest

from tenants.roles import Role


def test_unknown_api_paths_answer_the_json_envelope(org):
    response = org.client(Role.OWNER).get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_wrong_methods_answer_405_in_the_envelope(org):
    response = org.client(Role.OWNER).post("/api/v1/tenants/acme/audit-events/", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_every_response_carries_a_request_id_and_errors_quote_it(org):
    client = org.client(Role.VIEWER)
    ok = client.get("/api/v1/tenants/acme/")
    assert len(ok["X-Request-ID"]) == 32
    echoed = client.get("/api/v1/tenants/acme/nothing/", HTTP_X_REQUEST_ID="abc-123")
    assert echoed["X-Request-ID"] == "abc-123"
    assert echoed.json()["error"]["requestId"] == "abc-123"
    hostile = client.get("/api/v1/tenants/acme/", HTTP_X_REQUEST_ID="<script>")
    assert hostile["X-Request-ID"] != "<script>"


def test_throttling_answers_429_with_retry_after_per_token(org, settings):
    settings.GANTRY_API_RATE = "3/minute"
    viewer, editor = org.client(Role.VIEWER), org.client(Role.EDITOR)
    statuses = [viewer.get("/api/v1/tenants/acme/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = viewer.get("/api/v1/tenants/acme/")
    assert limited.json()["error"]["code"] == "throttled"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert editor.get("/api/v1/tenants/acme/").status_code == 200  # another token, own budget


@pytest.mark.django_db
def test_the_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/tenants/{tenant}/gateways/{gateway}/" in document["paths"]
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200  # served locally, no CDN needed


def test_me_lists_memberships(org):
    body = org.client(Role.EDITOR).get("/api/v1/me/").json()
    assert body["memberships"] == [{"tenant": "acme", "role": "editor"}]
