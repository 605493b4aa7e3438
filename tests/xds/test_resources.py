"""Compiled resources become protobuf messages the way Envoy will read them."""

import copy
import dataclasses

import pytest
from google.protobuf import json_format

from provisioning.compile import compile_gateway
from provisioning.ir.build import DesiredState
from provisioning.translate.types import CLUSTER, LISTENER, ROUTE_CONFIGURATION, VIRTUAL_HOST
from provisioning.xds.resources import (
    ResourceError,
    content_version,
    encode,
    message_class,
    to_message,
)
from tests.provisioning.test_golden import CASES, load_state


@pytest.mark.parametrize("case", CASES)
def test_every_golden_case_encodes_without_losing_a_field(case):
    resources = compile_gateway(load_state(case, real_certificates=True))
    encoded = encode(resources, vhds=False)
    for resource in [*resources.clusters, *resources.listeners, *resources.routes]:
        any_message = encoded[resource["@type"]][resource["name"]].body
        assert any_message.type_url == resource["@type"]
        decoded = message_class(resource["@type"])()
        any_message.Unpack(decoded)
        # Back to JSON: everything the translator wrote is there (nested Anys included).
        round_trip = json_format.MessageToDict(
            decoded, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        original = {k: v for k, v in resource.items() if k != "@type"}
        assert _contains(_normalized(round_trip), _normalized(original))


@pytest.mark.parametrize("case", CASES)
def test_over_delta_each_virtual_host_is_a_resource_and_together_they_are_the_routes(case):
    """VHDS: a route configuration without its virtual hosts, which come one resource each,
    named ``<route configuration>/<domain>``; put back together they are the whole
    configuration (only the virtual hosts' names differ)."""
    resources = compile_gateway(load_state(case, real_certificates=True))
    split = encode(resources)
    for route in resources.routes:
        stub = _decoded(split[ROUTE_CONFIGURATION][route["name"]])
        assert not stub.pop("virtual_hosts") and "ads" in stub["vhds"]["config_source"]
        vhosts = {name: _decoded(item) for name, item in split[VIRTUAL_HOST].items()
                  if name.startswith(route["name"] + "/")}  # fmt: skip
        expected = {f"{route['name']}/{v['domains'][0]}": v for v in route["virtual_hosts"]}
        assert vhosts.keys() == expected.keys()
        for name, vhost in expected.items():
            assert vhosts[name]["name"] == name
            original = {k: v for k, v in vhost.items() if k != "name"}
            assert _contains(_normalized(vhosts[name]), _normalized(original))
        stub.pop("vhds")
        whole = {k: v for k, v in route.items() if k not in ("@type", "virtual_hosts")}
        assert _contains(_normalized(stub), _normalized(whole))


def _decoded(item) -> dict:
    decoded = message_class(item.body.type_url)()
    item.body.Unpack(decoded)
    return json_format.MessageToDict(
        decoded, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _contains(big, small) -> bool:
    """Every key of ``small`` is in ``big`` with a value it contains (defaults may be added)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _contains(big[k], v)
                                             for k, v in small.items())  # fmt: skip
    if isinstance(small, list):
        return isinstance(big, list) and len(big) == len(small) and all(
            _contains(b, s) for b, s in zip(big, small, strict=True))  # fmt: skip
    return big == small


def _normalized(value):
    """JSON-equal modulo protobuf's canonical forms (durations, 64-bit ints as strings)."""
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    if isinstance(value, str) and value.endswith("s"):
        try:
            return float(value[:-1])
        except ValueError:
            return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def test_it_registers_every_type_the_translators_use():
    for case in CASES:
        resources = compile_gateway(load_state(case, real_certificates=True))
        types = {r["@type"] for r in [*resources.listeners, *resources.clusters]}
        assert types <= {CLUSTER, LISTENER}
    assert encode(compile_gateway(load_state("https-sni", real_certificates=True)))[LISTENER]


def test_an_unknown_field_is_an_error_not_silently_dropped():
    resources = compile_gateway(load_state("http-basic", real_certificates=False))
    cluster = {**resources.clusters[0], "conect_timeout": "1s"}
    with pytest.raises(ResourceError, match="conect_timeout"):
        to_message(cluster)


def test_an_unknown_type_is_an_error():
    with pytest.raises(ResourceError, match="unknown resource type"):
        to_message({"@type": "type.googleapis.com/envoy.Nothing", "name": "x"})


def test_a_type_the_server_does_not_serve_is_an_error():
    resources = compile_gateway(load_state("http-basic", real_certificates=False))
    odd = {"@type": "type.googleapis.com/google.protobuf.Empty"}
    with pytest.raises(ResourceError, match="not a type the xDS server serves"):
        encode(dataclasses.replace(resources, clusters=(*resources.clusters, odd)))


def test_versions_are_content_hashes():
    resources = compile_gateway(load_state("filters-and-weights", real_certificates=False))
    same = compile_gateway(load_state("filters-and-weights", real_certificates=False))
    assert content_version(resources) == content_version(same)
    assert encode(resources)[ROUTE_CONFIGURATION] == encode(same)[ROUTE_CONFIGURATION]

    route = copy.deepcopy(resources.routes[0])
    route["virtual_hosts"][0]["domains"].append("another.test")
    changed = dataclasses.replace(resources, routes=(route,))
    assert content_version(changed) != content_version(resources)
    before, after = encode(resources, vhds=False), encode(changed, vhds=False)
    assert before[CLUSTER] == after[CLUSTER]  # untouched resources keep their version
    name = route["name"]
    assert before[ROUTE_CONFIGURATION][name].version != after[ROUTE_CONFIGURATION][name].version
    # Over Delta only the changed virtual host has a new version.
    before, after = encode(resources), encode(changed)
    assert before[ROUTE_CONFIGURATION] == after[ROUTE_CONFIGURATION]
    changed_hosts = {n for n, item in after[VIRTUAL_HOST].items()
                     if before[VIRTUAL_HOST][n].version != item.version}  # fmt: skip
    assert changed_hosts == {f"{name}/{route['virtual_hosts'][0]['domains'][0]}"}


def test_a_new_encoding_reuses_what_is_equal_to_the_last_one_and_encodes_the_rest():
    def state(prefix):
        routes = [{"name": f"r{i}", "spec": {
            "hostnames": [f"h{i}.example.com"],
            "rules": [{"matches": [{"path": {"value": prefix if i == 3 else "/"}}],
                       "backendRefs": [{"name": "b"}]}]}} for i in range(6)]  # fmt: skip
        return DesiredState(
            tenant="acme", gateway="edge", routes=routes,
            spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
            backends={"b": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 9}}]}},
        )  # fmt: skip

    before = encode(compile_gateway(state("/")))
    after = encode(compile_gateway(state("/v2")), previous=before)
    fresh = encode(compile_gateway(state("/v2")))
    changed = {name for name, item in after[VIRTUAL_HOST].items()
               if item is not before[VIRTUAL_HOST][name]}  # fmt: skip
    assert changed == {"acme/edge/port/80/h3.example.com"}
    for type_url, items in after.items():  # the same as encoding afresh, byte for byte
        assert {n: (i.version, i.body.SerializeToString()) for n, i in items.items()} == {
            n: (i.version, i.body.SerializeToString()) for n, i in fresh[type_url].items()
        }
