"""A real ADS server on a background event loop and real Envoys bootstrapped against it."""

import asyncio
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass

from provisioning.envoy import envoy_binary
from provisioning.xds.bootstrap import envoy_bootstrap
from provisioning.xds.server import AggregatedDiscoveryService, Principal, XdsServer, gateway_of
from provisioning.xds.snapshots import InMemorySnapshotStore
from tests.provisioning.harness import free_port


class LoopThread:
    """One asyncio loop in a daemon thread: grpc.aio objects stay on the loop they were made on."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@dataclass(frozen=True)
class AckRecord:
    gateway_key: str
    node_id: str
    type_url: str
    version: str
    error: str | None
    at: float


@dataclass(frozen=True)
class AnyReplicaOf(Principal):
    """A test-only principal for the protocol tests: any replica of one gateway. The platform
    has no such credential (every token it issues is bound to one node id)."""

    node_id: str = ""

    def admits(self, node_id: str) -> bool:
        return gateway_of(node_id) == self.gateway_key


def any_replica(tokens: dict[str, str]):
    """``authenticate`` for tests: token → ``AnyReplicaOf`` its gateway key in ``tokens``."""

    def authenticate(token: str):
        key = tokens.get(token)
        return AnyReplicaOf(key) if key else None

    return authenticate


class XdsFixture:
    """An in-memory store, the ADS service and its server on a free loopback port.

    ``tokens`` maps token → gateway key (any replica of it); every ACK/NACK lands in ``acks``.
    """

    def __init__(self, loop: LoopThread, tokens: dict[str, str]):
        self.loop = loop
        self.tokens = tokens
        self.store = InMemorySnapshotStore()
        self.acks: list[AckRecord] = []
        self.service = AggregatedDiscoveryService(self.store, any_replica(tokens), self._record)
        self.port = free_port()
        self.server: XdsServer | None = None

    def _record(self, gateway_key, node_id, type_url, version, error):
        self.acks.append(
            AckRecord(gateway_key, node_id, type_url, version, error, time.monotonic())
        )

    def start(self):
        self.server = XdsServer(self.service, "127.0.0.1", self.port)
        self.loop.run(self.server.start())

    def stop(self):
        if self.server is not None:
            self.loop.run(self.server.stop(None))
            self.server = None

    def bootstrap(self, gateway_key, replica, token, admin_port, api_type="DELTA_GRPC") -> dict:
        return envoy_bootstrap(
            gateway_key=gateway_key, replica=replica, token=token, xds_address="127.0.0.1",
            xds_port=self.port, admin_port=admin_port, api_type=api_type,
        )  # fmt: skip

    def connected(self, gateway_key) -> set[str]:
        return self.loop.run(_call(self.service.connected, gateway_key))

    def acks_for(self, node_id, type_url=None) -> list[AckRecord]:
        wanted = [a for a in list(self.acks) if a.node_id == node_id]
        return [a for a in wanted if type_url is None or a.type_url == type_url]


async def _call(function, *args):
    return function(*args)


class Envoy:
    """A running Envoy process and its admin interface."""

    def __init__(self, process, admin_port: int, log_path: str):
        self.process = process
        self.admin_port = admin_port
        self.log_path = log_path

    def admin(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.read().decode()

    def dynamic_listener_names(self) -> set[str]:
        dump = json.loads(self.admin("/config_dump?resource=dynamic_listeners"))
        return {c["name"] for c in dump.get("configs", []) if "active_state" in c}

    def dynamic_cluster_names(self) -> set[str]:
        dump = json.loads(self.admin("/config_dump?resource=dynamic_active_clusters"))
        return {c["cluster"]["name"] for c in dump.get("configs", [])}

    def log(self) -> str:
        with open(self.log_path) as handle:
            return handle.read()


@contextmanager
def running_envoy(bootstrap: dict, wait_ready: bool = True, timeout: float = 30):
    """An Envoy on ``bootstrap``; waits until it is ready (initial xDS fetch done) or, with
    ``wait_ready=False``, only until its admin interface answers."""
    admin_port = bootstrap["admin"]["address"]["socket_address"]["port_value"]
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "bootstrap.json")
        with open(config, "w") as handle:
            json.dump(bootstrap, handle)
        log_path = os.path.join(tmp, "envoy.log")
        log = open(log_path, "w")  # noqa: SIM115
        process = subprocess.Popen(
            [envoy_binary(), "--config-path", config, "--use-dynamic-base-id",
             "--concurrency", "1", "--log-level", "info"],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
        )  # fmt: skip
        envoy = Envoy(process, admin_port, log_path)
        try:
            _wait_admin(envoy, "/ready" if wait_ready else "/server_info", timeout)
            yield envoy
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def _wait_admin(envoy: Envoy, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if envoy.process.poll() is not None:
            raise RuntimeError("envoy exited:\n" + envoy.log()[-3000:])
        try:
            envoy.admin(path)
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"envoy admin {path} did not answer:\n" + envoy.log()[-3000:])


def wait_for(predicate, timeout: float = 10, interval: float = 0.005, message=""):
    """Polls ``predicate`` until it returns something truthy; returns that value. ``message``
    may be a callable, called at the time-out (logs read then, not when the wait began)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout} s waiting for {detail or predicate}")
        time.sleep(interval)
