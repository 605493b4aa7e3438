"""Incremental compile: after any sequence of changes (routes added, removed, edited, moved
between hosts and listeners; backends, policies and listeners changed), compiling with the
gateway's memo gives exactly what a whole compile gives, and a one-route change rebuilds only
that route and its virtual host."""

import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from provisioning import revisions
from provisioning.compile import compile_gateway
from provisioning.compile_memo import CompileMemo, memos
from provisioning.ir import build
from provisioning.ir.build import DesiredState
from provisioning.revisions import canonical_json

GROUP = "gateway.networking.k8s.io"
HOSTS = ["a.example.com", "b.example.com", "*.example.com", "c.other.org"]
LISTENERS = [
    {"name": "http", "protocol": "HTTP", "port": 8080},
    {"name": "shop", "protocol": "HTTP", "port": 8080, "hostname": "*.example.com"},
    {"name": "admin", "protocol": "HTTP", "port": 9090},
]

matches = st.lists(
    st.fixed_dictionaries({"path": st.fixed_dictionaries({
        "type": st.sampled_from(["Exact", "PathPrefix"]),
        "value": st.sampled_from(["/", "/a", "/a/b", "/b"]),
    })}),
    max_size=2,
)  # fmt: skip
header_filter = st.fixed_dictionaries({
    "type": st.just("ResponseHeaderModifier"),
    "responseHeaderModifier": st.fixed_dictionaries(
        {"set": st.just([{"name": "x-v", "value": "1"}])}),
})  # fmt: skip
rules = st.lists(
    st.fixed_dictionaries(
        {"matches": matches,
         "backendRefs": st.lists(st.fixed_dictionaries(
             {"name": st.sampled_from(["b1", "b2", "missing"])}), max_size=2)},
        optional={"name": st.sampled_from(["main", "paid"]),
                  "filters": st.lists(header_filter, max_size=1)},
    ),
    min_size=1, max_size=2, unique_by=lambda rule: rule.get("name", id(rule)),
)  # fmt: skip
specs = st.fixed_dictionaries(
    {"rules": rules},
    optional={"hostnames": st.lists(st.sampled_from(HOSTS), max_size=2, unique=True),
              "parentRefs": st.just([{"name": "edge", "sectionName": "admin"}])},
)  # fmt: skip
names = st.sampled_from([f"r{i}" for i in range(8)])


def traffic_policy(name: str, target: str, section: str | None = None) -> dict:
    """Targets ``target`` (its rule ``section``) and r0: how the policy resolves depends on
    both routes (a missing target is the policy's problem)."""
    ref = {"group": GROUP, "kind": "HTTPRoute", "name": target}
    if section:
        ref["sectionName"] = section
    refs = [ref, {"group": GROUP, "kind": "HTTPRoute", "name": "r0"}]
    return {"name": name, "kind": "BackendTrafficPolicy",
            "spec": {"targetRefs": refs, "retry": {"numRetries": 2}}}  # fmt: skip


changes = st.one_of(
    st.tuples(st.just("put"), names, specs),  # add, or replace a route's spec
    st.tuples(st.just("grpc"), names, st.just({"rules": [{"backendRefs": [{"name": "b1"}]}]})),
    st.tuples(st.just("delete"), names, st.none()),
    st.tuples(st.just("backend"), st.sampled_from(["b1", "b2"]), st.integers(1, 3)),
    st.tuples(st.just("policy"), names, st.sampled_from([None, "main", "paid"])),
    st.tuples(st.just("unpolicy"), st.none(), st.none()),
    st.tuples(st.just("listeners"), st.integers(1, 3), st.none()),
)


def state_of(routes: dict, backends: dict, policies: list, listeners: int) -> DesiredState:
    return DesiredState(
        tenant="acme", gateway="edge", spec={"listeners": LISTENERS[:listeners]},
        routes=[{"name": name, "spec": spec, "kind": kind}
                for name, (kind, spec) in routes.items()],
        backends=backends, policies=policies,
    )  # fmt: skip


def canonical(resources) -> str:
    return json.dumps(resources.as_dict(), sort_keys=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(changes, min_size=1, max_size=12))
def test_compiling_with_the_memo_gives_what_a_whole_compile_gives(steps):
    memos.forget()
    routes: dict = {}
    backends = {name: {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 9}}]}
                for name in ("b1", "b2")}  # fmt: skip
    policies: list = []
    listeners = 3
    for kind, name, value in steps:
        if kind == "put":
            routes[name] = ("HTTPRoute", value)
        elif kind == "grpc":
            routes[name] = ("GRPCRoute", value)
        elif kind == "delete":
            routes.pop(name, None)
        elif kind == "backend":
            backends = {**backends, name: {"endpoints": [
                {"ip": {"address": "127.0.0.1", "port": 9 + value}}]}}  # fmt: skip
        elif kind == "policy":
            policies = [traffic_policy("retry", name, value)]
        elif kind == "unpolicy":
            policies = []
        else:
            listeners = name
        state = state_of(routes, backends, policies, listeners)
        incremental = compile_gateway(state, address="127.0.0.1", key="edge")
        whole = compile_gateway(state, address="127.0.0.1")
        assert canonical(incremental) == canonical(whole)
        # What is stored, written from the memo's pieces, is the whole compile's: the same
        # parts, size and hash.
        memo = memos.get("edge")
        memo.keep_texts(incremental)
        made = revisions.compiled(incremental.as_dict(), memo.text)
        assert made == revisions.compiled(whole.as_dict())
        assert made.size == len(canonical_json(whole.as_dict()).encode())
    memos.forget()


def test_a_one_route_change_rebuilds_that_route_and_its_virtual_host_only(monkeypatch):
    memos.forget()
    routes = {f"r{i}": ("HTTPRoute", {"hostnames": [f"h{i % 10}.example.com"],
                                      "rules": [{"backendRefs": [{"name": "b1"}]}]})
              for i in range(100)}  # fmt: skip
    backends = {"b1": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 9}}]}}
    first = compile_gateway(state_of(routes, backends, [], 1), key="edge")
    built, hosts = [], []
    real_routes, real_host = build._http_routes, build._virtual_host
    monkeypatch.setattr(build, "_http_routes", lambda s, r, *a: built.append(r["name"])
                        or real_routes(s, r, *a))  # fmt: skip
    monkeypatch.setattr(build, "_virtual_host", lambda name, *a: hosts.append(name)
                        or real_host(name, *a))  # fmt: skip
    routes["r42"] = ("HTTPRoute", {"hostnames": ["h2.example.com"],
                                   "rules": [{"matches": [{"path": {"value": "/v2"}}],
                                              "backendRefs": [{"name": "b1"}]}]})  # fmt: skip
    second = compile_gateway(state_of(routes, backends, [], 1), key="edge")
    assert built == ["r42"]
    assert hosts == ["acme/edge/listener/http/host/h2.example.com"]
    assert canonical(second) != canonical(first)
    assert canonical(second) == canonical(compile_gateway(state_of(routes, backends, [], 1)))
    # Another backend port changes the context: everything is built again.
    built.clear()
    backends = {"b1": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 10}}]}}
    compile_gateway(state_of(routes, backends, [], 1), key="edge")
    assert len(built) == 100
    memos.forget()


def test_a_failed_compile_leaves_the_memo_as_it_was():
    memo = CompileMemo()
    memo.begin("context")
    place = lambda route: (("*",), False)  # noqa: E731
    assert memo.routes("http", [{"name": "r"}], place, lambda route, index: ["built"]) == [
        (("*",), False, ("built",)),
    ]  # fmt: skip
    memo.finish()
    memo.begin("context")  # this compile fails before finishing: nothing of it is kept
    memo.routes("http", [{"name": "r", "spec": 1}], place, lambda route, index: ["other"])
    memo.begin("context")
    again = memo.routes("http", [{"name": "r"}], place, lambda route, index: ["again"])
    assert again[0][2] == ("built",)


def test_one_memo_never_gives_one_tenants_config_to_another():
    """Should two gateways ever share a memo key (a worker reusing keys, a bug), the context
    (tenant and gateway names included) differs: nothing of the first is reused."""
    memos.forget()
    spec = {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                       "backendRefs": [{"name": "b1"}]}]}  # fmt: skip
    backends = {"b1": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 9}}]}}
    mine = replace(state_of({"r0": ("HTTPRoute", spec)}, backends, [], 1), tenant="acme")
    theirs = replace(mine, tenant="globex", gateway="web")
    compile_gateway(mine, key="shared")
    built = compile_gateway(theirs, key="shared")
    assert canonical(built) == canonical(compile_gateway(theirs))
    assert "acme" not in canonical(built)
    memos.forget()
