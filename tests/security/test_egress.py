"""A hostile tenant points its gateway at the platform or a cloud's metadata service (SSRF).

At the API: every such address is refused with a 400 naming the field and saying why, and
nothing changes. At translation: a row stored before the policy (or under a laxer one) never
reaches Envoy; the routes using it answer 500 through a real Envoy, and say why.
"""

import json

import pytest
import requests
from django.conf import settings
from django.test import override_settings

from gateways.models import Backend, Policy
from provisioning import revisions
from provisioning.compile import compile_gateway
from provisioning.desired import load_desired_state
from provisioning.reconcile import reconcile
from tenants.roles import Role
from tests.provisioning.harness import Upstream, running_envoy

BASE = "/api/v1/tenants/acme/"
BACKENDS = BASE + "backends/"
GW = BASE + "gateways/edge/"


@pytest.fixture
def editor(org):
    return org.client(Role.EDITOR)


def ip(address: str, port: int = 80) -> dict:
    return {"endpoints": [{"ip": {"address": address, "port": port}}]}


def fqdn(hostname: str, port: int = 80) -> dict:
    return {"endpoints": [{"fqdn": {"hostname": hostname, "port": port}}]}


def local_runtime_port() -> int:
    return int(settings.GANTRY_LOCAL_PORT_RANGE.split("-")[0]) + 7


def refused(response, path: str, *words: str) -> str:
    assert response.status_code == 400, response.content
    errors = {e["path"]: e["message"] for e in response.json()["error"]["fields"]}
    assert path in errors, errors
    for word in words:
        assert word in errors[path], errors[path]
    return errors[path]


IP_TARGETS = [
    ("169.254.169.254", 80, "link-local"),  # AWS, GCP, Azure, OCI metadata
    ("100.100.100.200", 80, "metadata"),  # Alibaba Cloud metadata
    ("fd00:ec2::254", 80, "metadata"),  # AWS metadata over IPv6
    ("fe80::1", 80, "link-local"),
    ("::ffff:169.254.169.254", 80, "link-local"),  # IPv4-mapped
    ("64:ff9b::a9fe:a9fe", 80, "link-local"),  # NAT64
    ("2002:a9fe:a9fe::1", 80, "link-local"),  # 6to4
    ("0.0.0.0", 80, "unspecified"),
    ("224.0.0.1", 80, "multicast"),
]


@pytest.mark.parametrize(("address", "port", "why"), IP_TARGETS)
def test_metadata_and_link_local_backends_are_refused(editor, address, port, why):
    response = editor.post(BACKENDS, {"name": "x", "spec": ip(address, port)}, format="json")
    refused(response, "spec.endpoints[0].ip.address", why)
    assert not Backend.objects.exists()


def platform_ports() -> list[tuple[str, int, str]]:
    database = settings.DATABASES["default"]
    return [
        ("127.0.0.1", settings.GANTRY_PORT, "web"),
        ("::1", settings.GANTRY_PORT, "web"),
        ("::ffff:127.0.0.1", settings.GANTRY_PORT, "web"),
        ("127.0.0.1", settings.GANTRY_XDS_PORT, "xDS"),
        ("127.0.0.1", settings.GANTRY_RATELIMIT_PORT, "rate limit"),
        ("127.0.0.1", int(database.get("PORT") or 5432), "PostgreSQL"),
        ("127.0.0.1", 6379, "Redis"),
        ("127.0.0.1", local_runtime_port(), "gateway listeners"),
        ("127.3.4.5", settings.GANTRY_PORT, "web"),
    ]


def test_the_platforms_own_ports_on_loopback_are_refused(editor):
    for address, port, what in platform_ports():
        response = editor.post(BACKENDS, {"name": "x", "spec": ip(address, port)}, format="json")
        refused(response, "spec.endpoints[0].ip.address", what, "platform")
    assert not Backend.objects.exists()


@pytest.mark.parametrize(
    "hostname",
    ["localhost", "api.localhost", "metadata", "metadata.google.internal",
     "metadata.tencentyun.com", "127.1", "0x7f.1", "2130706433", "0177.0.0.1", "10.0.0.1",
     "LOCALHOST", "localhost.", "ｌｏｃａｌｈｏｓｔ", "1.2.3.4.5"],
)  # fmt: skip
def test_loopback_and_metadata_names_and_numeric_spellings_are_refused(editor, hostname):
    response = editor.post(BACKENDS, {"name": "x", "spec": fqdn(hostname)}, format="json")
    refused(response, "spec.endpoints[0].fqdn.hostname")
    assert not Backend.objects.exists()


@override_settings(GANTRY_EGRESS_PLATFORM_PORTS=["22", "5555-5600"])
def test_the_operators_own_ports_of_this_host_are_refused_on_loopback(editor):
    for port, refused_port in ((22, True), (5570, True), (5601, False)):
        response = editor.post(BACKENDS, {"name": f"p{port}", "spec": ip("127.0.0.1", port)},
                               format="json")  # fmt: skip
        if refused_port:
            refused(response, "spec.endpoints[0].ip.address", "GANTRY_EGRESS_PLATFORM_PORTS")
        else:
            assert response.status_code == 202, response.content


def test_the_readme_tours_loopback_backend_is_accepted(editor):
    """``python3 -m http.server 9000`` on this machine (make run's local runtime)."""
    for name, address in (("app", "127.0.0.1"), ("app6", "::1")):
        response = editor.post(BACKENDS, {"name": name, "spec": ip(address, 9000)}, format="json")
        assert response.status_code == 202, response.content


def test_put_and_patch_to_a_refused_address_change_nothing(editor):
    response = editor.post(BACKENDS, {"name": "app", "spec": ip("10.0.0.1")}, format="json")
    assert response.status_code == 202, response.content
    before = Backend.objects.get(name="app")
    url = BACKENDS + "app/"
    response = editor.put(url, {"spec": ip("169.254.169.254")}, format="json")
    refused(response, "spec.endpoints[0].ip.address", "169.254.169.254 is link-local")
    patch = {"spec": ip("127.0.0.1", settings.GANTRY_XDS_PORT)}
    response = editor.patch(url, patch, format="json")
    refused(response, "spec.endpoints[0].ip.address", "xDS")
    after = Backend.objects.get(name="app")
    assert (after.spec, after.resource_version) == (before.spec, before.resource_version)


def test_the_second_endpoint_is_the_one_named(editor):
    spec = {"endpoints": [{"ip": {"address": "10.0.0.1", "port": 80}},
                          {"ip": {"address": "169.254.169.254", "port": 80}}]}  # fmt: skip
    response = editor.post(BACKENDS, {"name": "x", "spec": spec}, format="json")
    message = refused(response, "spec.endpoints[1].ip.address")
    assert message == "169.254.169.254 is link-local, which gateways may not reach"


def jwt_policy(uri: str) -> dict:
    return {"name": "jwt", "kind": "SecurityPolicy", "spec": {
        "targetRefs": [{"kind": "Gateway", "name": "edge"}],
        "jwt": {"providers": [{"name": "idp", "remoteJWKS": {"uri": uri}}]}}}  # fmt: skip


def make_gateway(editor) -> None:
    listeners = [{"name": "http", "protocol": "HTTP", "port": 80}]
    response = editor.post(BASE + "gateways/", {"name": "edge", "spec": {"listeners": listeners}},
                           format="json")  # fmt: skip
    assert response.status_code == 202, response.content


JWKS_TARGETS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://localhost:9000/keys",
    "https://LOCALHOST./keys",
    "http://127.0.0.1:8000/admin/login/",
    "http://[::ffff:127.0.0.1]:8000/api/v1/",
    "http://[::1]:18000/",
    "http://127.1:9000/keys",
    "http://0x7f.1:9000/keys",
    "http://2130706433:9000/keys",
    "http://good@127.0.0.1:9000/keys",
    "http://good.example@169.254.169.254/",
    "http://[fe80::1%25eth0]/",
]


@pytest.mark.parametrize("uri", JWKS_TARGETS)
def test_remote_jwks_uris_to_the_platform_or_metadata_are_refused(editor, uri):
    make_gateway(editor)
    response = editor.post(GW + "policies/", jwt_policy(uri), format="json")
    refused(response, "spec.jwt.providers[0].remoteJWKS.uri")
    assert not Policy.objects.exists()


def test_a_remote_jwks_on_the_tours_loopback_server_is_accepted(editor):
    make_gateway(editor)
    response = editor.post(GW + "policies/", jwt_policy("http://127.0.0.1:9000/k"), format="json")
    assert response.status_code == 202, response.content


@override_settings(
    GANTRY_EGRESS_DENIED_CIDRS=["10.0.0.0/8", "2001:db8::/32"],
    GANTRY_EGRESS_ALLOWED_CIDRS=["10.1.2.0/24", "169.254.0.0/16"],
    GANTRY_EGRESS_PLATFORM_CIDRS=["192.168.50.0/24"],
    GANTRY_EGRESS_DENIED_HOSTS=["*.corp.example", "vault.example"],
    GANTRY_EGRESS_ALLOW_LOOPBACK=False,
)
def test_the_operators_denials_and_exceptions_are_honoured(editor):
    cases = [
        (ip("127.0.0.1", 9000), "ip.address", "loopback"),
        (ip("10.9.9.9"), "ip.address", "10.0.0.0/8"),
        (ip("2001:db8::7"), "ip.address", "2001:db8::/32"),
        (ip("::ffff:10.9.9.9"), "ip.address", "10.0.0.0/8"),
        (ip("192.168.50.4"), "ip.address", "platform address"),
        (ip("169.254.169.254"), "ip.address", "link-local"),  # the safe default still wins
        (fqdn("db.corp.example"), "fqdn.hostname", "*.corp.example"),
        (fqdn("vault.example"), "fqdn.hostname", "vault.example"),
    ]
    for spec, field, why in cases:
        response = editor.post(BACKENDS, {"name": "x", "spec": spec}, format="json")
        refused(response, f"spec.endpoints[0].{field}", why)
    for name, spec in (("a", ip("10.1.2.3")), ("b", fqdn("corp.example")), ("c", ip("8.8.8.8"))):
        response = editor.post(BACKENDS, {"name": name, "spec": spec}, format="json")
        assert response.status_code == 202, response.content
    make_gateway(editor)
    response = editor.post(GW + "policies/", jwt_policy("https://sso.corp.example/k"),
                           format="json")  # fmt: skip
    refused(response, "spec.jwt.providers[0].remoteJWKS.uri", "*.corp.example")


# Translation: rows stored before the policy, or under a laxer one.


def store_unchecked(name: str, spec: dict) -> None:
    """What an older Gantry (or a laxer policy) let a tenant store."""
    Backend.objects.filter(name=name).update(spec=spec)


def route(editor, name: str, backend: str, path: str) -> None:
    spec = {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                       "backendRefs": [{"name": backend}]}]}  # fmt: skip
    response = editor.post(GW + "routes/", {"name": name, "spec": spec}, format="json")
    assert response.status_code == 202, response.content


def test_a_stored_backend_at_a_refused_address_never_reaches_envoy(org, editor):
    good, web = Upstream("good"), Upstream("platform web")
    try:
        make_gateway(editor)
        for name, upstream in (("good", good), ("meta", web), ("admin", web)):
            response = editor.post(BACKENDS, {"name": name, "spec": upstream.backend()},
                                   format="json")  # fmt: skip
            assert response.status_code == 202, response.content
        store_unchecked("meta", ip("169.254.169.254"))
        route(editor, "good", "good", "/good")
        route(editor, "meta", "meta", "/meta")
        route(editor, "admin", "admin", "/admin")
        # The platform's web moves to the port the "admin" backend was stored with.
        with override_settings(GANTRY_PORT=web.port):
            state = load_desired_state(org.tenant.gateways.get(name="edge").pk)
        text = json.dumps(compile_gateway(state).as_dict())
        assert "169.254.169.254" not in text and f'"port_value": {web.port}' not in text
        with running_envoy(state) as ports:
            base = f"http://127.0.0.1:{ports[80]}"
            assert requests.get(base + "/good", timeout=10).status_code == 200
            assert requests.get(base + "/meta", timeout=10).status_code == 500
            assert requests.get(base + "/admin", timeout=10).status_code == 500
        assert web.requests == []
    finally:
        good.close()
        web.close()


def guard(editor, name: str, route_name: str, spec: dict) -> None:
    target = [{"kind": "HTTPRoute", "name": route_name}]
    policy = {"name": name, "kind": "SecurityPolicy", "spec": {"targetRefs": target, **spec}}
    response = editor.post(GW + "policies/", policy, format="json")
    assert response.status_code == 202, response.content


def test_stored_ext_auth_and_jwks_at_refused_addresses_fail_closed(org, editor):
    """An authorization service and a key set stored before the policy: the routes they guard
    answer 500 (never open), and neither address is in the configuration."""
    app, auth = Upstream("app"), Upstream("auth")
    try:
        make_gateway(editor)
        for name, upstream in (("app", app), ("auth", auth)):
            response = editor.post(BACKENDS, {"name": name, "spec": upstream.backend()},
                                   format="json")  # fmt: skip
            assert response.status_code == 202, response.content
        route(editor, "open", "app", "/open")
        route(editor, "ext", "app", "/ext")
        route(editor, "jwt", "app", "/jwt")
        guard(editor, "ext", "ext", {"extAuth": {"http": {"backendRefs": [{"name": "auth"}]}}})
        guard(editor, "jwt", "jwt", jwt_policy(f"http://127.0.0.1:{auth.port}/k")["spec"] | {
            "targetRefs": [{"kind": "HTTPRoute", "name": "jwt"}]})  # fmt: skip
        store_unchecked("auth", ip("169.254.169.254"))
        stored = Policy.objects.get(name="jwt")
        stored.spec["jwt"]["providers"][0]["remoteJWKS"]["uri"] = "http://[::ffff:a9fe:a9fe]/k"
        stored.save(update_fields=["spec"])
        state = load_desired_state(org.tenant.gateways.get(name="edge").pk)
        text = json.dumps(compile_gateway(state).as_dict())
        assert "169.254.169.254" not in text and "a9fe" not in text
        with running_envoy(state) as ports:
            base = f"http://127.0.0.1:{ports[80]}"
            assert requests.get(base + "/open", timeout=10).status_code == 200
            assert requests.get(base + "/ext", timeout=10).status_code == 500
            token = {"Authorization": "Bearer e30.e30.e30"}
            assert requests.get(base + "/jwt", headers=token, timeout=10).status_code == 500
        assert [r["path"] for r in app.requests] == ["/open"] and auth.requests == []
    finally:
        app.close()
        auth.close()


def condition(editor, url: str, kind: str) -> dict:
    return {c["type"]: c for c in editor.get(url).json()["status"]["conditions"]}[kind]


def test_a_reconcile_says_on_the_route_and_policy_why_an_address_is_refused(org, editor):
    make_gateway(editor)
    response = editor.post(BACKENDS, {"name": "meta", "spec": ip("10.0.0.1")}, format="json")
    assert response.status_code == 202, response.content
    route(editor, "meta", "meta", "/")
    route(editor, "keys", "meta", "/keys")
    guard(editor, "jwt", "keys", jwt_policy("https://idp.example/k")["spec"])
    store_unchecked("meta", ip("169.254.169.254"))
    stored = Policy.objects.get(name="jwt")
    stored.spec["jwt"]["providers"][0]["remoteJWKS"]["uri"] = "http://metadata/k"
    stored.save(update_fields=["spec"])
    gateway = org.tenant.gateways.get(name="edge")
    assert reconcile(gateway.pk).result == "created"
    resolved = condition(editor, GW + "routes/meta/", "ResolvedRefs")
    assert (resolved["status"], resolved["reason"]) == ("False", "RefNotPermitted")
    assert "169.254.169.254 is link-local" in resolved["message"]
    accepted = condition(editor, GW + "policies/jwt/", "Accepted")
    assert (accepted["status"], accepted["reason"]) == ("False", "Invalid")
    assert "metadata is a cloud metadata name" in accepted["message"]
    assert "169.254.169.254" not in revisions.text_of(gateway.revisions.get())
    store_unchecked("meta", ip("10.0.0.2"))  # fixed (as an older row would be, by PUT)
    stored.spec["jwt"]["providers"][0]["remoteJWKS"]["uri"] = "https://idp.example/k"
    stored.save(update_fields=["spec"])
    reconcile(gateway.pk)
    assert condition(editor, GW + "routes/meta/", "ResolvedRefs")["status"] == "True"
    assert condition(editor, GW + "policies/jwt/", "Accepted")["status"] == "True"


def test_a_route_written_to_a_refused_stored_backend_says_so_at_once(org, editor):
    """Before any reconcile: the route's status already says what translation will do."""
    make_gateway(editor)
    response = editor.post(BACKENDS, {"name": "meta", "spec": ip("10.0.0.1")}, format="json")
    assert response.status_code == 202, response.content
    store_unchecked("meta", ip("169.254.169.254"))
    route(editor, "meta", "meta", "/")
    resolved = condition(editor, GW + "routes/meta/", "ResolvedRefs")
    assert (resolved["status"], resolved["reason"]) == ("False", "RefNotPermitted")
    assert "169.254.169.254 is link-local" in resolved["message"]
    response = editor.patch(
        GW + "routes/meta/", {"spec": {"hostnames": ["a.example.com"]}}, format="json"
    )
    assert response.status_code == 202, response.content
    resolved = condition(editor, GW + "routes/meta/", "ResolvedRefs")
    assert (resolved["status"], resolved["reason"]) == ("False", "RefNotPermitted")


@pytest.mark.parametrize(
    ("name", "value"),
    [("GANTRY_EGRESS_DENIED_CIDRS", "10.0.0.0/33"), ("GANTRY_EGRESS_ALLOWED_CIDRS", "ten"),
     ("GANTRY_EGRESS_PLATFORM_CIDRS", "10.0.0.0/8,::1/200"),
     ("GANTRY_EGRESS_DENIED_HOSTS", "bad_host!"), ("GANTRY_EGRESS_PLATFORM_PORTS", "70000"),
     ("GANTRY_EGRESS_ALLOW_LOOPBACK", "maybe")],
)  # fmt: skip
def test_a_malformed_egress_setting_stops_start_up_naming_it(name, value):
    from tests.test_settings_and_commands import django_check

    result = django_check({name: value})
    assert result.returncode != 0 and name in result.stderr, result.stderr


@override_settings(
    GANTRY_EGRESS_PLATFORM_CIDRS=["10.244.0.0/16"],
    GANTRY_EGRESS_DENIED_HOSTS=["vault.corp.example"],
)
def test_revisions_never_show_tenants_the_operators_egress_policy(org, editor):
    make_gateway(editor)
    response = editor.post(BACKENDS, {"name": "app", "spec": ip("10.1.0.1")}, format="json")
    assert response.status_code == 202, response.content
    route(editor, "web", "app", "/")
    assert reconcile(org.tenant.gateways.get(name="edge").pk).result == "created"
    viewer = org.client(Role.VIEWER)
    revisions = viewer.get(GW + "revisions/").json()["results"]
    detail = viewer.get(GW + f"revisions/{revisions[0]['number']}/").json()
    text = json.dumps(detail)
    assert "desiredState" in detail and "10.1.0.1" in text
    assert "10.244.0.0" not in text and "vault.corp.example" not in text and "egress" not in text


def test_a_rollback_never_brings_back_an_address_the_policy_now_refuses(org, editor):
    """Revision 1 sent to 10.0.0.1; the operator then refuses 10.0.0.0/8. A rollback to
    revision 1 restores its routing under today's policy: the address is not in the compiled
    config (the route fails closed), while the stored revision 1 still holds it."""
    from gateways.egress import current_policy
    from provisioning.ir.egress import refused_in_resources

    make_gateway(editor)
    response = editor.post(BACKENDS, {"name": "app", "spec": ip("10.0.0.1")}, format="json")
    assert response.status_code == 202, response.content
    route(editor, "web", "app", "/")
    gateway = org.tenant.gateways.get(name="edge")
    assert reconcile(gateway.pk).result == "created"
    editor.delete(GW + "routes/web/")
    assert reconcile(gateway.pk).result == "created"
    first = revisions.resources_of(gateway.revisions.get(number=1))
    with override_settings(GANTRY_EGRESS_DENIED_CIDRS=["10.0.0.0/8"]):
        assert len(refused_in_resources(first, current_policy())) == 1
        response = editor.post(GW + "revisions/1/rollback/")
        assert response.status_code == 202, response.content
        restored = gateway.revisions.get(current=True)
        assert restored.restored_from == 1
        resources = revisions.resources_of(restored)
        assert refused_in_resources(resources, current_policy()) == []
    assert "10.0.0.1" not in revisions.text_of(restored)
    served = json.dumps([resources["routes"], resources["listeners"]])
    assert '"direct_response": {"status": 500' in served  # the route fails closed
