"""Faults the delivery pipeline must survive, with the real processes: a worker killed in the
middle of a reconcile, the xDS server killed, the database briefly unreachable. (An Envoy
replica killed: tests/runtime/test_local_runtime.py.)"""

import contextlib
import os
import re
import socket
import stat
import threading
import time

import pytest
import requests

from gateways import services
from gateways.models import Gateway, Route
from provisioning import tasks
from provisioning.envoy import envoy_binary
from provisioning.models import ConfigRevision, GatewayOperation
from provisioning.reconcile import reconcile
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR, use_queue
from tests.provisioning.harness import free_port
from tests.runtime.stack import Stack, database_url
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def route(value: str) -> dict:
    header = {"set": [{"name": "x-version", "value": value}]}
    return {"rules": [{"backendRefs": [{"name": "app"}], "filters": [
        {"type": "ResponseHeaderModifier", "responseHeaderModifier": header}]}]}  # fmt: skip


def make_gateway(upstream, reconcile_now: bool = True):
    tenant = make_org("acme").tenant
    gateway = services.create_gateway(ACTOR, tenant, "edge", {"replicas": 1})
    services.create_backend(ACTOR, tenant, "app", upstream.backend())
    services.create_route(ACTOR, gateway, "all", route("v1"))
    if reconcile_now:
        assert reconcile(gateway.pk).result == "created"
    return gateway


def status(gateway) -> dict:
    return Gateway.objects.get(pk=gateway.pk).status


def ready(gateway) -> bool:
    return status(gateway).get("phase") == "Ready"


def url_of(gateway) -> str:
    return status(gateway)["listeners"][0]["url"]


def served(url: str) -> str | None:
    try:
        return requests.get(url, timeout=2).headers.get("x-version")
    except requests.RequestException:
        return None


def settled(stack: Stack, quiet: float = 1.0) -> bool:
    """The worker has finished every task it received, none is running, and nothing new came
    for ``quiet`` seconds."""
    log = stack.worker.output()
    received = len(re.findall(r"Task \S+\[[0-9a-f-]+\] received", log))
    done = len(re.findall(r"Task \S+\[[0-9a-f-]+\] (succeeded|failed|raised)", log))
    if received == 0 or received != done:
        return False
    if GatewayOperation.objects.filter(state="running").exists():
        return False
    time.sleep(quiet)
    return stack.worker.output() == log


def test_a_worker_killed_mid_reconcile_leaves_nothing_half_done_and_the_task_is_redone(
    tmp_path, upstream, settings
):
    queue = f"gantry-test-{os.urandom(4).hex()}"
    use_queue(settings, queue)
    # Each validation leaves a marker file, then waits while the gate file is absent: the test
    # holds the change's validation until the worker is dead, whatever the machine's speed.
    markers, gate = tmp_path / "validations", tmp_path / "gate"
    markers.mkdir()
    gate.touch()
    slow = tmp_path / "gated-envoy"
    slow.write_text(
        f"#!/bin/sh\ntouch {markers}/$$\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n"
        f'exec {envoy_binary()} "$@"\n'
    )
    slow.chmod(slow.stat().st_mode | stat.S_IEXEC)
    stack = Stack(
        tmp_path, queue=queue,
        worker_env={"GANTRY_ENVOY_BINARY": str(slow), "GANTRY_VALIDATOR": "cold",
                    "GANTRY_BROKER_VISIBILITY_TIMEOUT": "5"},
    ).start()  # fmt: skip
    try:
        gateway = make_gateway(upstream, reconcile_now=False)  # the worker does the first one
        wait_for(lambda: ready(gateway), timeout=60, interval=0.1,
                 message=lambda: f"Ready\n{stack.logs()}")  # fmt: skip
        # Every task the set-up sent (one per write) has run: a reconcile still queued would
        # otherwise validate before the gate closes and store revision 2 itself.
        wait_for(lambda: settled(stack), timeout=30, interval=0.2,
                 message=lambda: f"the first reconciles done\n{stack.logs()}")  # fmt: skip
        # The set-up's writes made one revision or several, depending on how the worker's first
        # reconciles fell between them; the change makes exactly one more.
        last = ConfigRevision.objects.filter(gateway=gateway).order_by("-number")[0].number
        before = set(markers.iterdir())
        gate.unlink()
        services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route("v2"))
        wait_for(lambda: set(markers.iterdir()) - before, timeout=30, interval=0.02,
                 message=lambda: f"the change's validation\n{stack.logs()}")  # fmt: skip
        stack.worker.kill()  # inside the change's validation, which is held at the gate
        assert not ConfigRevision.objects.filter(gateway=gateway, number__gt=last).exists()
        gate.touch()
        stack.worker.start()  # the message comes back once its visibility timeout passes
        wait_for(lambda: served(url_of(gateway)) == "v2", timeout=60, interval=0.1,
                 message=lambda: f"v2 served\n{stack.logs()}")  # fmt: skip
    finally:
        stack.stop()
    numbers = list(
        ConfigRevision.objects.filter(gateway=gateway)
        .order_by("number")
        .values_list("number", flat=True)
    )
    assert numbers == list(range(1, last + 2)), "one revision for the change, none duplicated"
    assert ConfigRevision.objects.get(gateway=gateway, current=True).number == last + 1


def test_envoys_keep_serving_while_the_xds_server_is_down_and_converge_after_restart(
    tmp_path, upstream, monkeypatch
):
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    stack = Stack(tmp_path).start()
    try:
        gateway = make_gateway(upstream)
        wait_for(lambda: ready(gateway), timeout=30, interval=0.05, message="Ready")
        url = url_of(gateway)
        stack.xds.kill()
        for _ in range(20):
            assert served(url) == "v1"
            time.sleep(0.05)
        services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route("v2"))
        assert reconcile(gateway.pk).result == "created"
        time.sleep(0.5)
        assert served(url) == "v1"  # nobody can push it yet
        stack.xds.start()
        # Timed from when the server listens: starting Python and Django is the machine's
        # business (seconds on a loaded one), reconnecting is Envoy's (retries at most 1 s apart).
        stack.wait_for_xds()
        listening = time.monotonic()
        wait_for(lambda: served(url) == "v2", timeout=5, interval=0.01, message="v2 served")
        assert time.monotonic() - listening < 2 + 0.5  # reconnect ≤ 2 s, + the first push
        wait_for(lambda: ready(gateway), timeout=5, message="Ready on revision 2")
        assert "revision 2" in next(
            c["message"] for c in status(gateway)["conditions"] if c["type"] == "Programmed"
        )
    finally:
        stack.stop()


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can drop every connection and refuse new ones."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.port = target, free_port()
        self.pairs: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        self.listener.close()
        for sock in self.pairs:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.pairs.clear()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.pairs += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def test_workers_and_the_xds_server_recover_from_a_database_outage(tmp_path, upstream, settings):
    db = settings.DATABASES["default"]
    proxy = CuttableProxy((db["HOST"], int(db["PORT"])))
    queue = f"gantry-test-{os.urandom(4).hex()}"
    use_queue(settings, queue)
    through_proxy = database_url().replace(f":{db['PORT']}/", f":{proxy.port}/")
    stack = Stack(tmp_path, queue=queue, database=through_proxy).start()
    try:
        gateway = make_gateway(upstream, reconcile_now=False)
        wait_for(lambda: ready(gateway), timeout=60, interval=0.1,
                 message=lambda: f"Ready\n{stack.logs()}")  # fmt: skip
        url = url_of(gateway)
        proxy.cut()
        # A change while the platform cannot reach the database: the write itself goes to the
        # database directly (it is the API's), the reconcile fails and is retried.
        services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route("v2"))
        for _ in range(20):
            assert served(url) == "v1"  # Envoy serves on
            time.sleep(0.1)
        proxy.restore()
        wait_for(lambda: served(url) == "v2", timeout=60, interval=0.1,
                 message=lambda: f"v2 served after the outage\n{stack.logs()}")  # fmt: skip
        wait_for(lambda: ready(gateway), timeout=10, message="Ready")
        for process in stack.processes():
            assert process.popen.poll() is None, f"{process.name} died:\n{stack.logs()}"
    finally:
        stack.stop()
        proxy.cut()
