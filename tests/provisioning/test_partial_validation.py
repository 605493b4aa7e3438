"""Validating only what changed: a candidate that differs from the last config Envoy accepted
for its gateway only in virtual hosts is checked by those virtual hosts, with the same
verdicts (and Envoy's messages) as a whole check; anything else is checked whole."""

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioning import envoy
from provisioning.compile import compile_gateway
from provisioning.ir.build import DesiredState
from provisioning.partial_validation import Bases, bases, changed_part

HOSTS = 12


def route(i: int, prefix: str = "/") -> dict:
    return {
        "name": f"r{i}",
        "spec": {
            "hostnames": [f"host-{i}.example.com"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                       "backendRefs": [{"name": "b"}]}],
        },
    }  # fmt: skip


def compiled(routes: list[dict], port: int = 8080, backend_port: int = 9):
    state = DesiredState(
        tenant="acme", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": port}]},
        routes=routes,
        backends={"b": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": backend_port}}]}},
    )  # fmt: skip
    return compile_gateway(state, address="127.0.0.1")


def host(i: int) -> str:
    return f"acme/edge/listener/http/host/host-{i}.example.com"


def vhost_names(resources) -> list[str]:
    return [vhost["name"] for config in resources.routes for vhost in config["virtual_hosts"]]


def with_vhost(resources, name: str, routes: list[dict]):
    """``resources`` with the routes of virtual host ``name`` replaced (what no compile of a
    valid spec gives: an Envoy rejection)."""
    config = resources.routes[0]
    vhosts = [{**v, "routes": routes} if v["name"] == name else v for v in config["virtual_hosts"]]
    return dataclasses.replace(resources, routes=({**config, "virtual_hosts": vhosts},))


BAD_REGEX = [{"match": {"safe_regex": {"regex": "("}}, "direct_response": {"status": 200}}]


@pytest.fixture
def checked(monkeypatch):
    """What each check actually pushed to Envoy, in order."""
    pushed = []
    real = envoy._validate

    def spy(resources, timeout):
        pushed.append(resources)
        return real(resources, timeout)

    monkeypatch.setattr(envoy, "_validate", spy)
    bases.forget()
    yield pushed
    bases.forget()


def test_a_one_route_change_is_checked_as_its_virtual_host_alone():
    routes = [route(i) for i in range(HOSTS)]
    base = compiled(routes)
    candidate = compiled([*routes[:3], route(3, "/v2"), *routes[4:]])
    part = changed_part(base, candidate)
    assert vhost_names(part) == [host(3)]
    (changed,) = [v for v in candidate.routes[0]["virtual_hosts"] if v["name"] == host(3)]
    assert part.routes[0]["virtual_hosts"] == [changed]
    assert part.listeners == candidate.listeners and part.clusters == candidate.clusters


def test_a_changed_route_is_checked_alone_among_its_hosts_routes(checked):
    """On a host of many routes, a one-route change pushes that route alone (with its host's
    own fields): Envoy still refuses a bad one with the whole check's message."""
    many = [{**route(i, f"/p{i}"), "spec": {**route(i, f"/p{i}")["spec"],
                                            "hostnames": ["host-0.example.com"]}}
            for i in range(20)]  # fmt: skip
    base = compiled(many)
    assert envoy.validate(base, key="edge").ok
    changed = [*many[:4], {**many[4], "spec": route(4, "/v2")["spec"] | {
        "hostnames": ["host-0.example.com"]}}, *many[5:]]  # fmt: skip
    candidate = compiled(changed)
    assert envoy.validate(candidate, key="edge").ok
    (pushed,) = checked[-1].routes[0]["virtual_hosts"]
    (whole,) = candidate.routes[0]["virtual_hosts"]
    assert [r["name"] for r in pushed["routes"]] == ["acme/edge/route/r4/rule/0/match/0"]
    assert {k: v for k, v in pushed.items() if k != "routes"} == {
        k: v for k, v in whole.items() if k != "routes"
    }
    bad = with_vhost(candidate, host(0), [*whole["routes"][:-1], *BAD_REGEX])
    verdict = envoy.validate(bad, key="edge")
    assert not verdict.ok and "missing )" in verdict.message
    assert checked[-1].routes[0]["virtual_hosts"][0]["routes"] == BAD_REGEX
    assert verdict.message == envoy.validate(bad).message  # as a whole check says it


def test_a_new_host_is_checked_and_a_removed_one_leaves_nothing_to_check():
    routes = [route(i) for i in range(HOSTS)]
    base = compiled(routes)
    assert vhost_names(changed_part(base, compiled([*routes, route(HOSTS)]))) == [host(HOSTS)]
    assert vhost_names(changed_part(base, compiled(routes[1:]))) == []
    assert vhost_names(changed_part(base, base)) == []


def test_a_changed_listener_or_cluster_is_a_whole_check():
    routes = [route(i) for i in range(HOSTS)]
    base = compiled(routes)
    assert changed_part(base, compiled(routes, port=8081)) is None  # the listener
    assert changed_part(base, compiled(routes, backend_port=10)) is None  # the cluster
    renamed = dataclasses.replace(base, routes=({**base.routes[0], "name": "other"},))
    assert changed_part(base, renamed) is None  # another route configuration


def test_a_domain_twice_in_a_route_configuration_is_a_whole_check():
    base = compiled([route(i) for i in range(HOSTS)])
    config = base.routes[0]
    twin = {**config["virtual_hosts"][1], "name": "twin"}  # host-1's domain again
    candidate = dataclasses.replace(
        base, routes=({**config, "virtual_hosts": [*config["virtual_hosts"], twin]},)
    )
    assert changed_part(base, candidate) is None
    assert not envoy.validate(candidate, key="edge").ok  # and Envoy refuses the whole


def test_a_bad_virtual_host_is_rejected_with_envoys_message_and_never_becomes_the_base(checked):
    base = compiled([route(i) for i in range(HOSTS)])
    assert envoy.validate(base, key="edge").ok
    assert len(vhost_names(checked[-1])) == HOSTS  # the first check of a gateway is whole
    bad = with_vhost(base, host(5), BAD_REGEX)
    verdict = envoy.validate(bad, key="edge")
    assert not verdict.ok and "missing )" in verdict.message
    assert vhost_names(checked[-1]) == [host(5)]  # only what changed was pushed
    # The next candidate is compared with what Envoy accepted, not with the rejected one:
    # host-5 is as accepted again, so only host-7's change is checked.
    good = compiled([*(route(i) for i in range(7)), route(7, "/v2"),
                     *(route(i) for i in range(8, HOSTS))])  # fmt: skip
    assert envoy.validate(good, key="edge").ok
    assert vhost_names(checked[-1]) == [host(7)]
    # Whole checks without a key, and none kept at all with no room for bases.
    assert envoy.validate(good).ok and len(vhost_names(checked[-1])) == HOSTS


def test_without_room_for_bases_every_check_is_whole(checked, settings):
    settings.GANTRY_INCREMENTAL_GATEWAYS = 0
    base = compiled([route(i) for i in range(HOSTS)])
    assert envoy.validate(base, key="edge").ok and envoy.validate(base, key="edge").ok
    assert [len(vhost_names(part)) for part in checked] == [HOSTS, HOSTS]


def test_bases_are_kept_for_the_most_recently_validated_gateways():
    kept = Bases(size=2)
    one, two, three = (compiled([route(i)]) for i in range(3))
    kept.accepted("a", one)
    kept.accepted("b", two)
    assert kept.get("a") is one  # "a" is now the most recently used
    kept.accepted("c", three)
    assert kept.get("b") is None and kept.get("a") is one and kept.get("c") is three


# Each step replaces one host's routes with a good or a bad set; the verdict with a base must
# be the whole check's, every time.
STEPS = st.lists(
    st.tuples(st.integers(0, HOSTS - 1), st.sampled_from(["good", "bad", "prefix"])),
    min_size=1, max_size=6,
)  # fmt: skip


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_partial_and_whole_checks_give_the_same_verdicts(steps):
    bases.forget()
    current = compiled([route(i) for i in range(HOSTS)])
    for index, kind in steps:
        if kind == "prefix":
            current = compiled([route(i, "/v2" if i == index else "/") for i in range(HOSTS)])
        else:
            routes = BAD_REGEX if kind == "bad" else [
                {"match": {"prefix": "/"}, "direct_response": {"status": 204}}
            ]  # fmt: skip
            current = with_vhost(current, host(index), routes)
        partial, whole = envoy.validate(current, key="hyp"), envoy.validate(current)
        assert (partial.ok, bool(partial.message)) == (whole.ok, bool(whole.message))
    bases.forget()
