"""``platform/``: Kubernetes restarts any Gantry process that died or hangs. Every Deployment has
a liveness probe fit for what it runs; the web and xDS servers, which Services send traffic
to, a readiness probe too. Beat's probe (its schedule file kept fresh) is run against a real
beat."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kubernetes.test_platform import OVERLAYS, build, by_kind

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=OVERLAYS)
def containers(request) -> dict[str, dict]:
    deployments = by_kind(build(request.param), "Deployment")
    return {name: d["spec"]["template"]["spec"]["containers"][0] for name, d in deployments.items()}


def test_every_process_is_restarted_when_dead_or_hung(containers):
    assert set(containers) == {
        "gantry-web", "gantry-worker", "gantry-beat", "gantry-xds", "gantry-discovery",
        "gantry-ratelimit",
    }  # fmt: skip
    for name, container in containers.items():
        assert "livenessProbe" in container, name
    for name in ("gantry-web", "gantry-xds", "gantry-ratelimit"):
        assert "readinessProbe" in containers[name], name
    assert containers["gantry-web"]["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "inspect ping" in " ".join(
        containers["gantry-worker"]["livenessProbe"]["exec"]["command"]
    )
    assert containers["gantry-xds"]["livenessProbe"]["tcpSocket"]["port"] == "grpc"
    assert containers["gantry-ratelimit"]["livenessProbe"]["tcpSocket"]["port"] == "grpc"
    assert "--heartbeat" in containers["gantry-discovery"]["command"]


def test_the_discovery_probe_reads_the_watchers_heartbeat(containers, tmp_path):
    """The heartbeat file the command line names (the watcher's own test shows it is touched):
    fresh passes, missing or two minutes old fails."""
    container = containers["gantry-discovery"]
    heartbeat = container["command"][container["command"].index("--heartbeat") + 1]
    command = container["livenessProbe"]["exec"]["command"]
    code = command[2].replace(heartbeat, str(tmp_path / "alive"))

    def check() -> int:
        return subprocess.run([sys.executable, "-c", code], timeout=30).returncode

    assert check() == 1, "no heartbeat yet"
    (tmp_path / "alive").touch()
    assert check() == 0
    stale = time.time() - 121
    os.utime(tmp_path / "alive", (stale, stale))
    assert check() == 1


@pytest.mark.slow
def test_the_beat_probe_passes_on_a_running_beat_and_fails_on_a_stale_one(containers, tmp_path):
    probe = containers["gantry-beat"]["livenessProbe"]
    command = probe["exec"]["command"]
    assert command[0] == "python"
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}  # fmt: skip
    env.update(GANTRY_DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1")

    def check() -> int:
        return subprocess.run([sys.executable, *command[1:]], env=env, timeout=30).returncode

    assert check() == 1, "no schedule file: no beat"
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("celerybeat-schedule*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert check() == 0, "a running beat passes"
    finally:
        beat.terminate()
        beat.wait(20)
    stale = time.time() - 11 * 60
    for path in tmp_path.glob("celerybeat-schedule*"):
        os.utime(path, (stale, stale))
    assert check() == 1, "a schedule untouched for 11 minutes: a hung beat"
    assert probe["periodSeconds"] * probe["failureThreshold"] <= 600
