"""No configuration Envoy rejects can come from any input the API accepts.

Hypothesis writes HTTPRoute specs (mostly plausible, sometimes strange); those the API's
validation accepts are compiled with a gateway and backends and loaded into real Envoy.
"""

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import ValidationFailed
from gateways.validation import validate_gateway_spec, validate_route_spec
from provisioning.compile import compile_gateway
from provisioning.envoy import validate
from provisioning.ir.build import DesiredState

pytestmark = pytest.mark.slow

WEIRD = "\u00e9\u4e2d\u200b%#?&=;,\"'\\ \t\x7f"
PATH_CHARS = string.ascii_letters + string.digits + "/-._~%!$&'()*+,;=:@" + WEIRD
TOKEN = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z").map(str.lower)
TEXT = st.text(string.printable + WEIRD, max_size=20)
BACKENDS = ["app", "api", "missing"]
REGEXES = st.sampled_from(["/v[0-9]+", "^/a.*", "(foo|bar)", "[", "a{2,3}", ".*\\.png$", "(?i)x"])


def paths():
    literal = st.text(PATH_CHARS, max_size=20).map(lambda s: "/" + s)
    return st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["Exact", "PathPrefix"]), "value": literal}),
        st.fixed_dictionaries({"type": st.just("RegularExpression"), "value": REGEXES}),
    )


def string_matches():
    return st.fixed_dictionaries(
        {"name": TOKEN, "value": TEXT},
        optional={"type": st.sampled_from(["Exact", "RegularExpression"])},
    )


def matches():
    return st.fixed_dictionaries(
        {},
        optional={
            "path": paths(),
            "headers": st.lists(string_matches(), max_size=2),
            "queryParams": st.lists(string_matches(), max_size=2),
            "method": st.sampled_from(["GET", "POST", "PATCH", "CONNECT", "TRACE"]),
        },
    )


def header_modifier():
    pair = st.fixed_dictionaries({"name": st.one_of(TOKEN, st.just("host")), "value": TEXT})
    return st.fixed_dictionaries(
        {},
        optional={
            "set": st.lists(pair, max_size=2),
            "add": st.lists(pair, max_size=2),
            "remove": st.lists(st.one_of(TOKEN, st.just("host")), max_size=2),
        },
    )


def path_modifier():
    value = st.text(PATH_CHARS, max_size=12).map(lambda s: "/" + s)
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("ReplaceFullPath"), "replaceFullPath": value}),
        st.fixed_dictionaries({"type": st.just("ReplacePrefixMatch"), "replacePrefixMatch": value}),
    )


def filters():
    hostname = st.sampled_from(["example.org", "a.b.example", "x"])
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("RequestHeaderModifier"),
                               "requestHeaderModifier": header_modifier()}),
        st.fixed_dictionaries({"type": st.just("ResponseHeaderModifier"),
                               "responseHeaderModifier": header_modifier()}),
        st.fixed_dictionaries({"type": st.just("URLRewrite"), "urlRewrite": st.fixed_dictionaries(
            {}, optional={"hostname": hostname, "path": path_modifier()})}),
        st.fixed_dictionaries({"type": st.just("RequestRedirect"),
                               "requestRedirect": st.fixed_dictionaries({}, optional={
                                   "scheme": st.sampled_from(["http", "https"]),
                                   "hostname": hostname, "port": st.integers(1, 65535),
                                   "statusCode": st.sampled_from([301, 302, 303, 307, 308]),
                                   "path": path_modifier()})}),
        st.fixed_dictionaries({"type": st.just("RequestMirror"), "requestMirror":
                               st.fixed_dictionaries({"backendRef": st.fixed_dictionaries(
                                   {"name": st.sampled_from(BACKENDS)})},
                                   optional={"percent": st.integers(0, 100)})}),
    )  # fmt: skip


def rules():
    ref = st.fixed_dictionaries(
        {"name": st.sampled_from(BACKENDS)}, optional={"weight": st.integers(0, 1000)}
    )
    duration = st.sampled_from(["1s", "500ms", "1h", "2m30s", "0s"])
    return st.fixed_dictionaries(
        {},
        optional={
            "matches": st.lists(matches(), max_size=3),
            "filters": st.lists(filters(), max_size=3),
            "backendRefs": st.lists(ref, max_size=3),
            "timeouts": st.fixed_dictionaries(
                {}, optional={"request": duration, "backendRequest": duration}
            ),
        },
    )


def routes():
    hostnames = st.lists(st.sampled_from(["a.example.com", "*.example.com", "other.test"]),
                         max_size=2, unique=True)  # fmt: skip
    return st.fixed_dictionaries(
        {"rules": st.lists(rules(), min_size=1, max_size=3)},
        optional={
            "hostnames": hostnames,
            "parentRefs": st.just([{"sectionName": "http"}]),
        },
    )


GATEWAY = validate_gateway_spec(
    {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80},
                   {"name": "wild", "protocol": "HTTP", "port": 80, "hostname": "*.example.com"}]}
)  # fmt: skip
BACKEND_SPECS = {
    "app": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 8080}}]},
    "api": {"endpoints": [{"fqdn": {"hostname": "api.internal", "port": 80}}],
            "appProtocol": "h2c"},
}  # fmt: skip


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
@given(st.lists(routes(), min_size=1, max_size=4))
def test_every_accepted_route_compiles_to_config_envoy_loads(raw_routes):
    accepted = []
    for index, raw in enumerate(raw_routes):
        try:
            spec = validate_route_spec(raw, listeners=["http", "wild"])
        except ValidationFailed:
            continue
        accepted.append({"name": f"r{index}", "spec": spec})
    if not accepted:
        return
    state = DesiredState("acme", "edge", GATEWAY, accepted, BACKEND_SPECS)
    result = validate(compile_gateway(state))
    assert result.ok, (result.message, accepted)
