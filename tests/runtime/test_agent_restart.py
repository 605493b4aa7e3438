"""Envoy replicas outlive the runtime agent: killed (SIGKILL, as a crash), it leaves every
gateway serving; the next agent adopts the running replicas (same processes, no restart) and
supervises them as its own. A graceful stop still stops them all.
"""

import json
import os
import signal
import threading
import time

import pytest
import requests

from gateways import services
from provisioning.models import LocalReplica
from provisioning.reconcile import reconcile
from provisioning.runtimes.local.processes import Adopted, adoptable, start_time
from tests.delivery.helpers import ACTOR
from tests.runtime.stack import Process
from tests.runtime.test_local_runtime import alive, make_gateway, phase_is, pids, url_of
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Traffic:
    """Requests through the gateway, back to back, in a thread; counts what failed."""

    def __init__(self, url: str):
        self.url, self.sent, self.failed = url, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    status = session.get(self.url, timeout=5).status_code
                    if status != 200:
                        self.failed.append(status)
                except requests.RequestException as error:
                    self.failed.append(repr(error))
                self.sent += 1

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def states(gateway) -> list[str]:
    return list(
        LocalReplica.objects.filter(gateway=gateway)
        .order_by("index")
        .values_list("state", flat=True)
    )


def test_killing_the_agent_leaves_replicas_serving_and_a_new_agent_adopts_them(stack, upstream):
    gateway = make_gateway(upstream, replicas=2)
    wait_for(lambda: phase_is(gateway, "Ready", 2), timeout=30, interval=0.05,
             message=lambda: f"Ready\n{stack.logs()}")  # fmt: skip
    wait_for(lambda: states(gateway) == ["running", "running"], timeout=10, message="running")
    before = pids(gateway)
    with Traffic(url_of(gateway) + "through") as traffic:
        time.sleep(0.5)
        stack.agent.kill()
        time.sleep(1.5)  # no agent at all for a while
        assert all(alive(pid) for pid in before)
        stack.agent.start()
        wait_for(lambda: "adopted" in stack.agent.output(), timeout=20,
                 message=lambda: f"adoption\n{stack.logs()}")  # fmt: skip
        time.sleep(1.5)  # the new agent supervises a few ticks under traffic
    assert traffic.sent > 50 and traffic.failed == [], (traffic.sent, traffic.failed[:5])
    assert pids(gateway) == before and all(alive(pid) for pid in before)
    replicas = LocalReplica.objects.filter(gateway=gateway).order_by("index")
    assert [r.restarts for r in replicas] == [0, 0]
    assert all(r.state == "running" for r in replicas)
    assert "restart" not in stack.agent.output().split("adopted")[-1].lower()

    # The adopted replicas are supervised as before: scaling down drains and stops one.
    gateway = services.patch_gateway_spec(ACTOR, gateway, {"replicas": 1})
    reconcile(gateway.pk)
    wait_for(lambda: not alive(before[1]), timeout=15, message="the scaled-down replica stops")
    wait_for(lambda: phase_is(gateway, "Ready", 1), timeout=10, message="Ready with one")
    assert alive(before[0]) and requests.get(url_of(gateway), timeout=5).status_code == 200

    # An adopted replica that dies is restarted; its exit code is unknown, and said so.
    os.kill(before[0], signal.SIGKILL)
    wait_for(lambda: (now := pids(gateway)) and now[0] != before[0], timeout=15,
             message=lambda: f"restarted\n{stack.logs()}")  # fmt: skip
    restarted = LocalReplica.objects.get(gateway=gateway, index=0)
    assert restarted.restarts == 1 and restarted.last_exit_code is None
    assert "exited (exit code unknown: adopted process)" in stack.agent.output()

    # A graceful stop (SIGTERM, as `make run`'s Ctrl-C) stops every replica.
    survivor = pids(gateway)[0]
    stack.agent.stop()
    wait_for(lambda: not alive(survivor), timeout=10, message="replicas stopped with the agent")


def test_a_second_agent_waits_for_the_first_and_then_adopts_its_replicas(stack, upstream):
    gateway = make_gateway(upstream, replicas=1)
    wait_for(lambda: phase_is(gateway, "Ready", 1), timeout=30, interval=0.05,
             message=lambda: f"Ready\n{stack.logs()}")  # fmt: skip
    before = pids(gateway)
    second = Process("agent-2", stack.agent.command, stack.env, stack.directory / "agent-2.log")
    second.start()
    try:
        wait_for(lambda: "another agent runs" in second.output(), timeout=20,
                 message=lambda: second.output())  # fmt: skip
        time.sleep(1)
        assert pids(gateway) == before and "started" not in second.output()
        stack.agent.kill()
        wait_for(lambda: "adopted acme/edge/0" in second.output(), timeout=10,
                 message=lambda: second.output())  # fmt: skip
        assert pids(gateway) == before and alive(before[0])
    finally:
        second.stop()
    wait_for(lambda: not alive(before[0]), timeout=10, message="stopped with the second agent")


def test_a_pid_file_naming_a_reused_pid_or_another_program_is_not_adopted(tmp_path):
    directory = tmp_path / "acme" / "edge-1"
    directory.mkdir(parents=True)
    me = os.getpid()
    record = {"pid": me, "start_time": start_time(me), "gateway_id": 1,
              "gateway_key": "acme/edge", "index": 0}  # fmt: skip
    # This process is alive with that start time, but it is no Envoy on that bootstrap.
    (directory / "replica-0.pid").write_text(json.dumps(record))
    # The pid of a process that started at another time: a reused pid.
    (directory / "replica-1.pid").write_text(
        json.dumps({**record, "index": 1, "start_time": start_time(me) - 1})
    )
    assert adoptable(tmp_path) == []
    assert list(directory.glob("*.pid")) == []  # stale records are dropped
    assert not Adopted(me, start_time(me) - 1).running()
