"""ClientTrafficPolicy ``tcpKeepalive``: Envoy's accepted connections carry TCP keepalive with
the policy's timings (the kernel's keepalive timer, read with ``ss``), per port; a listener
without the policy has none. Real Envoy, real connections."""

import re
import shutil
import socket
import subprocess

import pytest

from gateways.validation.policies import validate_policy_spec
from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, running_envoy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)"),
]

GROUP = "gateway.networking.k8s.io"
LISTENERS = [
    {"name": "plain", "protocol": "HTTP", "port": 80},
    {"name": "tuned", "protocol": "HTTP", "port": 81},
    {"name": "system", "protocol": "HTTP", "port": 82},
]


def policy(name, section, keepalive):
    spec = {"targetRefs": [{"group": GROUP, "kind": "Gateway", "name": "edge",
                            "sectionName": section}], "tcpKeepalive": keepalive}  # fmt: skip
    spec = validate_policy_spec("ClientTrafficPolicy", spec, "edge", [x["name"] for x in LISTENERS])
    return {"name": name, "kind": "ClientTrafficPolicy", "spec": spec}


@pytest.fixture(scope="module")
def ports():
    upstream = Upstream("app")
    state = DesiredState(
        tenant="acme", gateway="edge", spec={"listeners": LISTENERS},
        routes=[{"name": "site", "spec": {"rules": [{"backendRefs": [{"name": "app"}]}]}}],
        backends={"app": upstream.backend()},
        policies=[policy("tuned", "tuned", {"probes": 3, "idleTime": "45s", "interval": "7s"}),
                  policy("system", "system", {})],
    )  # fmt: skip
    with running_envoy(state) as ports:
        yield ports
    upstream.close()


def keepalive_timer(port: int) -> str | None:
    """The keepalive timer of Envoy's side of a fresh, answered keep-alive connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        client = sock.getsockname()[1]
        shown = subprocess.run(
            ["ss", "-tnoH", "state", "established", f"( sport = :{port} and dport = :{client} )"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    assert shown.strip(), f"Envoy's side of the connection not found: {shown!r}"
    found = re.search(r"timer:\(keepalive,([^,]+),", shown)
    return found.group(1) if found else None


def seconds(timer: str) -> float:
    """ss's remaining time (``44sec``, ``1min59sec``, ``119min``, ``1.2sec``) in seconds."""
    parts = re.findall(r"([\d.]+)(min|sec|ms)", timer)
    return sum(float(value) * {"min": 60, "sec": 1, "ms": 0.001}[unit] for value, unit in parts)


def test_the_policy_turns_keepalive_on_with_its_idle_time(ports):
    timer = keepalive_timer(ports[81])
    assert timer is not None, "no keepalive on the tuned listener's connection"
    assert 30 < seconds(timer) <= 45  # the first probe after 45 s idle, not the system's 2 h


def test_an_empty_policy_uses_the_systems_timings(ports):
    with open("/proc/sys/net/ipv4/tcp_keepalive_time") as handle:
        system = int(handle.read())
    timer = keepalive_timer(ports[82])
    assert timer is not None, "no keepalive on the system listener's connection"
    assert system - 120 < seconds(timer) <= system  # ss shows whole minutes past an hour


def test_a_listener_without_the_policy_has_no_keepalive(ports):
    assert keepalive_timer(ports[80]) is None
