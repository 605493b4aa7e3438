"""SecurityPolicy extAuth through the API: Envoy Gateway's defaults, bad input named by its
JSON path (nothing written), a missing authorization backend in the status (Invalid until it
exists), and the backend in the gateway's desired state even when no route uses it."""

import pytest

from gateways.models import Gateway, Policy
from provisioning.desired import load_desired_state
from provisioning.ir.build import gateway_ir
from tenants.roles import Role
from tests.api.test_policies import BASE, GATEWAY, LISTENERS, URL, ancestors, create

AUTH = {"endpoints": [{"ip": {"address": "10.0.0.5", "port": 9000}}]}
HTTP = {"backendRefs": [{"name": "auth"}]}


@pytest.fixture
def editor(org):
    client = org.client(Role.EDITOR)
    gateway = {"name": "edge", "spec": {"listeners": LISTENERS}}
    assert client.post(BASE + "gateways/", gateway, format="json").status_code == 202
    return client


def add_backend(client, name="auth", spec=AUTH):
    response = client.post(BASE + "backends/", {"name": name, "spec": spec}, format="json")
    assert response.status_code == 202, response.content


def test_an_ext_auth_policy_gets_envoy_gateways_defaults(editor):
    add_backend(editor)
    ext_auth = {"http": {**HTTP, "path": "/check", "headersToBackend": ["X-User"]},
                "headersToExtAuth": ["Cookie"]}  # fmt: skip
    response = create(editor, "gate", extAuth=ext_auth)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["spec"]["extAuth"] == {
        "http": {"backendRefs": [{"kind": "Backend", "name": "auth"}], "path": "/check",
                 "headersToBackend": ["X-User"]},
        "headersToExtAuth": ["Cookie"], "failOpen": False,
    }  # fmt: skip
    assert ancestors(body) == [("edge", "Accepted")]


def test_a_missing_backend_makes_the_policy_invalid_until_it_exists(editor):
    body = create(editor, "gate", extAuth={"http": HTTP}).json()
    assert ancestors(body) == [("edge", "Invalid")]
    message = body["status"]["ancestors"][0]["conditions"][0]["message"]
    assert "spec.extAuth.http.backendRefs[0]: backend 'auth' does not exist" in message
    assert "500" in message
    add_backend(editor)
    assert ancestors(editor.get(URL + "gate/").json()) == [("edge", "Accepted")]
    assert editor.delete(BASE + "backends/auth/").status_code in (202, 204)
    assert ancestors(editor.get(URL + "gate/").json()) == [("edge", "Invalid")]


def test_the_desired_state_holds_the_service_even_if_no_route_uses_it(editor):
    add_backend(editor)
    add_backend(editor, "unused", {"endpoints": [{"ip": {"address": "10.0.0.6", "port": 80}}]})
    create(editor, "gate", extAuth={"http": HTTP, "timeout": "3s"})
    state = load_desired_state(Gateway.objects.get(name="edge").pk)
    assert set(state.backends) == {"auth"}
    ir = gateway_ir(state)
    assert [cluster.name for cluster in ir.clusters] == ["acme/backend/auth"]


BAD = [
    ({"http": HTTP, "grpc": {"backendRefs": [{"name": "auth"}]}}, "spec.extAuth.grpc",
     "only one of http and grpc"),
    ({"grpc": {"backendRefs": []}}, "spec.extAuth.grpc.backendRefs", ""),
    ({"grpc": {"backendRefs": [{"name": "auth"}], "backendSettings": {}}},
     "spec.extAuth.grpc.backendSettings", "not supported yet"),
    ({"http": HTTP, "bodyToExtAuth": {"maxRequestBytes": 10}}, "spec.extAuth.bodyToExtAuth",
     "not supported yet"),
    ({"http": HTTP, "recomputeRoute": True}, "spec.extAuth.recomputeRoute", "not supported yet"),
    ({}, "spec.extAuth.http", "required"),
    ({"http": {"backendRefs": []}}, "spec.extAuth.http.backendRefs", ""),
    ({"http": {"backendRefs": [{"name": "a"}, {"name": "b"}]}}, "spec.extAuth.http.backendRefs",
     ""),
    ({"http": {"backendRefs": [{"name": "Auth_Service"}]}},
     "spec.extAuth.http.backendRefs[0].name", ""),
    ({"http": {"backendRefs": [{"kind": "Service", "name": "auth"}]}},
     "spec.extAuth.http.backendRefs[0].kind", ""),
    ({"http": {"backendRefs": [{"name": "auth", "port": 0}]}},
     "spec.extAuth.http.backendRefs[0].port", ""),
    ({"http": {"backendRef": {"name": "auth"}}}, "spec.extAuth.http.backendRef",
     "not supported yet"),
    ({"http": {**HTTP, "path": "check"}}, "spec.extAuth.http.path", "absolute path"),
    ({"http": {**HTTP, "path": "/check?x=1"}}, "spec.extAuth.http.path", "absolute path"),
    ({"http": {**HTTP, "path": "/check/"}}, "spec.extAuth.http.path", "must not end with '/'"),
    ({"http": {**HTTP, "headersToBackend": ["bad header"]}},
     "spec.extAuth.http.headersToBackend[0]", "header name"),
    ({"http": {**HTTP, "headersToBackend": ["X-Gantry-Consumer"]}},
     "spec.extAuth.http.headersToBackend[0]", "reserved"),
    ({"http": HTTP, "headersToExtAuth": ["cookie", "Cookie"]}, "spec.extAuth.headersToExtAuth[1]",
     "duplicates"),
    ({"http": HTTP, "timeout": "0s"}, "spec.extAuth.timeout", "at least"),
    ({"http": HTTP, "timeout": "soon"}, "spec.extAuth.timeout", "duration"),
    ({"http": HTTP, "failOpen": "perhaps"}, "spec.extAuth.failOpen", ""),
    ({"http": {**HTTP, "headersToUpstream": ["x-user"]}}, "spec.extAuth.http.headersToUpstream",
     "unknown field"),
]  # fmt: skip


@pytest.mark.parametrize(("ext_auth", "path", "message"), BAD)
def test_bad_ext_auth_names_the_field_and_changes_nothing(editor, ext_auth, path, message):
    body = {"name": "bad", "kind": "SecurityPolicy",
            "spec": {"targetRefs": [GATEWAY], "extAuth": ext_auth}}  # fmt: skip
    response = editor.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert [f["path"] for f in fields] == [path]
    assert message in fields[0]["message"]
    assert not Policy.objects.exists()
