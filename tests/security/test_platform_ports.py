"""A hostile tenant probing the platform's ports through its own gateway (local runtime, real
Envoys): no Envoy of the platform has its admin on a TCP port, so no backend can reach one.

Two tenants: acme (the victim, two replicas) and globex (the attacker). The platform's Envoys
are acme's and globex's replicas and the warm validator of this process (reconcile validates
here, as a worker would). Every TCP port any of them listens on is found through ``/proc``; then
globex points a backend at each of them (and at the xDS server's port) and asks for the admin
endpoints that would leak config and tokens or stop a replica.
"""

import json
import os
from pathlib import Path

import pytest
import requests

from gateways import services
from provisioning.envoy import envoy_binary
from provisioning.models import LocalPort, LocalReplica
from provisioning.reconcile import reconcile
from provisioning.validator import warm_validator
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.runtime.test_local_runtime import alive, phase_is, pids, url_of
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LISTEN = "0A"  # TCP state in /proc/net/tcp
ADMIN_PATHS = [
    ("GET", "/config_dump"),
    ("GET", "/server_info"),
    ("POST", "/logging?level=trace"),
    ("POST", "/drain_listeners"),
    ("POST", "/quitquitquit"),
]
# What only an Envoy admin says.
ADMIN_MARKERS = ("envoy.admin.v3", "command_line_options", "gxds_", "active loggers", "\nOK\n")


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for descriptor in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def listening_tcp_ports(pid: int) -> set[int]:
    """The TCP ports (IPv4 and IPv6) the process has a listening socket on."""
    inodes, ports = socket_inodes(pid), set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == LISTEN and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def envoys_under(*directories: Path) -> set[int]:
    """Pids of every Envoy on this host whose config file lies under one of ``directories``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = [part.decode() for part in handle.read().split(b"\0") if part]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if not argv or not Path(argv[0]).name.startswith("envoy") or "-c" not in argv:
            continue
        config = argv[argv.index("-c") + 1]
        if any(Path(config).is_relative_to(directory) for directory in directories):
            found.add(int(entry))
    return found


def make_gateway(tenant, name, replicas, backends, rules):
    gateway = services.create_gateway(ACTOR, tenant, name, {"replicas": replicas})
    for backend, spec in backends.items():
        services.create_backend(ACTOR, tenant, backend, spec)
    services.create_route(ACTOR, gateway, "all", {"rules": rules})
    assert reconcile(gateway.pk).result == "created"
    return gateway


def probe_rules(ports) -> tuple[dict, list]:
    """A backend per port, and a rule sending requests with ``x-target: <port>`` to it."""
    backends = {
        f"p{port}": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": port}}]}
        for port in ports
    }
    rules = [
        {"matches": [{"headers": [{"name": "x-target", "value": str(port)}]}],
         "backendRefs": [{"name": f"p{port}"}]}
        for port in ports
    ]  # fmt: skip
    return backends, rules


@pytest.fixture
def no_egress_policy(monkeypatch):
    """An operator who let gateways reach every port of this host: the admins must stay out of
    reach by themselves, not only because the egress policy refuses the platform's ports."""
    from gateways.egress import EgressPolicy
    from gateways.validation import backends
    from provisioning import desired

    for module in (backends, desired):
        monkeypatch.setattr(module, "current_policy", lambda: EgressPolicy(allow_loopback=True))


def test_no_envoy_admin_of_the_platform_is_reachable_from_a_tenants_gateway(
    stack, upstream, no_egress_policy
):
    acme = make_org("acme").tenant
    victim = make_gateway(
        acme, "edge", 2, {"app": upstream.backend()}, [{"backendRefs": [{"name": "app"}]}]
    )
    wait_for(lambda: phase_is(victim, "Ready", 2), timeout=30, interval=0.05,
             message=lambda: f"acme Ready\n{stack.logs()}")  # fmt: skip
    validator = warm_validator(envoy_binary())
    validator.ensure_started()

    platform_envoys = envoys_under(stack.directory, validator._directory)
    assert set(pids(victim)) | {validator._process.pid} <= platform_envoys
    gateway_ports = set(LocalPort.objects.values_list("host_port", flat=True))
    listening = {pid: listening_tcp_ports(pid) for pid in platform_envoys}
    # Only the gateways' own listener ports: no admin, and the validator has no TCP port at all.
    assert all(ports <= gateway_ports for ports in listening.values()), (listening, gateway_ports)
    assert listening[validator._process.pid] == set()
    running = LocalReplica.objects.filter(gateway=victim, state="running")
    wait_for(lambda: running.count() == 2, timeout=10, message="both replicas running")
    assert all(Path(replica.admin_socket).is_socket() for replica in running)

    # The attacker's gateway, with a backend at every platform port it could aim at.
    targets = sorted(set().union(*listening.values()) | {stack.xds_port})
    backends, rules = probe_rules(targets)
    globex = make_org("globex").tenant
    attacker = make_gateway(globex, "probe", 1, backends, rules)
    wait_for(lambda: phase_is(attacker, "Ready", 1), timeout=30, interval=0.05,
             message=lambda: f"globex Ready\n{stack.logs()}")  # fmt: skip
    own = set(LocalPort.objects.filter(gateway=attacker).values_list("host_port", flat=True))
    victims_pids = pids(victim)
    answers = {}
    for port in set(targets) - own:
        for method, path in ADMIN_PATHS:
            response = requests.request(
                method, url_of(attacker).rstrip("/") + path, headers={"x-target": str(port)},
                timeout=10,
            )  # fmt: skip
            answers[(port, method, path)] = (response.status_code, response.text)
    leaked = {
        key: text[:200]
        for key, (status, text) in answers.items()
        if any(marker in text for marker in ADMIN_MARKERS)
    }
    assert leaked == {}
    # A's gateway ports answered as A's gateway (its upstream), never as an admin.
    for port in gateway_ports - own:
        status, text = answers[(port, "GET", "/config_dump")]
        assert status == 200 and json.loads(text)["path"] == "/config_dump"
    # Nothing was stopped or drained: acme's replicas still run and serve.
    assert pids(victim) == victims_pids and all(alive(pid) for pid in victims_pids)
    for _ in range(10):
        assert requests.get(url_of(victim) + "still", timeout=5).status_code == 200
    assert validator._process.poll() is None
