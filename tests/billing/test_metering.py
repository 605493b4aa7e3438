"""Metering with real Envoy replicas of the local runtime: every answered request counted once,
across a graceful scale-down and a runtime-agent restart, and replica time as the processes
really ran. The agent, the xDS server and Envoy are real processes; the counters come from
Envoy's admin over its Unix socket."""

import contextlib
import os
import signal
import threading
import time
from datetime import timedelta

import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client as DjangoClient
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from billing import rollups
from billing.models import ReplicaHour, UsageHour
from gateways import services
from gateways.models import Gateway
from provisioning.models import LocalReplica, ReplicaIncarnation
from provisioning.reconcile import reconcile
from provisioning.runtimes.local.processes import start_time
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.provisioning.harness import Upstream
from tests.runtime.stack import Stack
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_started(pid: int) -> float:
    """When the process started (epoch seconds), from the kernel's own record."""
    with open(f"/proc/{pid}/stat") as handle:
        ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
    # The kernel counts it from boot (CLOCK_BOOTTIME). /proc/stat's btime is whole seconds,
    # up to a second off: the boot's moment to the microsecond instead.
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return boot + ticks / CLOCK_TICKS


def route(path: str, backend: str) -> dict:
    return {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                       "backendRefs": [{"name": backend}]}]}  # fmt: skip


class Client:
    """Sends requests (each on a new connection, so the kernel spreads them over replicas)
    and counts what came back, by status class."""

    def __init__(self, url: str):
        self.url = url
        self.sent = {"2xx": 0, "4xx": 0, "5xx": 0}

    def send(self, rounds: int) -> None:
        for _ in range(rounds):
            for path, kind in (("/ok", "2xx"), ("/ok", "2xx"), ("/nowhere", "4xx"),
                               ("/fail", "5xx")):  # fmt: skip
                answer = requests.get(self.url + path, timeout=5, headers={"Connection": "close"})
                assert answer.status_code // 100 == int(kind[0]), (path, answer.status_code)
                self.sent[kind] += 1

    @property
    def total(self) -> int:
        return sum(self.sent.values())


class Death:
    """When a process is gone (a zombie counts: it has exited), polled every 10 ms."""

    def __init__(self, pid: int):
        self.pid, self.at = pid, None
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while start_time(self.pid) is not None:
            time.sleep(0.01)
        self.at = time.time()

    def wait(self, timeout: float) -> float:
        self._thread.join(timeout)
        assert self.at is not None, f"process {self.pid} still runs"
        return self.at


def status_of(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def running(gateway) -> list[LocalReplica]:
    return list(LocalReplica.objects.filter(gateway=gateway, state="running").order_by("index"))


def scraped_responses() -> int:
    """Every response of every live replica, as ``GET /metrics`` counts them."""
    operator = DjangoClient()
    operator.force_login(get_user_model().objects.get_or_create(username="ops", is_staff=True)[0])
    body = operator.get("/metrics").content.decode()
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "gantry_gateway_responses_total"
    )


def test_every_answered_request_is_metered_once_and_replica_time_is_as_the_processes_ran(
    tmp_path,
):
    ok, failing = Upstream("ok"), Upstream("failing", status=503)
    stack = Stack(tmp_path)
    stack.env["GANTRY_METERING_SECONDS"] = "0.5"
    stack.start()
    try:
        tenant = make_org("acme").tenant
        gateway = services.create_gateway(ACTOR, tenant, "edge", {"replicas": 2})
        services.create_backend(ACTOR, tenant, "ok", ok.backend())
        services.create_backend(ACTOR, tenant, "failing", failing.backend())
        services.create_route(ACTOR, gateway, "ok", route("/ok", "ok"))
        services.create_route(ACTOR, gateway, "fail", route("/fail", "failing"))
        assert reconcile(gateway.pk).result == "created"
        wait_for(lambda: len(running(gateway)) == 2, timeout=60, interval=0.1,
                 message=lambda: f"two replicas running\n{stack.logs()}")  # fmt: skip
        url = Gateway.objects.get(pk=gateway.pk).status["listeners"][0]["url"].rstrip("/")
        wait_for(lambda: status_of(url + "/ok") == 200, timeout=30, interval=0.1,
                 message="the routes served")  # fmt: skip
        client = Client(url)
        client.sent["2xx"] += 1  # the request just above
        started = {r.index: process_started(r.pid) for r in running(gateway)}
        client.send(10)
        # The operators' /metrics shows the replicas' own counters, as last read.
        wait_for(lambda: scraped_responses() == client.total, timeout=10, interval=0.2,
                 message=lambda: f"/metrics: {scraped_responses()} of {client.total}")  # fmt: skip

        # A graceful scale-down: replica 1 drains, is read a last time, and stops.
        pid_1 = running(gateway)[1].pid
        services.patch_gateway_spec(ACTOR, gateway, {"replicas": 1})
        stopped_1 = Death(pid_1).wait(30)
        client.send(5)

        # The agent is killed and started again: replica 0 goes on, adopted, in the same run.
        stack.agent.kill()
        client.send(5)
        stack.agent.start()
        wait_for(lambda: "adopted" in stack.agent.output(), timeout=30, interval=0.1,
                 message=lambda: f"replica 0 adopted\n{stack.logs()}")  # fmt: skip
        client.send(5)
        time.sleep(1.2)  # a sample after the last request, as a running replica would have

        # The agent stops gracefully: replica 0 is read a last time and stops.
        death = Death(running(gateway)[0].pid)
        stack.agent.stop()
        stopped_0 = death.wait(30)
    finally:
        stack.stop()
        ok.close()
        failing.close()

    runs = {run.node_id: run for run in ReplicaIncarnation.objects.all()}
    assert sorted(runs) == ["acme/edge/0", "acme/edge/1"], "one run each: adoption goes on"
    first, second = runs["acme/edge/0"], runs["acme/edge/1"]
    assert (first.stop_reason, second.stop_reason) == ("agent-stopped", "scaled-down")
    for run, began, ended in ((first, started[0], stopped_0), (second, started[1], stopped_1)):
        assert abs(run.started_at.timestamp() - began) < 1.0, (run, began)
        assert abs(run.stopped_at.timestamp() - ended) < 1.0, (run, ended)

    now = timezone.now()
    for _ in range(2):  # twice: the same rows
        rollups.rollup(now - timedelta(hours=2), now + timedelta(hours=1))
        usage = list(UsageHour.objects.filter(gateway_name="edge"))
        assert sum(row.requests for row in usage) == client.total
        assert sum(row.responses_2xx for row in usage) == client.sent["2xx"]
        assert sum(row.responses_4xx for row in usage) == client.sent["4xx"]
        assert sum(row.responses_5xx for row in usage) == client.sent["5xx"]
        assert all(row.bytes_received > 0 and row.bytes_sent > 0 for row in usage)
        assert sum(sum(row.latency.values()) for row in usage) == client.total
        metered = sum(row.milliseconds for row in ReplicaHour.objects.filter(size="small"))
        lived = (stopped_0 - started[0]) + (stopped_1 - started[1])
        assert abs(metered / 1000 - lived) < 2.0, (metered, lived)


def test_a_replica_killed_outright_loses_at_most_what_it_served_since_its_last_read(tmp_path):
    """SIGKILL leaves no time for a last read: what the replica answered after its last sample
    is lost, and nothing more (the runs before and after are exact)."""
    interval = 1.0
    ok = Upstream("ok")
    stack = Stack(tmp_path)
    stack.env["GANTRY_METERING_SECONDS"] = str(interval)
    stack.start()
    answered: list[float] = []  # when each 2xx came back
    stop = threading.Event()

    def load(url: str) -> None:
        while not stop.is_set():
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=2).status_code == 200:
                    answered.append(time.time())
            time.sleep(0.005)

    try:
        tenant = make_org("acme").tenant
        gateway = services.create_gateway(ACTOR, tenant, "edge", {"replicas": 1})
        services.create_backend(ACTOR, tenant, "ok", ok.backend())
        services.create_route(ACTOR, gateway, "ok", route("/", "ok"))
        assert reconcile(gateway.pk).result == "created"
        wait_for(lambda: len(running(gateway)) == 1, timeout=60, interval=0.1,
                 message=lambda: f"the replica running\n{stack.logs()}")  # fmt: skip
        url = Gateway.objects.get(pk=gateway.pk).status["listeners"][0]["url"]
        wait_for(lambda: status_of(url) == 200, timeout=30, interval=0.1, message="served")
        sender = threading.Thread(target=load, args=(url,), daemon=True)
        sender.start()
        time.sleep(3.3)
        victim = running(gateway)[0].pid
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        wait_for(lambda: [r.pid for r in running(gateway)] not in ([], [victim]), timeout=60,
                 interval=0.1, message=lambda: f"restarted\n{stack.logs()}")  # fmt: skip
        time.sleep(3)
        stop.set()
        sender.join(5)
        time.sleep(interval + 0.5)  # the new run's last requests are read
        stack.agent.stop()  # a graceful stop: a last read of the new run
    finally:
        stop.set()
        stack.stop()
        ok.close()

    now = timezone.now()
    rollups.rollup(now - timedelta(hours=2), now + timedelta(hours=1))
    metered = sum(row.responses_2xx for row in UsageHour.objects.all())
    lost = len(answered) - metered
    window = [t for t in answered if killed_at - interval - 0.5 <= t <= killed_at]
    print(
        f"\nSIGKILL: {len(answered)} answered, {metered} metered, {lost} lost; "
        f"{len(window)} answered in the last {interval + 0.5:g} s before the kill"
    )
    assert 0 <= lost <= len(window), (lost, len(window))
    runs = ReplicaIncarnation.objects.order_by("started_at")
    assert [run.stop_reason for run in runs] == ["exited", "agent-stopped"]
