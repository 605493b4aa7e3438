"""Route configurations, virtual hosts and inline routes encoded route by route: the same
messages as a whole parse, and a one-route change parses one route."""

import copy

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format

from provisioning.compile import compile_gateway
from provisioning.translate.types import LISTENER, ROUTE_CONFIGURATION, VIRTUAL_HOST
from provisioning.validator import unbound
from provisioning.xds import route_bytes
from provisioning.xds.resources import ResourceError, message_class, to_any, to_message
from tests.provisioning.test_golden import CASES, load_state


def _decoded(resource: dict):
    packed = to_any(resource)
    assert packed.type_url == resource["@type"]
    message = message_class(resource["@type"])()
    assert packed.Unpack(message)
    return message


def _vhosts(resources):
    for config in resources.routes:
        for vhost in config["virtual_hosts"]:
            yield {**vhost, "@type": VIRTUAL_HOST}


@pytest.mark.parametrize("case", CASES)
def test_route_by_route_is_the_message_a_whole_parse_gives(case):
    route_bytes.routes.clear()
    resources = compile_gateway(load_state(case, real_certificates=True))
    for config in resources.routes:
        assert _decoded(config) == to_message(config)
    for vhost in _vhosts(resources):
        assert _decoded(vhost) == to_message(vhost)
    # Again, every route now known: the same messages from the kept bytes.
    for config in resources.routes:
        assert _decoded(config) == to_message(config)


@pytest.mark.parametrize("case", CASES)
def test_inline_routes_of_the_warm_validators_listeners_are_the_same_managers(case):
    resources = unbound(compile_gateway(load_state(case, real_certificates=True)))
    for listener in resources.listeners:
        ours, whole = _decoded(listener), to_message(listener)
        for chain, expected in zip(ours.filter_chains, whole.filter_chains, strict=True):
            for item, want in zip(chain.filters, expected.filters, strict=True):
                if item.typed_config.type_url != want.typed_config.type_url:
                    pytest.fail(f"filter {item.name} changed type")
                if item.typed_config.type_url.endswith("HttpConnectionManager"):
                    got, wanted = hcm_pb2.HttpConnectionManager(), hcm_pb2.HttpConnectionManager()
                    item.typed_config.Unpack(got)
                    want.typed_config.Unpack(wanted)
                    assert got == wanted and got.route_config.name
                    item.ClearField("typed_config")
                    want.ClearField("typed_config")
        assert ours == whole


def _busiest_vhost() -> dict:
    """The golden cases' virtual host with the most routes."""
    vhosts = [
        vhost
        for case in CASES
        for vhost in _vhosts(compile_gateway(load_state(case, real_certificates=True)))
    ]
    return max(vhosts, key=lambda vhost: len(vhost["routes"]))


def test_a_one_route_change_parses_only_that_route(monkeypatch):
    vhost = _busiest_vhost()
    assert len(vhost["routes"]) >= 3
    route_bytes.routes.clear()
    parsed = []
    real = json_format.ParseDict

    def counting(body, message, *args, **kwargs):
        parsed.append(type(message).__name__)
        return real(body, message, *args, **kwargs)

    monkeypatch.setattr(route_bytes.json_format, "ParseDict", counting)
    to_any(vhost)
    assert parsed.count("Route") == len(vhost["routes"])
    parsed.clear()
    changed = copy.deepcopy(vhost)
    changed["routes"][-1]["request_headers_to_add"] = [
        {
            "header": {"key": "x-changed", "value": "1"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    ]
    message = _decoded(changed)
    assert parsed.count("Route") == 1  # the virtual host's own fields, and the changed route
    assert message.routes[-1].request_headers_to_add[0].header.key == "x-changed"
    assert message == to_message(changed)


def test_a_route_that_does_not_parse_is_named():
    resources = compile_gateway(load_state(CASES[0], real_certificates=True))
    config = copy.deepcopy(resources.routes[0])
    route = config["virtual_hosts"][0]["routes"][0]
    route["no_such_field"] = 1
    with pytest.raises(ResourceError) as raised:
        to_any(config)
    message = str(raised.value)
    assert ROUTE_CONFIGURATION in message and repr(config["name"]) in message
    assert repr(route["name"]) in message and "no_such_field" in message
    listener = copy.deepcopy(unbound(resources).listeners[0])
    listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"] = config
    with pytest.raises(ResourceError, match="no_such_field") as raised:
        to_any(listener)
    assert LISTENER in str(raised.value)


def test_kept_routes_are_bounded(monkeypatch):
    monkeypatch.setattr(route_bytes._RouteBytes, "MAX_ENTRIES", 5)
    route_bytes.routes.clear()
    vhost = _busiest_vhost()
    for _ in range(2):
        assert _decoded(vhost) == to_message(vhost)
    assert len(route_bytes.routes._entries) == 5
    assert route_bytes.routes._bytes == sum(
        len(text) + len(body) for text, body in route_bytes.routes._entries.items()
    )


def test_a_changed_host_writes_out_only_the_routes_not_as_they_were_at_their_place(monkeypatch):
    """A virtual host encoded before: routes equal to the ones at their place last time take
    their bytes without their JSON being written; moved, added and changed ones are written
    (and looked up by it). Every encoding decodes to what a whole parse gives."""
    vhost = _busiest_vhost()
    route_bytes.routes.clear()
    written = []
    real = route_bytes._canonical
    monkeypatch.setattr(route_bytes, "_canonical", lambda value: written.append(1) or real(value))
    assert _decoded(vhost) == to_message(vhost)
    assert len(written) == len(vhost["routes"])  # the first time, every route
    written.clear()
    changed = copy.deepcopy(vhost)  # equal routes, other objects
    changed["routes"][1]["request_headers_to_add"] = [{"header": {"key": "x-c", "value": "1"}}]
    assert _decoded(changed) == to_message(changed)
    assert len(written) == 1
    written.clear()
    added = {**changed, "routes": [changed["routes"][-1], *changed["routes"]]}  # all move down
    assert _decoded(added) == to_message(added)
    assert len(written) == len(added["routes"])
    assert _decoded(vhost) == to_message(vhost)  # and back: bytes by JSON, none parsed again


def test_kept_hosts_are_bounded(monkeypatch):
    monkeypatch.setattr(route_bytes._Hosts, "MAX_ENTRIES", 2)
    route_bytes.routes.clear()
    vhost = _busiest_vhost()
    for index in range(4):
        renamed = {**vhost, "name": f"host-{index}"}
        assert _decoded(renamed) == to_message(renamed)
    kept = route_bytes._hosts._entries
    assert list(kept) == ["host-2", "host-3"]
    assert route_bytes._hosts._bytes == sum(size for _, _, size in kept.values())
