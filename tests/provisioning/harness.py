"""Real Envoy and real upstream servers for traffic tests (loopback only, bounded)."""

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from provisioning.envoy import envoy_binary, static_bootstrap
from provisioning.ir.build import DesiredState, gateway_ir
from provisioning.translate import translate


def free_port() -> int:
    with socket.socket() as sock:
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

    def backend(self) -> dict:
        return {"endpoints": [{"ip": {"address": "127.0.0.1", "port": self.port}}]}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Upstream(LoopbackServer):
    """An HTTP/1.1 server answering JSON about the request it got; remembers every request.

    ``X-Delay-Ms`` makes it wait before answering (for timeouts); ``status`` is the status it
    answers with (a failing endpoint answers 503).
    """

    def __init__(self, name: str, status: int = 200):
        self.name = name
        self.status = status
        self.requests: list[dict] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                seen = {"backend": upstream.name, "method": self.command, "path": self.path,
                        "headers": joined_headers(self.headers)}  # fmt: skip
                upstream.requests.append(seen)
                time.sleep(int(self.headers.get("X-Delay-Ms", "0")) / 1000)
                body = json.dumps(seen).encode()
                self.send_response(upstream.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Server", "upstream")
                self.send_header("X-Debug", "upstream-debug")
                self.end_headers()
                # The proxy may have given up waiting (timeout tests).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

            def log_message(self, *args):
                pass

        self._serve(Handler)


@contextmanager
def running_envoy(state: DesiredState, timeout: float = 30):
    """Envoy serving the state's config; yields {listener port: the port it really binds}."""
    ports = {listener["port"]: free_port() for listener in state.spec["listeners"]}
    resources = translate(gateway_ir(state), address="127.0.0.1", port_map=ports)
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
