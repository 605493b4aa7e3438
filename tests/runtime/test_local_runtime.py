"""The local runtime end to end: ``runtime_agent`` runs each replica as a real Envoy, which
takes its config from ``xds_server``; status comes from what the replicas report.

Reconciles run in the test process (a worker would run the same function); the xDS server and
the agent are the real commands, as subprocesses against the test database.
"""

import contextlib
import os
import signal
import socket
import stat
import time
from pathlib import Path

import pytest
import requests

from gateways import services
from gateways.models import Gateway
from provisioning import tasks
from provisioning.models import ConfigRevision, LocalPort, LocalReplica
from provisioning.reconcile import reconcile
from provisioning.runtimes.local import ports
from provisioning.runtimes.local.admin import admin_request
from tenants.roles import Role
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.runtime.stack import Stack
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def status(gateway) -> dict:
    return Gateway.objects.get(pk=gateway.pk).status


def phase_is(gateway, phase: str, ready: int | None = None):
    current = status(gateway)
    if current.get("phase") != phase:
        return False
    return ready is None or current.get("replicas", {}).get("ready") == ready


def condition(gateway, kind: str) -> dict:
    return next(c for c in status(gateway)["conditions"] if c["type"] == kind)


def url_of(gateway) -> str:
    return status(gateway)["listeners"][0]["url"]


def make_gateway(upstream, replicas: int = 2, name: str = "edge"):
    org = make_org("acme")
    tenant = org.tenant
    gateway = services.create_gateway(ACTOR, tenant, name, {"replicas": replicas})
    services.create_backend(ACTOR, tenant, "app", upstream.backend())
    services.create_route(ACTOR, gateway, "all", {"rules": [{"backendRefs": [{"name": "app"}]}]})
    assert reconcile(gateway.pk).result == "created"
    gateway.org = org
    return gateway


def pids(gateway) -> list[int]:
    return list(
        LocalReplica.objects.filter(gateway=gateway, pid__isnull=False)
        .order_by("index")
        .values_list("pid", flat=True)
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone too, for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # it exited while being read
        return False


def test_a_gateway_with_two_replicas_becomes_ready_and_its_url_answers(stack, upstream):
    gateway = make_gateway(upstream, replicas=2)
    wait_for(lambda: phase_is(gateway, "Ready", 2), timeout=30, interval=0.05,
             message=lambda: f"Ready\n{stack.logs()}")  # fmt: skip
    programmed = condition(gateway, "Programmed")
    assert programmed["status"] == "True", programmed
    assert "2 of 2 replicas run revision 1" in programmed["message"]
    url = url_of(gateway)
    port = LocalPort.objects.get(gateway=gateway).host_port
    assert url == f"http://127.0.0.1:{port}/"
    answer = requests.get(url + "hello", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["path"] == "/hello"
    replicas = LocalReplica.objects.filter(gateway=gateway).order_by("index")
    wait_for(lambda: [r.state for r in replicas.all()] == ["running", "running"],
             timeout=5, message="both replicas running")  # fmt: skip
    assert len(set(pids(gateway))) == 2 and all(alive(pid) for pid in pids(gateway))


def test_a_killed_replica_is_restarted_and_status_goes_degraded_then_ready(stack, upstream):
    gateway = make_gateway(upstream, replicas=2)
    wait_for(lambda: phase_is(gateway, "Ready", 2), timeout=30, interval=0.05,
             message=lambda: f"Ready\n{stack.logs()}")  # fmt: skip
    victim = pids(gateway)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: phase_is(gateway, "Degraded", 1), timeout=10, interval=0.02,
             message="Degraded")  # fmt: skip
    assert condition(gateway, "Programmed")["status"] == "False"
    # The other replica serves meanwhile.
    assert requests.get(url_of(gateway), timeout=5).status_code == 200
    wait_for(lambda: phase_is(gateway, "Ready", 2), timeout=15, interval=0.05,
             message=lambda: f"Ready again\n{stack.logs()}")  # fmt: skip
    restarted = LocalReplica.objects.get(gateway=gateway, index=0)
    assert restarted.restarts == 1 and restarted.pid != victim
    assert restarted.last_exit_code == -signal.SIGKILL
    assert requests.get(url_of(gateway), timeout=5).status_code == 200


def test_scaling_down_and_deleting_stop_replicas_and_free_ports(stack, upstream):
    gateway = make_gateway(upstream, replicas=2)
    wait_for(lambda: phase_is(gateway, "Ready", 2), timeout=30, interval=0.05, message="Ready")
    first, second = pids(gateway)
    gateway = services.patch_gateway_spec(ACTOR, gateway, {"replicas": 1})
    reconcile(gateway.pk)
    wait_for(lambda: not alive(second), timeout=15, message="the scaled-down replica stops")
    wait_for(lambda: phase_is(gateway, "Ready", 1), timeout=10, message="Ready with one")
    assert alive(first)
    wait_for(
        lambda: list(LocalReplica.objects.filter(gateway=gateway).values_list("index", flat=True))
        == [0],
        timeout=5, message="the scaled-down replica's record removed",
    )  # fmt: skip
    url = url_of(gateway)
    assert requests.get(url, timeout=5).status_code == 200

    port = LocalPort.objects.get(gateway=gateway).host_port
    services.delete_gateway(ACTOR, gateway)
    wait_for(lambda: not alive(first), timeout=10, message="the deleted gateway's replica stops")
    assert not LocalPort.objects.filter(host_port=port).exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def test_a_revision_an_envoy_rejects_is_shown_and_stays_current_until_rolled_back(
    stack, upstream, monkeypatch
):
    gateway = make_gateway(upstream, replicas=1)
    editor = gateway.org.client(Role.EDITOR)
    wait_for(lambda: phase_is(gateway, "Ready", 1), timeout=30, interval=0.05, message="Ready")
    first_url = url_of(gateway)
    # A port taken after allocation and before Envoy binds it: validation cannot know, the
    # replica's bind fails, and it rejects the listener.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    monkeypatch.setattr(ports, "port_range", lambda: range(taken, taken + 1))
    monkeypatch.setattr(ports, "_free_on_host", lambda port: True)
    try:
        listeners = [
            {"name": "http", "protocol": "HTTP", "port": 80},
            {"name": "alt", "protocol": "HTTP", "port": 8080},
        ]
        gateway = services.patch_gateway_spec(ACTOR, gateway, {"listeners": listeners})
        assert reconcile(gateway.pk).result == "created"
        wait_for(lambda: condition(gateway, "Programmed")["reason"] == "Rejected", timeout=15,
                 message=lambda: f"the NACK\n{stack.logs()}")  # fmt: skip
        programmed = condition(gateway, "Programmed")
        assert programmed["status"] == "False"
        assert "acme/edge/0 rejected revision 2" in programmed["message"]
        assert "bind" in programmed["message"].lower() or "address" in programmed["message"]
        # A replica's word changes nothing: revision 2 stays valid and current, and the
        # replica keeps serving what it had.
        revision = ConfigRevision.objects.get(gateway=gateway, number=2)
        assert (revision.state, revision.current) == ("valid", True)
        assert requests.get(first_url, timeout=5).status_code == 200
        assert reconcile(gateway.pk).result == "unchanged"
        # The tenant decides: a rollback to revision 1 is served, and the gateway is Ready.
        response = editor.post("/api/v1/tenants/acme/gateways/edge/revisions/1/rollback/")
        assert response.status_code == 202, response.content
        wait_for(lambda: phase_is(gateway, "Ready", 1), timeout=10, message="serving revision 3")
        assert condition(gateway, "Programmed")["status"] == "True"
        assert requests.get(url_of(gateway), timeout=5).status_code == 200
        assert reconcile(gateway.pk).result == "unchanged"  # the rollback sticks
    finally:
        squatter.close()


def test_replicas_and_their_logs_are_readable_through_the_api(stack, upstream):
    gateway = make_gateway(upstream, replicas=1)
    org = make_org("globex")
    wait_for(lambda: phase_is(gateway, "Ready", 1), timeout=30, interval=0.05, message="Ready")
    replica = wait_for(
        lambda: LocalReplica.objects.filter(gateway=gateway, state="running").first(),
        timeout=5, message="running",
    )  # fmt: skip
    directory = stack.directory / "runtime" / "acme" / f"edge-{gateway.pk}"
    # Envoy's admin answers on a Unix socket only the platform's user may open, where the
    # agent said.
    # (or, where that path is too long for a Unix socket, in the runtime directory's admin/)
    short = stack.directory / "runtime" / "admin" / f"{gateway.pk}-0.sock"
    assert replica.admin_socket in (str(directory / "admin-0.sock"), str(short))
    assert stat.S_ISSOCK(os.stat(replica.admin_socket).st_mode)
    assert oct(os.stat(replica.admin_socket).st_mode & 0o777) == "0o600"
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    assert oct(Path(replica.admin_socket).parent.stat().st_mode & 0o777) == "0o700"
    assert admin_request(replica.admin_socket, "GET", "/ready") == (200, "LIVE\n")
    assert oct((directory / "bootstrap-0.json").stat().st_mode & 0o777) == "0o600"

    viewer = gateway.org.client(Role.VIEWER)
    base = "/api/v1/tenants/acme/gateways/edge/replicas/"
    listed = viewer.get(base).json()["results"]
    assert [(r["index"], r["node"], r["state"], r["connected"], r["revision"]) for r in listed] == [
        (0, "acme/edge/0", "running", True, 1)
    ]
    log = viewer.get(base + "0/log/?tail=5")
    assert log.status_code == 200 and log["Content-Type"].startswith("text/plain")
    assert 0 < len(log.content.decode().splitlines()) <= 5
    # Envoy writes its log file at least every second.
    full = wait_for(
        lambda: (text := viewer.get(base + "0/log/?tail=5000").content.decode())
        and "starting main dispatch loop" in text
        and text,
        timeout=5, message="the log's lines",
    )  # fmt: skip
    assert gateway.org.tokens[Role.VIEWER] not in full  # API tokens never reach Envoy
    assert viewer.get(base + "0/log/?tail=0").json()["error"]["fields"][0]["path"] == "tail"
    superscript = viewer.get(base + "0/log/?tail=²")  # a digit to isdigit(), not to int()
    assert superscript.status_code == 400
    assert superscript.json()["error"]["fields"][0]["path"] == "tail"
    assert viewer.get(base + "7/log/").status_code == 404
    outsider = org.client(Role.OWNER)
    assert outsider.get(base).status_code == 404
    assert outsider.get(base + "0/log/").status_code == 404


def test_a_replicas_log_is_rotated_by_size_while_envoy_runs(tmp_path, monkeypatch, upstream):
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    monkeypatch.setenv("GANTRY_LOCAL_LOG_MAX_BYTES", "4096")  # Envoy's start says more
    stack = Stack(tmp_path).start()
    try:
        gateway = make_gateway(upstream, replicas=1)
        wait_for(lambda: phase_is(gateway, "Ready", 1), timeout=30, interval=0.05,
                 message=lambda: f"Ready\n{stack.logs()}")  # fmt: skip
        directory = stack.directory / "runtime" / "acme" / f"edge-{gateway.pk}"
        log, old = directory / "replica-0.log", directory / "replica-0.log.1"
        wait_for(old.exists, timeout=10, message="the log rotated")
        pid = pids(gateway)[0]
        # Envoy reopened its log: it now writes the new file, not the renamed one.
        wait_for(lambda: str(log) in open_files(pid), timeout=5, message="the log reopened")
        # More log lines: each listener change logs a few. A second rotation replaces the old file.
        first = old.stat().st_ino
        for number in range(1, 60):
            alt = {"name": "alt", "protocol": "HTTP", "port": 8000 + number}
            listeners = [{"name": "http", "protocol": "HTTP", "port": 80}, alt]
            services.patch_gateway_spec(ACTOR, gateway, {"listeners": listeners})
            reconcile(gateway.pk)
            time.sleep(0.3)
            if old.stat().st_ino != first:
                break
        assert old.stat().st_ino != first, "no second rotation"
        # Envoy writes its next lines to a new log (it reopens the file a moment after the rename).
        wait_for(log.exists, timeout=10, message="a new log after the second rotation")
        assert sorted(p.name for p in directory.glob("replica-0.log*")) == [
            "replica-0.log", "replica-0.log.1"
        ]  # fmt: skip
        assert log.stat().st_size < 4096 * 4
        assert pids(gateway) == [pid]  # rotated while it ran, without a restart
    finally:
        stack.stop()


def open_files(pid: int) -> set[str]:
    files = set()
    for descriptor in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            files.add(os.readlink(f"/proc/{pid}/fd/{descriptor}"))
    return files
