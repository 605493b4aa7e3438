"""No-op pushes are skipped: a real Envoy is sent only the resources a change touched (a route
change reaches it as one route configuration, never as clusters or listeners again), and a new
version with nothing changed reaches it as nothing at all, for both ADS flavours, while its
standing ACKs still report the new version (what status and receipts count)."""

import copy
import dataclasses
import re

import pytest
import requests

from provisioning.translate.types import CLUSTER, LISTENER, ROUTE_CONFIGURATION
from tests.provisioning.harness import free_port
from tests.xds.conftest import compiled
from tests.xds.harness import running_envoy, wait_for
from tests.xds.test_envoy import API_TYPES, EDGE, EDGE_TOKEN, backends

pytestmark = pytest.mark.slow


def updates(envoy) -> dict[str, int]:
    """Envoy's own count of config updates it applied, per kind."""
    text = envoy.admin("/stats?filter=update_success")
    counts = {"cds": 0, "lds": 0, "rds": 0}
    for name, value in re.findall(r"^(\S+): (\d+)$", text, re.MULTILINE):
        for kind in counts:
            if name.endswith(f"{kind}.update_success") or f".{kind}." in name:
                counts[kind] += int(value)
                break
    return counts


def with_header(resources, value: str):
    route = copy.deepcopy(resources.routes[0])
    route["virtual_hosts"][0]["response_headers_to_add"] = [
        {"header": {"key": "x-change", "value": value},
         "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
    ]  # fmt: skip
    return dataclasses.replace(resources, routes=(route, *resources.routes[1:]))


@pytest.mark.parametrize("api_type", API_TYPES)
def test_only_what_changed_is_pushed(xds, upstreams, api_type):
    port = free_port()
    base = compiled("acme", "edge", "a", backends(upstreams), port)
    xds.store.set(EDGE, "v0", base)
    with running_envoy(xds.bootstrap(EDGE, 0, EDGE_TOKEN, free_port(), api_type)) as envoy:
        session = requests.Session()
        url = f"http://127.0.0.1:{port}/"
        assert session.get(url, headers={"Host": "x.test"}, timeout=5).status_code == 200
        before = updates(envoy)
        for change in range(1, 6):
            xds.store.set(EDGE, f"v{change}", with_header(base, str(change)))
            wait_for(
                lambda c=change: session.get(url, headers={"Host": "x.test"}, timeout=5)
                .headers.get("x-change") == str(c),
                message=f"change {change} served",
            )  # fmt: skip
        wait_for(lambda: xds.acks_for("acme/edge/0", ROUTE_CONFIGURATION)[-1].version == "v5")
        after_routes = updates(envoy)
        # Three new versions that change nothing at all.
        for change in range(6, 9):
            xds.store.set(EDGE, f"v{change}", with_header(base, "5"))
        wait_for(
            lambda: {xds.acks_for("acme/edge/0", t)[-1].version
                     for t in (CLUSTER, LISTENER, ROUTE_CONFIGURATION)} == {"v8"},
            message="every type's standing ACK reports v8",
        )  # fmt: skip
        after_nothing = updates(envoy)
    assert before["cds"] >= 1 and before["lds"] >= 1, before  # the counts are read right
    assert after_routes["rds"] - before["rds"] == 5, (before, after_routes)
    assert (after_routes["cds"], after_routes["lds"]) == (before["cds"], before["lds"])
    assert after_nothing == after_routes, (after_routes, after_nothing)
