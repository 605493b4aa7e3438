"""What the API stores compiles to config Envoy accepts and that serves real traffic."""

import pytest
import requests

from gateways import services
from provisioning import desired
from provisioning.compile import compile_gateway
from provisioning.desired import load_desired_state
from provisioning.envoy import validate
from tenants.roles import Role
from tests.delivery.helpers import ACTOR
from tests.provisioning.certs import self_signed
from tests.provisioning.harness import Upstream, running_envoy

BASE = "/api/v1/tenants/acme/"


def test_loads_only_what_the_gateway_uses_and_envoy_accepts_it(org):
    editor = org.client(Role.EDITOR)
    chain, key = self_signed(["shop.example.com"])
    ca_chain, _ = self_signed(["ca.internal"])
    assert (
        editor.post(
            BASE + "certificates/",
            {"name": "shop", "spec": {"certificatePem": chain, "privateKeyPem": key}},
            format="json",
        ).status_code
        == 202
    )
    assert (
        editor.post(
            BASE + "certificates/",
            {"name": "ca", "spec": {"certificatePem": ca_chain}},
            format="json",
        ).status_code
        == 202
    )
    assert (
        editor.post(
            BASE + "gateways/",
            {
                "name": "edge",
                "spec": {
                    "listeners": [
                        {"name": "http", "protocol": "HTTP", "port": 80},
                        {
                            "name": "https",
                            "protocol": "HTTPS",
                            "port": 443,
                            "hostname": "shop.example.com",
                            "tls": {"certificateRefs": [{"name": "shop"}]},
                        },
                    ]
                },
            },
            format="json",
        ).status_code
        == 202
    )
    for name, spec in {
        "app": {"endpoints": [{"ip": {"address": "10.1.1.1", "port": 80}}]},
        "secure": {
            "endpoints": [{"fqdn": {"hostname": "pay.internal", "port": 443}}],
            "tls": {"sni": "pay.internal", "caCertificateRefs": [{"name": "ca"}]},
        },
        "unused": {"endpoints": [{"ip": {"address": "10.9.9.9", "port": 80}}]},
    }.items():
        assert (
            editor.post(BASE + "backends/", {"name": name, "spec": spec}, format="json").status_code
            == 202
        )
    route = {
        "name": "web",
        "spec": {
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/pay"}}],
                    "backendRefs": [{"name": "secure"}],
                },
                {"backendRefs": [{"name": "app"}, {"name": "ghost"}]},
            ]
        },
    }
    assert editor.post(BASE + "gateways/edge/routes/", route, format="json").status_code == 202
    # fmt: skip

    from gateways.models import Gateway

    state = load_desired_state(Gateway.objects.get(name="edge").pk)
    assert sorted(state.backends) == ["app", "secure"]
    assert sorted(state.certificates) == ["ca", "shop"]
    assert state.certificates["shop"]["privateKeyPem"].startswith("-----BEGIN PRIVATE KEY")
    result = validate(compile_gateway(state))
    assert result.ok, result.message


@pytest.mark.slow
def test_a_route_written_through_the_api_serves_traffic(org):
    upstream = Upstream("app")
    editor = org.client(Role.EDITOR)
    editor.post(BASE + "gateways/", {"name": "edge"}, format="json")
    editor.post(BASE + "backends/", {"name": "app", "spec": upstream.backend()}, format="json")
    editor.post(BASE + "gateways/edge/routes/", {"name": "web", "spec": {
        "hostnames": ["shop.test"], "rules": [{"backendRefs": [{"name": "app"}]}]}},
        format="json")  # fmt: skip
    from gateways.models import Gateway

    try:
        with running_envoy(load_desired_state(Gateway.objects.get(name="edge").pk)) as ports:
            url = f"http://127.0.0.1:{ports[80]}/hello"
            answer = requests.get(url, headers={"Host": "shop.test"}, timeout=5)
            assert answer.json() == {**answer.json(), "backend": "app", "path": "/hello"}
            assert requests.get(url, headers={"Host": "other.test"}, timeout=5).status_code == 404
    finally:
        upstream.close()


def test_a_reload_decodes_only_changed_specs_and_always_sees_the_stored_ones(org, monkeypatch):
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})

    def spec(prefix):
        return {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": prefix}}]}]}

    for name, prefix in (("one", "/a"), ("two", "/b"), ("three", "/a"), ("four", "/c")):
        services.create_route(ACTOR, gateway, name, spec(prefix))
    decoded = []
    real = desired._decode
    monkeypatch.setattr(desired, "_decode", lambda text: decoded.append(text) or real(text))
    first = load_desired_state(gateway.pk)
    assert len(decoded) == 3  # four routes, three distinct stored specs: each decoded once
    route = gateway.routes.get(name="two")
    # A write through the services (which reads every route for its Conflicted check) and
    # the next load: only the changed spec is decoded again.
    services.patch_route_spec(ACTOR, route, spec("/d"))
    decoded.clear()
    second = load_desired_state(gateway.pk)
    assert len(decoded) == 1
    paths = [r["spec"]["rules"][0]["matches"][0]["path"]["value"] for r in second.routes]
    assert paths == ["/a", "/d", "/a", "/c"]
    assert first.routes[1]["spec"]["rules"][0]["matches"][0]["path"]["value"] == "/b"
    # Written behind the API's back (an SQL update, as an operator might): still seen.
    type(route).objects.filter(pk=route.pk).update(spec=spec("/e"))
    assert [r["spec"] for r in load_desired_state(gateway.pk).routes][1] == spec("/e")


def test_route_rows_flag_the_routes_whose_status_refuses_a_reference(org):
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    spec = {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]}
    for name in ("plain", "refused", "mentions"):
        services.create_route(ACTOR, gateway, name, spec)
    routes = gateway.routes.all()
    refused = {"type": "ResolvedRefs", "status": "False", "reason": "RefNotPermitted"}
    routes.filter(name="refused").update(status={"conditions": [refused]})
    other = {"type": "Accepted", "status": "True", "message": "not RefNotPermitted"}
    routes.filter(name="mentions").update(status={"conditions": [other]})
    flagged = {row.name: row.ref_not_permitted for row in desired.route_rows(gateway)}
    assert flagged == {"plain": False, "refused": True, "mentions": False}


def test_a_reload_remakes_only_changed_rows_and_equals_a_fresh_processs_load(org):
    """Renamed, re-flagged, deleted and added routes show in the next load as a process that
    never loaded the gateway sees them; unchanged rows come back as the very same objects."""
    from gateways import json_texts

    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    spec = {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]}
    for name in ("a", "b", "c", "d"):
        services.create_route(ACTOR, gateway, name, spec)
    before = {row.name: row for row in desired.route_rows(gateway)}
    routes = gateway.routes.all()
    routes.filter(name="a").update(name="a2")  # behind the services' back, as SQL might
    refused = {"type": "ResolvedRefs", "status": "False", "reason": "RefNotPermitted"}
    routes.filter(name="b").update(status={"conditions": [refused]})
    services.delete_route(ACTOR, routes.get(name="c"))
    services.create_route(ACTOR, gateway, "e", spec)
    after = desired.route_rows(gateway)
    assert after[[row.name for row in after].index("d")] is before["d"]
    loaded = load_desired_state(gateway.pk).routes
    desired.forget()
    json_texts.forget()
    assert after == desired.route_rows(gateway)
    assert loaded == load_desired_state(gateway.pk).routes
    assert [(row.name, row.ref_not_permitted) for row in after] == [
        ("a2", False), ("b", True), ("d", False), ("e", False)
    ]  # fmt: skip


def test_a_reload_after_routes_are_added_or_deleted_reuses_every_row_left_as_it_was(org):
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    spec = {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]}
    for name in ("a", "b", "c"):
        services.create_route(ACTOR, gateway, name, spec)
    first = {row.name: row for row in desired.route_rows(gateway)}
    services.create_route(ACTOR, gateway, "d", spec)  # one more row, at the end
    grown = desired.route_rows(gateway)
    assert [row.name for row in grown] == ["a", "b", "c", "d"]
    assert all(row is first[row.name] for row in grown[:3])
    services.delete_route(ACTOR, gateway.routes.get(name="a"))  # one fewer, every row moves
    shrunk = desired.route_rows(gateway)
    assert [row.name for row in shrunk] == ["b", "c", "d"]
    assert all(row is previous for row, previous in zip(shrunk, grown[1:], strict=True))
    gateway.routes.filter(name="c").update(spec={"rules": []})  # and one changed in place
    changed = desired.route_rows(gateway)
    assert changed[0] is shrunk[0] and changed[2] is shrunk[2]
    assert changed[1].spec == {"rules": []}
    desired.forget()
    assert changed == desired.route_rows(gateway)


def test_the_backends_loaded_follow_routes_changed_in_place(org):
    """A route that moves to another backend (as many routes as before: the load counts the
    backends of the changed routes only) loads the new backend and no longer the old one, as
    a process that never loaded the gateway would."""
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    endpoints = {"endpoints": [{"ip": {"address": "10.0.0.1", "port": 80}}]}
    for name in ("one", "two", "three"):
        services.create_backend(ACTOR, org.tenant, name, endpoints)

    def spec(*backends):
        return {"rules": [{"backendRefs": [{"name": name} for name in backends]}]}

    services.create_route(ACTOR, gateway, "a", spec("one", "two"))
    services.create_route(ACTOR, gateway, "b", spec("two"))
    assert sorted(load_desired_state(gateway.pk).backends) == ["one", "two"]
    services.patch_route_spec(ACTOR, gateway.routes.get(name="a"), spec("three"))
    assert sorted(load_desired_state(gateway.pk).backends) == ["three", "two"]
    gateway.routes.filter(name="b").update(spec=spec("three"))  # behind the services' back
    state = load_desired_state(gateway.pk)
    assert sorted(state.backends) == ["three"]
    desired.forget()
    assert load_desired_state(gateway.pk).backends == state.backends
