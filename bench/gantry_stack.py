"""Gantry as ``make run`` starts it (web, worker, beat, xDS server, runtime agent), in a private
data directory, for benchmarks that go through the real API.

Two configurations: ``embedded`` (SQLite, the filesystem broker, local change notifications:
what a fresh clone runs) and ``postgres+redis`` (a fresh PostgreSQL database and Redis as broker
and notifier; needs DATABASE_URL and REDIS_URL, as ``scripts/with_services.py`` provides).
"""

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SERVICES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "GANTRY_ENV")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Upstream:
    """A keep-alive HTTP server answering 200 with a small JSON body."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                body = json.dumps({"path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        Handler.disable_nagle_algorithm = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def backend(self) -> dict:
        return {"endpoints": [{"ip": {"address": "127.0.0.1", "port": self.port}}]}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class UpstreamProcess:
    """``Upstream`` in a process of its own: a backend that shares an interpreter with the
    worker answers late whenever the reconcile holds the interpreter lock."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--upstream"], stdout=subprocess.PIPE, text=True
        )
        self.port = int(self.process.stdout.readline())

    def backend(self) -> dict:
        return {"endpoints": [{"ip": {"address": "127.0.0.1", "port": self.port}}]}

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _fresh_database(url: str) -> tuple[str, str]:
    """A new database next to the one ``url`` names: (its URL, its name)."""
    import psycopg

    parts = urllib.parse.urlsplit(url)
    name = f"gantry_bench_{os.getpid()}_{random.randrange(1 << 30)}"
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return parts._replace(path=f"/{name}").geturl(), name


def _drop_database(url: str, name: str) -> None:
    import psycopg

    admin = urllib.parse.urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Gantry:
    """``with Gantry("embedded") as gantry:`` — ``gantry.api`` is a session with a token."""

    def __init__(self, configuration: str):
        self.configuration = configuration
        self.directory = Path(tempfile.mkdtemp(prefix="gantry-bench-"))
        self.port = free_port()
        low = random.SystemRandom().randrange(20000, 60000 - 200)
        self.env = {k: v for k, v in os.environ.items() if k not in SERVICES}
        self.env.update(
            GANTRY_DATA_DIR=str(self.directory), GANTRY_PORT=str(self.port),
            GANTRY_XDS_PORT=str(free_port()), GANTRY_LOCAL_PORT_RANGE=f"{low}-{low + 199}",
            PYTHONUNBUFFERED="1", GANTRY_API_RATE="1000000/minute",  # the bench polls hard
        )  # fmt: skip
        self.database = None
        if configuration == "postgres+redis":
            base, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
            if not (base and redis_url):
                raise SystemExit("postgres+redis needs DATABASE_URL and REDIS_URL")
            url, name = _fresh_database(base)
            self.database = (base, name)
            prefix = f"gantry-bench-{os.getpid()}-{random.randrange(1 << 30)}"
            self.env.update(
                DATABASE_URL=url, REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url,
                GANTRY_CACHE_PREFIX=prefix, GANTRY_BROKER_KEY_PREFIX=prefix,
            )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = requests.Session()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Gantry":
        try:
            return self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _start(self) -> "Gantry":
        log = open(self.directory / "run.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(ROOT / "scripts" / "run.sh")], cwd=ROOT, env=self.env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base}/api/v1/", timeout=2).status_code == 200:
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Gantry did not start:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        secrets = dict(
            line.split("=", 1)
            for line in (self.directory / "dev.env").read_text().splitlines()
            if "=" in line
        )
        made = subprocess.run(
            [PYTHON, "manage.py", "create_api_token", "--tenant", "demo", "--user", "admin"],
            cwd=ROOT, env={**self.env, **secrets}, capture_output=True, text=True, check=True,
        )  # fmt: skip
        self.api.headers["Authorization"] = f"Bearer {made.stdout.strip()}"
        self.tenant = f"{self.base}/api/v1/tenants/demo/"
        return self

    def __exit__(self, *exc) -> None:
        if exc and exc[0] is not None:
            print("".join(self.log().splitlines(keepends=True)[-80:]), file=sys.stderr)
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self.database:
            with contextlib.suppress(Exception):
                _drop_database(*self.database)
        import shutil

        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        return (self.directory / "run.log").read_text(errors="replace")

    # -- the API -----------------------------------------------------------------------------
    def call(self, method: str, path: str, body=None, expect=(200, 202, 204)) -> dict:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        response = self.api.request(
            method, self.tenant + path, json=body, headers=headers, timeout=30
        )
        if response.status_code not in expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else {}

    def gateway(self, name: str) -> dict:
        return self.call("GET", f"gateways/{name}/")

    def wait_ready(self, name: str, timeout: float = 60, interval: float = 0.02) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            gateway = self.gateway(name)
            if gateway["status"].get("phase") == "Ready":
                return gateway
            time.sleep(interval)
        raise RuntimeError(f"gateway {name} not Ready within {timeout} s: {gateway['status']}")


def stop_cleanly_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every Gantry started is stopped and its files removed."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def configurations(argument: str | None) -> list[str]:
    if argument:
        return argument.split(",")
    found = ["embedded"]
    if os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"):
        found.append("postgres+redis")
    return found


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def parse_time(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(re.sub(r"Z$", "+00:00", text)).timestamp()


if __name__ == "__main__" and sys.argv[1:] == ["--upstream"]:
    print(Upstream().port, flush=True)
    threading.Event().wait()
