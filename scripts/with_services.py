#!/usr/bin/env python3
"""Run a command with a real PostgreSQL and Redis available (used by `make test`).

Usage: python scripts/with_services.py -- <command...> | --check

Servers already running on the standard local ports are reused and never stopped; otherwise a
private throwaway one is started on a free port and removed afterwards, so tests always run
against the real backends instead of skipping or faking them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

HOST = "127.0.0.1"
# Hidden overrides, only for the "is it already running?" probe (lets us test the private path).
PG_PROBE_PORT = int(os.environ.get("WITH_SERVICES_PG_PROBE_PORT", "5432"))
REDIS_PROBE_PORT = int(os.environ.get("WITH_SERVICES_REDIS_PROBE_PORT", "6379"))
READY_TIMEOUT = 30.0
T = TypeVar("T")

_child: subprocess.Popen | None = None
_cleaning_up = False


class ServiceError(Exception):
    """A service could not be found or started; the message says what to do."""


def log(message: str) -> None:
    """Report on stderr so the command's stdout stays clean for pipes."""
    print(f"with_services: {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 20) -> str:
    """Last lines of a server log, to make start-up failures diagnosable."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a helper quietly; its output is only shown if it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ServiceError(f"`{shlex.join(cmd)}` failed ({result.returncode}):\n{output}")
    return result


def free_port() -> int:
    """Let the kernel pick an unused port (a tiny race remains; good enough for tests)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def redis_reply(port: int, command: bytes) -> bytes:
    """Send one inline command over a raw socket; the short replies used here fit one read."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(command + b"\r\n")
            return sock.recv(4096)
    except OSError:
        return b""


def redis_pong(port: int) -> bool:
    """True only for a real, password-less Redis (a bare open port is not enough)."""
    return redis_reply(port, b"PING").startswith(b"+PONG")


def postgres_ready(port: int) -> bool:
    """TCP plus, when psql exists, a real trust-auth login as `postgres` (never prompts)."""
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        psql = shutil.which("psql")
        if psql is None:
            return True
        cmd = [psql, "-Xw", "-h", HOST, "-p", str(port), "-U", "postgres", "-d", "postgres"]
        env = {**os.environ, "PGCONNECT_TIMEOUT": "3"}
        result = subprocess.run(
            [*cmd, "-Atc", "select 1"], capture_output=True, text=True, env=env, timeout=10
        )
        return result.returncode == 0 and result.stdout.strip() == "1"
    except (OSError, subprocess.TimeoutExpired):
        return False


def wait_for(ready, what: str, log_path: Path, proc: subprocess.Popen | None = None) -> None:
    """Poll until `ready()`; fail early if the server process died, with its log tail."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready():
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with {proc.returncode}:\n{tail(log_path)}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} not ready after {READY_TIMEOUT:.0f}s:\n{tail(log_path)}")
        time.sleep(0.2)


def require(find: Callable[[], T | None], package: str, missing: str) -> T:
    """Find a server binary, apt-installing its package first if needed (root only)."""
    found = find()
    if found is None:
        apt_install(package, missing)
        found = find()
    if found is None:
        raise ServiceError(f"{package} was installed, but {missing} is still not found")
    return found


def apt_install(package: str, missing: str) -> None:
    """Install a Debian package, which is only possible (and only attempted) as root."""
    if os.geteuid() != 0:
        raise ServiceError(
            f"{missing} not found and not running as root, so cannot apt-get install {package}. "
            f"Install it yourself, start the service on its standard port, or set the URL."
        )
    log(f"{missing} not found; installing Debian package {package!r}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
        if subprocess.run(cmd, env=env, stdout=sys.stderr).returncode != 0:
            raise ServiceError(f"`{shlex.join(cmd)}` failed; see its output above")


def find_pg_bindir() -> Path | None:
    """Debian keeps initdb/pg_ctl off PATH in /usr/lib/postgresql/<ver>/bin; prefer newest."""

    def version(bindir: Path) -> list[int]:
        return [int(part) for part in bindir.parent.name.split(".") if part.isdigit()]

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    if on_path := shutil.which("pg_ctl"):
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def as_postgres_user(tmpdir: Path) -> list[str]:
    """PostgreSQL refuses to run as root: hand the temp dir to `postgres` and use runuser."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        run(["useradd", "--system", "--no-create-home", "postgres"])
    shutil.chown(tmpdir, user="postgres", group=pwd.getpwnam("postgres").pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def start_postgres(stack: contextlib.ExitStack) -> int:
    """Start a throwaway cluster on a free port; its stop is registered before it starts."""
    bindir = require(find_pg_bindir, "postgresql", "initdb/pg_ctl")
    tmpdir = Path(tempfile.mkdtemp(prefix="with_services_pg_"))
    stack.callback(shutil.rmtree, tmpdir, ignore_errors=True)
    prefix = as_postgres_user(tmpdir)
    data, log_path, port = tmpdir / "data", tmpdir / "server.log", free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
    run([*prefix, *initdb, "--encoding=UTF8", "--locale=C", "--nosync"], cwd=tmpdir)
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data)]
    stop = [*pg_ctl, "-m", "fast", "-w", "stop"]
    stack.callback(subprocess.run, stop, capture_output=True, cwd=tmpdir)
    # fsync off: the cluster is deleted afterwards, so durability only costs test time.
    options = f"-c listen_addresses={HOST} -p {port} -k {shlex.quote(str(tmpdir))} -c fsync=off"
    start = [*pg_ctl, "-l", str(log_path), "-o", options, "-w", "-t", str(int(READY_TIMEOUT))]
    try:
        run([*start, "start"], cwd=tmpdir)
    except ServiceError as exc:
        raise ServiceError(f"{exc}\nserver log:\n{tail(log_path)}") from None
    wait_for(lambda: postgres_ready(port), "PostgreSQL", log_path)
    return port


def start_redis(stack: contextlib.ExitStack) -> int:
    """Start redis-server as our child, in its own session so a terminal ^C can't kill it early."""
    server = require(lambda: shutil.which("redis-server"), "redis-server", "redis-server")
    tmpdir = Path(tempfile.mkdtemp(prefix="with_services_redis_"))
    stack.callback(shutil.rmtree, tmpdir, ignore_errors=True)
    log_path, port = tmpdir / "redis.log", free_port()
    args = ["--save", "", "--appendonly", "no", "--bind", HOST, "--port", str(port)]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [server, *args, "--daemonize", "no"],
            cwd=tmpdir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack.callback(stop_process, proc)
    # Match on our working dir, not just PONG: if another Redis grabbed the port first, ours
    # exits and we must not mistake the other one for it.
    ours = os.path.realpath(tmpdir).encode()
    wait_for(lambda: ours in redis_reply(port, b"CONFIG GET dir"), "redis-server", log_path, proc)
    return port


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate politely, then kill, so no orphan server outlives the run."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class Service:
    """How to detect, start and address one backend."""

    name: str
    url_var: str
    probe_port: int
    ready: Callable[[int], bool]
    start: Callable[[contextlib.ExitStack], int]
    url: Callable[[int], str]

    def provide(self, stack: contextlib.ExitStack, env: dict[str, str], check: bool) -> None:
        """Reuse an explicit URL or a running server; otherwise start (or, on --check, describe)."""
        where = f"{HOST}:{self.probe_port}"
        if env.get(self.url_var):
            log(f"{self.name} from {self.url_var} (given, detection skipped)")
        elif self.ready(self.probe_port):
            env[self.url_var] = self.url(self.probe_port)
            log(f"{self.name} on {where} (already running)")
        elif check:
            log(f"{self.name}: nothing usable on {where}; would start a private one")
        else:
            port = self.start(stack)
            env[self.url_var] = self.url(port)
            log(f"{self.name} on {HOST}:{port} (started privately, will stop afterwards)")


def run_command(command: list[str], env: dict[str, str]) -> int:
    """Run the command in the foreground; signals reach it via `on_signal`."""
    global _child
    _child = subprocess.Popen(command, env=env)
    try:
        return _child.wait()
    finally:
        _child = None


def terminal_sent_it(signum: int) -> bool:
    """A terminal ^C already reached the command (same foreground group): don't double it."""
    try:
        return signum == signal.SIGINT and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def on_signal(signum: int, frame) -> None:
    """Forward to the command; before it runs, abort (cleanup still runs); during cleanup, wait."""
    if _child is not None and _child.poll() is None:
        if not terminal_sent_it(signum):
            _child.send_signal(signum)
    elif _cleaning_up:
        log("cleaning up, please wait")
    else:
        raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    global _cleaning_up
    check = argv == ["--check"]
    command = argv[1:] if argv[:1] == ["--"] else []
    if not check and not command:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    run_id = secrets.token_hex(4)
    # Redis is shared: every key this run writes carries its own prefix, and only those go.
    env = {
        **os.environ,
        "GANTRY_TEST_RUN_ID": run_id,
        "GANTRY_CACHE_PREFIX": f"gantry-test-{run_id}",
        "GANTRY_BROKER_KEY_PREFIX": f"gantry-test-{run_id}:",
    }
    services = [
        Service("PostgreSQL", "DATABASE_URL", PG_PROBE_PORT, postgres_ready, start_postgres,
                lambda port: f"postgres://postgres@{HOST}:{port}/gantry_{run_id}"),
        Service("Redis", "REDIS_URL", REDIS_PROBE_PORT, redis_pong, start_redis,
                lambda port: f"redis://{HOST}:{port}/0"),
    ]  # fmt: skip
    try:
        with contextlib.ExitStack() as stack:
            try:
                for service in services:
                    service.provide(stack, env, check)
                # Celery in tests uses the real Redis broker, under this run's key prefix.
                env.setdefault("CELERY_BROKER_URL", env.get("REDIS_URL", ""))
                if check:
                    return 0
                returncode = run_command(command, env)
                return returncode if returncode >= 0 else 128 - returncode
            finally:
                _cleaning_up = True  # the stack now stops what we started
    except ServiceError as exc:
        log(f"error: {exc}")
        return 2
    except FileNotFoundError as exc:  # e.g. the command itself does not exist
        log(f"error: {exc}")
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
