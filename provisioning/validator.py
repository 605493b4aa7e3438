"""Validating compiled config in a warm Envoy: the verdict in milliseconds, not an Envoy start.

``envoy --mode validate`` starts a whole Envoy for every check (~120 ms here, most of a route
change's propagation time). Instead each process that validates keeps one Envoy running,
attached to an ADS server of its own; a check pushes the resources to it and its ACK or NACK is
the verdict: the same config ingestion a gateway replica runs. Its listeners are pushed with
``bind_to_port: false``, so it never takes a port or a connection, and it only ever serves this
process.

The channel is private. The ADS server and the Envoy's admin are Unix sockets in a directory of
mode 0700 made for each Envoy start (no TCP port a gateway could be pointed at). Each start has
a fresh random token and a node id carrying a fresh nonce; the server admits exactly one stream,
the first to present both (the Envoy this process started), refuses any other with
UNAUTHENTICATED, and takes verdicts from that stream only.

Anything that prevents a verdict (the Envoy died, no answer within ``timeout``) raises
``Unavailable``; ``provisioning.envoy.validate`` then falls back to ``--mode validate``.
"""

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from provisioning.discovery.assignments import assignments, discovery_refs
from provisioning.envoy import Unavailable, _inline_routes
from provisioning.runtimes.local.processes import dying_with_parent, write_private
from provisioning.translate import Resources
from provisioning.translate.types import CLUSTER, LISTENER
from provisioning.xds.bootstrap import envoy_bootstrap
from provisioning.xds.resources import ResourceError
from provisioning.xds.server import AggregatedDiscoveryService, Principal, XdsServer
from provisioning.xds.snapshots import InMemorySnapshotStore

log = logging.getLogger(__name__)

KEY = "gantry/validator"


def unbound(resources: Resources) -> Resources:
    """The resources with every listener built but not bound, and its routes inlined (as
    ``--mode validate`` gets them).

    Not over RDS: a check whose route names differ from the last check's (another gateway, a
    changed port) gets an RDS answer for the removal of the old routes, carrying the new
    version, before Envoy has even asked for the new ones; that ACK was taken for the verdict
    and let an invalid route through. Inlined, a bad route is a NACK of the listener."""
    routes = {route["name"]: route for route in resources.routes}
    listeners = []
    for listener in resources.listeners:
        inlined = _inline_routes(listener, routes)
        inlined["@type"] = listener["@type"]
        inlined["bind_to_port"] = False
        listeners.append(inlined)
    return Resources(tuple(listeners), (), resources.clusters, resources.secrets)


class WarmValidator:
    """One validating Envoy and its private ADS server, started on first use and again after
    the Envoy dies; ``check`` is serialised (one candidate config at a time)."""

    def __init__(self, envoy: str, timeout: float = 10.0, start_timeout: float = 20.0):
        self.envoy, self.timeout, self.start_timeout = envoy, timeout, start_timeout
        self._lock = threading.Lock()
        self._answers = threading.Condition()
        self._acks: dict[str, tuple[str, str | None]] = {}
        self._versions = itertools.count(1)
        self._process: subprocess.Popen | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: XdsServer | None = None
        self._directory: Path | None = None
        self._store = InMemorySnapshotStore()
        self._token = ""
        self._node_id = ""
        self._claimed = True  # no stream is admitted until an Envoy is started
        self._connected = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------
    def _authenticate(self, token: str) -> Principal | None:
        """The one stream of the Envoy this process started: the first with this start's token
        (runs on the server's event loop, so no two calls interleave)."""
        if self._claimed or not hmac.compare_digest(token, self._token):
            return None
        self._claimed = True
        return Principal(KEY, self._node_id)

    def _on_ack(self, gateway_key, node_id, type_url, version, error) -> None:
        if node_id != self._node_id:
            return
        with self._answers:
            self._acks[type_url] = (version, error)
            self._answers.notify_all()

    def _on_connection(self, gateway_key, node_id, connected) -> None:
        if connected and node_id == self._node_id:
            self._connected.set()

    def _start(self) -> None:
        self.close()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True, name="validator").start()
        self._directory = Path(tempfile.mkdtemp(prefix="gantry-validator-"))  # mode 0700
        nonce = secrets.token_hex(16)
        self._token, self._node_id = secrets.token_urlsafe(32), f"{KEY}/{nonce}"
        self._claimed = False
        service = AggregatedDiscoveryService(
            self._store, self._authenticate, self._on_ack, self._on_connection
        )
        xds_socket = self._directory / "xds.sock"
        self._server = XdsServer(service, f"unix:{xds_socket}")
        asyncio.run_coroutine_threadsafe(self._server.start(), self._loop).result(10)
        bootstrap = envoy_bootstrap(
            gateway_key=KEY, replica=nonce, token=self._token, xds_socket=str(xds_socket),
            admin_socket=str(self._directory / "admin.sock"),
        )  # fmt: skip
        path = self._directory / "bootstrap.json"
        write_private(path, json.dumps(bootstrap))
        self._connected.clear()
        with open(self._directory / "envoy.log", "wb") as output:
            self._process = subprocess.Popen(
                dying_with_parent([
                    self.envoy, "-c", str(path), "--disable-hot-restart", "--concurrency", "1",
                    "--drain-time-s", "0", "--drain-strategy", "immediate",
                    "--log-level", "warning"]),
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                cwd=self._directory,  # where a relative access log path opens
            )  # fmt: skip
        if not self._connected.wait(self.start_timeout):
            raise Unavailable(f"the validating Envoy did not connect:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self._directory / "envoy.log").read_text(errors="replace")[-2000:]
        return ""

    def close(self) -> None:
        self._claimed = True
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            self._process.wait(10)
            self._process = None
        if self._server is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result(5)
            self._server = None
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
        with self._answers:
            self._acks.clear()

    def ensure_started(self) -> None:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()

    # -- checks ----------------------------------------------------------------------------
    def check(self, resources: Resources) -> tuple[bool, str]:
        """(accepted, Envoy's message). Raises ``Unavailable`` when there is no verdict."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()
            version = f"check-{next(self._versions)}"
            pushed = unbound(resources)
            expected = {LISTENER, CLUSTER}
            # EDS clusters wait for their endpoints (and hold up the listeners) until they
            # get an assignment: give each one without endpoints.
            empty, _ = assignments(discovery_refs(pushed.clusters), {}, set(), None)
            try:
                self._store.set(KEY, version, pushed, empty)
            except ResourceError as error:
                return False, str(error)
            deadline = time.monotonic() + self.timeout
            with self._answers:
                while True:
                    answers = {t: self._acks.get(t) for t in expected}
                    rejected = [a[1] for a in answers.values() if a and a[0] == version and a[1]]
                    if rejected:
                        return False, "\n".join(rejected)[-4000:]
                    if all(a and a[0] == version for a in answers.values()):
                        return True, ""
                    left = deadline - time.monotonic()
                    if left <= 0 or self._process.poll() is not None:
                        self.close()
                        raise Unavailable(f"no verdict within {self.timeout} s")
                    self._answers.wait(min(left, 0.5))


_validator: WarmValidator | None = None
_validator_lock = threading.Lock()


def warm_validator(envoy: str) -> WarmValidator:
    """This process's validator (made on first use; after a fork, the child makes its own)."""
    global _validator
    with _validator_lock:
        if _validator is None or _validator.envoy != envoy:
            _validator = WarmValidator(envoy)
        return _validator
