"""Policies and credentials written through the API: loaded into the desired state, compiled,
serving real traffic with the key the API showed once; secrets never in a revision's text."""

import json

import requests

from provisioning import revisions
from provisioning.compile import compile_gateway
from provisioning.desired import load_desired_state
from provisioning.envoy import validate
from provisioning.revisions import desired_snapshot, redacted
from tenants.roles import Role
from tests.provisioning.harness import Upstream, running_envoy

BASE = "/api/v1/tenants/acme/"
GW = BASE + "gateways/edge/"


def setup_gateway(editor, upstream: Upstream) -> dict:
    listeners = [{"name": "http", "protocol": "HTTP", "port": 80}]
    editor.post(BASE + "gateways/", {"name": "edge", "spec": {"listeners": listeners}},
                format="json")  # fmt: skip
    editor.post(BASE + "backends/", {"name": "app", "spec": upstream.backend()}, format="json")
    editor.post(GW + "routes/", {"name": "web", "spec": {"rules": [{"backendRefs": [
        {"name": "app"}]}]}}, format="json")  # fmt: skip
    for name in ("alice", "bob"):
        editor.post(BASE + "consumers/", {"name": name, "spec": {}}, format="json")
    key = editor.post(BASE + "consumers/alice/credentials/", {"type": "api-key"},
                      format="json").json()  # fmt: skip
    editor.post(BASE + "consumers/bob/credentials/",
                {"type": "basic-auth", "password": "bob-password"}, format="json")  # fmt: skip
    policy = {"name": "auth", "kind": "SecurityPolicy", "spec": {
        "targetRefs": [{"kind": "Gateway", "name": "edge"}],
        "apiKeyAuth": {"credentialRefs": [{"name": "alice"}],
                       "extractFrom": [{"headers": ["x-api-key"]}]}}}  # fmt: skip
    assert editor.post(GW + "policies/", policy, format="json").status_code == 202
    return key


def test_a_key_shown_once_by_the_api_opens_the_gateway(org):
    editor = org.client(Role.EDITOR)
    upstream = Upstream("app")
    try:
        key = setup_gateway(editor, upstream)
        state = load_desired_state(org.tenant.gateways.get(name="edge").pk)
        assert set(state.consumers) == {"alice"}  # only the consumers the policies name
        assert validate(compile_gateway(state)).ok
        with running_envoy(state) as ports:
            url = f"http://127.0.0.1:{ports[80]}/"
            ok = requests.get(url, headers={"x-api-key": key["key"]}, timeout=10)
            assert ok.status_code == 200
            assert ok.json()["headers"]["x-gantry-consumer"] == "alice"
            assert requests.get(url, timeout=10).status_code == 401
        editor.delete(BASE + f"consumers/alice/credentials/{key['id']}/")  # revoked at once
        with running_envoy(load_desired_state(state_gateway_id(org))) as ports:
            url = f"http://127.0.0.1:{ports[80]}/"
            assert (
                requests.get(url, headers={"x-api-key": key["key"]}, timeout=10).status_code == 401
            )
    finally:
        upstream.close()


def state_gateway_id(org) -> int:
    return org.tenant.gateways.get(name="edge").pk


def test_secrets_never_reach_a_revisions_text_or_a_printout(org):
    editor = org.client(Role.EDITOR)
    upstream = Upstream("app")
    try:
        key = setup_gateway(editor, upstream)["key"]
        admin = {"hostnames": ["admin.test"], "rules": [{"backendRefs": [{"name": "app"}]}]}
        editor.post(GW + "routes/", {"name": "admin", "spec": admin}, format="json")
        basic = {"name": "basic", "kind": "SecurityPolicy", "spec": {
            "targetRefs": [{"kind": "HTTPRoute", "name": "admin"}],
            "basicAuth": {"users": [{"name": "bob"}]}}}  # fmt: skip
        assert editor.post(GW + "policies/", basic, format="json").status_code == 202
    finally:
        upstream.close()
    state = load_desired_state(state_gateway_id(org))
    password_hash = state.consumers["bob"]["basicAuth"][0]["hash"]
    resources = compile_gateway(state).as_dict()
    assert key in json.dumps(resources) and password_hash in json.dumps(resources)  # for Envoy
    shown = json.dumps(redacted(resources)) + json.dumps(desired_snapshot(state)) + repr(state)
    assert key not in shown and key.split("_", 2)[2] not in shown
    assert password_hash not in shown and "bob-password" not in shown
    assert "<redacted hmac-sha256:" in json.dumps(redacted(resources))


def test_a_reconciled_revision_is_valid_and_its_yaml_shows_no_secret(org):
    from provisioning.reconcile import reconcile

    editor = org.client(Role.EDITOR)
    upstream = Upstream("app")
    try:
        key = setup_gateway(editor, upstream)["key"]
    finally:
        upstream.close()
    outcome = reconcile(state_gateway_id(org))
    assert outcome.result == "created", outcome.message
    shown = editor.get(GW + f"revisions/{outcome.revision.number}/")
    assert shown.status_code == 200
    text = shown.content.decode()
    assert "api_key_auth" in text and "alice" in text
    assert key not in text and key.split("_", 2)[2] not in text


def test_the_rate_limit_services_token_is_sent_to_envoy_and_never_shown(org):
    from provisioning.ratelimit.tokens import token_for
    from provisioning.reconcile import reconcile

    editor = org.client(Role.EDITOR)
    upstream = Upstream("app")
    try:
        setup_gateway(editor, upstream)
    finally:
        upstream.close()
    limits = {"name": "limits", "kind": "BackendTrafficPolicy", "spec": {
        "targetRefs": [{"kind": "Gateway", "name": "edge"}],
        "rateLimit": {"type": "Global", "failClosed": True, "global": {"rules": [
            {"limit": {"requests": 5, "unit": "Second"}}]}}}}  # fmt: skip
    assert editor.post(GW + "policies/", limits, format="json").status_code == 202
    outcome = reconcile(state_gateway_id(org))
    assert outcome.result == "created", outcome.revision.message
    token = token_for("acme/edge")
    assert token in revisions.text_of(outcome.revision)  # what Envoy gets
    text = editor.get(GW + f"revisions/{outcome.revision.number}/").content.decode()
    assert "platform/ratelimit" in text and "failure_mode_deny: true" in text
    assert token not in text
