"""The ``gantry`` command line, run as a subprocess against a real running server."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateways.models import Backend, Gateway, Route
from tenants.roles import Role
from tests.conftest import make_org

REPO = Path(__file__).resolve().parents[2]
FILE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: app}
spec:
  endpoints: [{ip: {address: 10.0.0.1, port: 8080}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge}]
  rules: [{backendRefs: [{name: app}]}]
"""


@pytest.fixture
def orgs(live_server):
    return make_org("acme"), make_org("globex")


def gantry(live_server, token, *args, tenant="acme", stdin=None, url=None):
    env = {**os.environ, "GANTRY_URL": url or live_server.url, "GANTRY_TOKEN": token,
           "GANTRY_TENANT": tenant, "PYTHONPATH": str(REPO)}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "gantry_cli", *args], input=stdin, capture_output=True,
        text=True, env=env, timeout=60, cwd=REPO,
    )  # fmt: skip


def test_diff_apply_diff_export_and_apply_elsewhere(live_server, orgs, tmp_path):
    acme, globex = orgs
    token = acme.tokens[Role.EDITOR]
    config = tmp_path / "gantry.yaml"
    config.write_text(FILE)

    diff = gantry(live_server, token, "diff", "-f", str(config))
    assert diff.returncode == 1, diff.stderr
    assert "+kind: Gateway" in diff.stdout and "+++ applied/HTTPRoute/edge/shop" in diff.stdout
    assert not Gateway.objects.exists()

    applied = gantry(live_server, token, "apply", "-f", str(config))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [
        "backend/app created", "gateway/edge created", "httproute/edge/shop created"]  # fmt: skip
    assert Route.objects.filter(gateway__tenant=acme.tenant, name="shop").exists()

    again = gantry(live_server, token, "diff", "-f", str(config))
    assert (again.returncode, again.stdout) == (0, "")

    exported = tmp_path / "acme.yaml"
    assert gantry(live_server, token, "export", "-o", str(exported)).returncode == 0
    other = globex.tokens[Role.EDITOR]
    moved = gantry(live_server, other, "apply", "-f", "-", tenant="globex",
                   stdin=exported.read_text())  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert gantry(live_server, other, "export", tenant="globex").stdout == exported.read_text()


def test_dry_run_from_stdin_and_prune(live_server, orgs):
    acme, _ = orgs
    token = acme.tokens[Role.EDITOR]
    assert gantry(live_server, token, "apply", "-f", "-", stdin=FILE).returncode == 0
    without_route = FILE.replace("name: shop", "name: store")  # shop is gone, store is new
    preview = gantry(live_server, token, "apply", "-f", "-", "--prune", "--dry-run",
                     stdin=without_route)  # fmt: skip
    assert preview.returncode == 0, preview.stderr
    assert preview.stdout.splitlines()[-2:] == [
        "httproute/edge/store created (dry run)",
        "httproute/edge/shop pruned (dry run)",
    ]
    assert Route.objects.filter(name="shop").exists()
    pruned = gantry(live_server, token, "apply", "-f", "-", "--prune", stdin=without_route)
    assert "httproute/edge/shop pruned" in pruned.stdout
    assert not Route.objects.filter(name="shop").exists()


def test_refusals_are_exit_2_and_name_the_field(live_server, orgs, tmp_path):
    acme, globex = orgs
    bad = FILE.replace("port: 8080", "port: 99999")
    answer = gantry(live_server, acme.tokens[Role.EDITOR], "apply", "-f", "-", stdin=bad)
    assert answer.returncode == 2
    assert "documents[1].spec.endpoints[0].ip.port: Backend app:" in answer.stderr
    assert not Backend.objects.exists() and not Gateway.objects.exists()

    viewer = gantry(live_server, acme.tokens[Role.VIEWER], "apply", "-f", "-", stdin=FILE)
    assert viewer.returncode == 2 and "403" in viewer.stderr
    outsider = gantry(live_server, globex.tokens[Role.OWNER], "export")
    assert outsider.returncode == 2 and "404" in outsider.stderr
    missing = gantry(live_server, acme.tokens[Role.EDITOR], "apply", "-f", str(tmp_path / "no"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_an_unreachable_server_is_exit_3(live_server, orgs):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        answer = gantry(live_server, "gty_x", "export", url=f"http://127.0.0.1:{port}")
    assert answer.returncode == 3
    assert "cannot connect" in answer.stderr
