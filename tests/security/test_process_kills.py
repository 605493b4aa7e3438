"""No platform process takes the tenants down: with ``make run`` (scripts/run.sh, its supervisor
and the embedded defaults) and a gateway serving a loopback backend, each of web, worker, beat,
xDS server and runtime agent is SIGKILLed in turn while a client sends requests through the
gateway. Not one request fails, the process is started again (a new pid) and does its job
again: the API answers, a new change is applied, beat sends the periodic heal.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest
import requests

from tests.provisioning.harness import Upstream
from tests.test_make_run import (
    NOT_INHERITED,
    PYTHON,
    READY_TIMEOUT,
    REPO,
    Output,
    free_port,
    http_get,
    http_get_or_none,
    http_send,
    our_processes,
    port_window,
    wait_until,
)

# One ``make run`` for the module, whichever test process runs it.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("make-run-kills")]
BACK_TIMEOUT = 60  # for a killed process to be restarted and do its job again


class Traffic:
    """A client sending requests through the gateway, each on a new connection, until stopped;
    keeps every failure (an exception or a status other than 200)."""

    def __init__(self, url: str):
        self.url, self.sent, self.failures = url, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                response = requests.get(self.url, timeout=5, headers={"Connection": "close"})
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
            except requests.RequestException as error:
                self.failures.append(repr(error))
            self.sent += 1
            time.sleep(0.02)

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


class MakeRun:
    """``scripts/run.sh`` on free ports and a private data dir, and what the tests need of it."""

    def __init__(self, data_dir):
        self.data_dir, self.port = data_dir, free_port()
        self.env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
        self.env.update(
            GANTRY_DATA_DIR=str(data_dir), GANTRY_PORT=str(self.port), PYTHONUNBUFFERED="1",
            GANTRY_XDS_PORT=str(free_port()), GANTRY_LOCAL_PORT_RANGE=port_window(),
            GANTRY_RATELIMIT_PORT=str(free_port()),
            GANTRY_RECONCILE_ALL_SECONDS="2",
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.base}/api/v1/tenants/demo/"
        self.proc = subprocess.Popen(
            [str(REPO / "scripts" / "run.sh")], cwd=REPO, env=self.env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.output = Output(self.proc.stdout)
        self.token = self.url = ""
        self.versions = iter(range(1, 100))

    def wait_for_web(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while http_get_or_none(f"{self.base}/api/v1/") != 200:
            assert self.proc.poll() is None, f"run.sh exited:\n{self.output.tail()}"
            assert time.monotonic() < deadline, f"web not up:\n{self.output.tail()}"
            time.sleep(0.2)
        secrets = (self.data_dir / "dev.env").read_text().splitlines()
        env = {**self.env, **dict(line.split("=", 1) for line in secrets if "=" in line)}
        made = subprocess.run(
            [PYTHON, "manage.py", "create_api_token", "--tenant", "demo", "--user", "admin"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        self.token = made.stdout.strip()

    def pid(self, name: str) -> int:
        """The pid the supervisor last started ``name`` with."""
        found = re.findall(rf"^\S+ {name}\.1 +\| started with pid (\d+)$", self.output.text(),
                           re.MULTILINE)  # fmt: skip
        assert found, f"{name} never started:\n{self.output.tail()}"
        return int(found[-1])

    def envoys(self) -> set[int]:
        """The pids of the gateways' Envoy replicas (not the worker's validators)."""
        replicas = f"{self.data_dir}/runtime/demo/"
        return {pid for pid, cmdline in our_processes(self.data_dir, self.port)
                if "envoy" in cmdline and replicas in cmdline}  # fmt: skip

    def send(self, method: str, path: str, body: dict) -> dict:
        status, answer = http_send(method, self.api + path, self.token, body)
        assert status in (200, 201, 202), (status, answer)
        return answer

    def gateway(self) -> dict:
        return json.loads(http_get(self.api + "gateways/web/", self.token)[1])

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for pid, _ in our_processes(self.data_dir, self.port):  # only what this run started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.output.join(timeout=5)


def route(version: str) -> dict:
    header = {"set": [{"name": "x-version", "value": version}]}
    return {"rules": [{"backendRefs": [{"name": "app"}], "filters": [
        {"type": "ResponseHeaderModifier", "responseHeaderModifier": header}]}]}  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """``make run`` with the README tour's gateway ``web`` serving a loopback backend."""
    app = Upstream("app")
    run = MakeRun(tmp_path_factory.mktemp("make-run"))
    try:
        run.wait_for_web()
        run.send("POST", "gateways/", {"name": "web"})
        run.send("POST", "backends/", {"name": "app", "spec": app.backend()})
        run.send("POST", "gateways/web/routes/", {"name": "all", "spec": route("v0")})
        run.url = wait_until(
            lambda: run.gateway()["status"]["phase"] == "Ready"
            and run.gateway()["status"]["listeners"][0]["url"],
            READY_TIMEOUT, "gateway web Ready", run.output,
        )  # fmt: skip
        # Ready may describe the revision made before the route existed: wait for the route.
        wait_until(
            lambda: requests.get(run.url, timeout=5).headers.get("x-version") == "v0",
            READY_TIMEOUT, "the route served", run.output,
        )  # fmt: skip
        yield run
    finally:
        run.stop()
        app.close()


def change_is_applied(run: MakeRun) -> None:
    """A route change through the API is compiled by a worker, pushed by the xDS server and
    served by the gateway."""
    version = f"v{next(run.versions)}"
    run.send("PATCH", "gateways/web/routes/all/", {"spec": route(version)})

    def served():
        return requests.get(run.url, timeout=5).headers.get("x-version") == version

    wait_until(served, BACK_TIMEOUT, f"route change {version} served", run.output)


def answers_again(run: MakeRun, name: str, since: int) -> None:
    if name == "web":
        wait_until(lambda: http_get(run.api, run.token)[0] == 200, BACK_TIMEOUT,
                   "the API answering", run.output)  # fmt: skip
    elif name == "beat":
        sent = r"beat\.1 +\| .*Sending due task reconcile-all"
        wait_until(lambda: len(re.findall(sent, run.output.text()[since:])) >= 1,
                   BACK_TIMEOUT, "beat sending the heal", run.output)  # fmt: skip
    change_is_applied(run)


def kill_under_traffic(run: MakeRun, name: str) -> Traffic:
    before, envoys = run.pid(name), run.envoys()
    with Traffic(run.url) as traffic:
        time.sleep(0.5)
        mark = len(run.output.text())
        os.kill(before, signal.SIGKILL)
        wait_until(lambda: run.pid(name) != before, BACK_TIMEOUT, f"{name} restarted", run.output)
        answers_again(run, name, mark)
    assert traffic.sent > 20, "the client kept sending"
    assert not traffic.failures, (
        f"{len(traffic.failures)} of {traffic.sent} requests failed: {traffic.failures[:5]}\n"
        f"{run.output.tail()}"
    )
    if name != "agent":
        assert envoys and run.envoys() == envoys, "the gateway's Envoys were never restarted"
    return traffic


@pytest.mark.parametrize("name", ["web", "worker", "beat", "xds"])
def test_killing_a_platform_process_fails_no_request_and_it_comes_back(stack, name):
    kill_under_traffic(stack, name)


def test_killing_the_runtime_agent_fails_no_request_and_the_next_agent_adopts_the_replicas(
    stack,
):
    envoys = stack.envoys()
    assert envoys
    kill_under_traffic(stack, "agent")
    assert stack.envoys() == envoys, "the new agent adopted the running replicas"
    change_is_applied(stack)
