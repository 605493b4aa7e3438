"""A real Celery worker turns an API write into a new revision: the write enqueues on commit, the
worker compiles, validates with Envoy and stores. No eager mode. Over Redis; and over the
embedded broker, where a change survives the worker being killed while it held the task."""

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import requests

from provisioning import revisions
from provisioning.models import ConfigRevision
from tenants.roles import Role
from tests.delivery.helpers import (
    BACKEND_SPEC,
    route_spec,
    start_worker,
    stop_worker,
    use_queue,
    wait_for,
)

BASE = "/api/v1/tenants/acme/"


def current_routes() -> list[str]:
    revision = ConfigRevision.objects.filter(gateway__name="edge", current=True).first()
    return [r["name"] for r in revisions.desired_state_of(revision)["routes"]] if revision else []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_route_created_through_the_api_becomes_a_valid_revision(org, settings, tmp_path):
    queue = f"gantry-test-{os.urandom(4).hex()}"
    settings.GANTRY_CELERY_QUEUE = queue  # what producers send to; the worker's env says the same
    log = tmp_path / "worker.log"
    worker = start_worker(log, queue)
    try:
        editor = org.client(Role.EDITOR)
        assert editor.post(BASE + "gateways/", {"name": "edge"}, format="json").status_code == 202
        assert (
            editor.post(
                BASE + "backends/", {"name": "api", "spec": BACKEND_SPEC}, format="json"
            ).status_code
            == 202
        )
        assert wait_for(lambda: ConfigRevision.objects.filter(gateway__name="edge").exists(), 30)
        before = ConfigRevision.objects.filter(gateway__name="edge").count()

        started = time.monotonic()
        response = editor.post(
            BASE + "gateways/edge/routes/", {"name": "api", "spec": route_spec()}, format="json"
        )
        assert response.status_code == 202
        assert wait_for(lambda: current_routes() == ["api"], 10)
        elapsed = time.monotonic() - started
        revision = ConfigRevision.objects.get(gateway__name="edge", current=True)
        assert revision.state == "valid" and revision.number > before
        assert elapsed < 10
    finally:
        output = stop_worker(worker, log)
    assert "provisioning.reconcile_gateway" in output


@pytest.fixture
def filesystem_broker(tmp_path, settings, monkeypatch):
    """This process publishes to the embedded broker (``filesystem://``) under ``tmp_path``, on
    a queue of its own, as ``make run``'s web does; yields the workers' environment for it."""
    from config.celery_app import app

    data_dir = tmp_path / "data"
    broker = data_dir / "broker"
    options = {
        "data_folder_in": str(broker / "queue"),
        "data_folder_out": str(broker / "queue"),
        "control_folder": str(broker / "control"),
        "claims_folder": str(broker / "claims"),
        "polling_interval": 0.05,
    }
    for folder in ("queue", "control", "claims"):
        (broker / folder).mkdir(parents=True)
    queue = f"gantry-test-{os.urandom(4).hex()}"  # kombu remembers bindings per process
    use_queue(settings, queue)
    saved = app.conf.broker_url, app.conf.broker_transport_options

    def use(url, transport_options):
        # New pools from the new configuration (kombu keeps the others, open, for their URL).
        app.conf.broker_url, app.conf.broker_transport_options = url, transport_options
        app._pool = None
        app.amqp._producer_pool = None

    monkeypatch.setenv("CELERY_BROKER_URL", "filesystem://")  # Celery reads it before its conf
    use("filesystem://", options)
    try:
        yield {"CELERY_BROKER_URL": "filesystem://", "GANTRY_DATA_DIR": str(data_dir),
               "GANTRY_CELERY_QUEUE": queue}  # fmt: skip
    finally:
        use(*saved)


def gated_envoy(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An Envoy that, for each validation, leaves a marker file and waits while the gate file
    is absent: the test holds a validation until the worker is dead, whatever the machine."""
    from provisioning.envoy import envoy_binary

    markers, gate, script = tmp_path / "validations", tmp_path / "gate", tmp_path / "gated-envoy"
    markers.mkdir()
    gate.touch()
    script.write_text(
        f"#!/bin/sh\ntouch {markers}/$$\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n"
        f'exec {envoy_binary()} "$@"\n'
    )
    script.chmod(0o755)
    return script, markers, gate


def programmed(gateway: dict) -> dict:
    return next(c for c in gateway["status"]["conditions"] if c["type"] == "Programmed")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_change_accepted_before_a_worker_crash_is_applied_and_never_shown_programmed_before(
    org, tmp_path, filesystem_broker
):
    from provisioning import readiness
    from provisioning.models import GatewayOperation
    from tests.provisioning.harness import Upstream
    from tests.runtime.stack import Process, Stack
    from tests.xds.harness import wait_for as wait

    envoy, markers, gate = gated_envoy(tmp_path)
    stack = Stack(tmp_path).start()  # the xDS server and the runtime agent
    worker_env = {**stack.env, **filesystem_broker, "GANTRY_ENVOY_BINARY": str(envoy),
                  "GANTRY_VALIDATOR": "cold"}  # fmt: skip
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
               "--without-mingle", "--without-gossip", "--without-heartbeat",
               "--loglevel", "INFO"]  # fmt: skip
    worker = Process("worker", command, worker_env, tmp_path / "worker.log").start()
    upstream = Upstream("app")
    editor = org.client(Role.EDITOR)

    def gateway() -> dict:
        return editor.get(BASE + "gateways/edge/").json()

    def logs() -> str:
        return f"{stack.logs()}\n--- worker\n{worker.output()[-4000:]}"

    try:
        assert editor.post(BASE + "gateways/", {"name": "edge"}, format="json").status_code == 202
        backend = {"name": "app", "spec": upstream.backend()}
        assert editor.post(BASE + "backends/", backend, format="json").status_code == 202
        route = {"name": "all", "spec": {"rules": [{"backendRefs": [{"name": "app"}]}]}}
        assert editor.post(BASE + "gateways/edge/routes/", route, format="json").status_code == 202
        wait(lambda: programmed(gateway())["status"] == "True", timeout=60, interval=0.1,
             message=lambda: f"Programmed\n{logs()}")  # fmt: skip
        wait(lambda: not GatewayOperation.objects.filter(state="running").exists(),
             timeout=30, message="the first reconciles done")  # fmt: skip

        # The change: a second listener. Its validation is held; the worker dies holding it.
        before, generation = set(markers.iterdir()), gateway()["generation"]
        gate.unlink()
        listeners = [{"name": "http", "protocol": "HTTP", "port": 80},
                     {"name": "alt", "protocol": "HTTP", "port": 8080}]  # fmt: skip
        patch = editor.patch(BASE + "gateways/edge/", {"spec": {"listeners": listeners}},
                             format="json")  # fmt: skip
        assert patch.status_code == 202, patch.content
        wait(lambda: set(markers.iterdir()) - before, timeout=30, interval=0.02,
             message=lambda: f"the change's validation\n{logs()}")  # fmt: skip
        os.killpg(worker.popen.pid, signal.SIGKILL)  # a crash: no clean-up runs
        worker.popen.wait(10)

        # The replicas still run (and ACK) the old revision: whatever refreshes the status
        # (an xDS event, the agent), the new generation is not reported programmed.
        readiness.refresh(ConfigRevision.objects.get(current=True).gateway_id)
        state = gateway()
        assert state["generation"] == generation + 1
        assert state["status"]["observedGeneration"] == generation
        assert programmed(state)["status"] == "False", programmed(state)
        assert f"generation {generation + 1} is not compiled" in programmed(state)["message"]

        gate.touch()
        worker.start()  # takes over the dead worker's message
        wait(lambda: len(gateway()["status"]["listeners"]) == 2
             and all(item.get("url") for item in gateway()["status"]["listeners"])
             and programmed(gateway())["status"] == "True",
             timeout=60, interval=0.1, message=lambda: f"the change applied\n{logs()}")  # fmt: skip
        state = gateway()
        assert state["status"]["observedGeneration"] == generation + 1
        assert programmed(state)["observedGeneration"] == generation + 1
        for listener in state["status"]["listeners"]:
            assert requests.get(listener["url"] + "x", timeout=5).status_code == 200
        assert "redelivering 1 message(s)" in worker.output()
    finally:
        worker.stop()
        stack.stop()
        upstream.close()
