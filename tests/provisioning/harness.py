"""Real Envoy and real upstream servers for traffic tests (loopback only, bounded)."""

import contextlib
import hashlib
import json
import os
import random
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from provisioning.envoy import envoy_binary, static_bootstrap
from provisioning.ir.build import DesiredState, gateway_ir
from provisioning.translate import translate

# Ports for test listeners come from below the kernel's ephemeral range (32768 and up), where
# no outgoing connection takes them between the check and Envoy's bind; each test process (xdist
# worker) has its own slice and never hands out a port twice. Test runs side by side on one
# machine (each with its own GANTRY_TEST_RUN_ID) mostly get different slices too: a port a test
# frees for a moment (an xDS server restarted on the same port) is not taken by the other run.
_PORTS_LOW, _PORTS_HIGH = 21000, 32000
_RUN_LANES = 4
_handed_out: set[int] = set()
_next_port: list[int] = []


def _my_slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    run_id = os.environ.get("GANTRY_TEST_RUN_ID", "")
    lane = int(hashlib.sha256(run_id.encode()).hexdigest(), 16) % _RUN_LANES if run_id else 0
    size = (_PORTS_HIGH - _PORTS_LOW) // (max(count, 1) * _RUN_LANES)
    start = _PORTS_LOW + (index * _RUN_LANES + lane) * size
    return range(start, start + size)


def _runtime_window() -> range:
    """The local runtime's own port window of this process (see tests/conftest.py)."""
    from django.conf import settings

    low, high = (int(part) for part in settings.GANTRY_LOCAL_PORT_RANGE.split("-"))
    return range(low, high + 1)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    ports = _my_slice()
    if not _next_port:
        _next_port.append(ports.start + random.SystemRandom().randrange(len(ports)))
    window = _runtime_window()
    for _ in range(len(ports)):
        port = _next_port[0]
        _next_port[0] = ports.start + (port + 1 - ports.start) % len(ports)
        if port not in _handed_out and port not in window and _bindable(port):
            _handed_out.add(port)
            return port
    with socket.socket() as sock:  # every port of the slice used: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def joined_headers(headers) -> dict[str, str]:
    """Repeated header lines joined with commas (RFC 9110: the same meaning)."""
    return {k.lower(): ",".join(headers.get_all(k)) for k in dict.fromkeys(headers.keys())}


class LoopbackServer:
    """A threaded HTTP server on a free loopback port, as a gateway backend."""

    def _serve(self, handler) -> None:
        handler.disable_nagle_algorithm = True  # else each keep-alive answer waits ~40 ms
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _serve_recorded(self, answer, **seen_extra) -> None:
        """Serves every method with ``answer(handler, seen)`` after reading the request's body
        and appending ``seen`` (method, path, headers joined, and ``seen_extra``) to
        ``self.requests``."""
        self.requests: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                seen = {**seen_extra, "method": self.command, "path": self.path,
                        "headers": joined_headers(self.headers)}  # fmt: skip
                recorder.requests.append(seen)
                answer(self, seen)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

            def log_message(self, *args):
                pass

        self._serve(Handler)

    def backend(self) -> dict:
        return {"endpoints": [{"ip": {"address": "127.0.0.1", "port": self.port}}]}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict) -> None:
    """An answer with a Content-Length; a client that gave up (timeout tests) is no error."""
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        handler.wfile.write(body)


class Upstream(LoopbackServer):
    """An HTTP/1.1 server answering JSON about the request it got; remembers every request.

    ``X-Delay-Ms`` makes it wait before answering (for timeouts); ``status`` is the status it
    answers with (a failing endpoint answers 503).
    """

    def __init__(self, name: str, status: int = 200):
        self.name = name
        self.status = status

        def answer(handler, seen):
            time.sleep(int(handler.headers.get("X-Delay-Ms", "0")) / 1000)
            headers = {"Content-Type": "application/json", "Server": "upstream",
                       "X-Debug": "upstream-debug"}  # fmt: skip
            send(handler, self.status, json.dumps(seen).encode(), headers)

        self._serve_recorded(answer, backend=name)


@contextmanager
def running_envoy(state: DesiredState, timeout: float = 30, rate_limit=None, ports=None):
    """Envoy serving the state's config; yields {listener port: the port it really binds}.
    ``rate_limit``: the rate limit service its global limits ask (a ``RateLimitService``)."""
    ports = ports or {listener["port"]: free_port() for listener in state.spec["listeners"]}
    ir = replace(gateway_ir(state), rate_limit_service=rate_limit)
    resources = translate(ir, address="127.0.0.1", port_map=ports)
    admin = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "bootstrap.json")
        with open(config, "w") as handle:
            json.dump(static_bootstrap(resources, admin_port=admin), handle)
        log = open(os.path.join(tmp, "envoy.log"), "w")  # noqa: SIM115
        process = subprocess.Popen(
            [envoy_binary(), "--config-path", config, "--use-dynamic-base-id",
             "--concurrency", "1", "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_ready(admin, process, timeout, os.path.join(tmp, "envoy.log"))
            yield ports
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def _wait_ready(admin: int, process, timeout: float, log_path: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("envoy exited:\n" + _tail(log_path))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("envoy did not become ready:\n" + _tail(log_path))


def _tail(path: str) -> str:
    with open(path) as handle:
        return handle.read()[-3000:]
