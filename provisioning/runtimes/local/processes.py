"""Starting, stopping and adopting one Envoy replica process of the local runtime (no database
here).

A replica's files live in ``<runtime dir>/<tenant>/<gateway>-<id>/`` (mode 0700):
``bootstrap-<i>.json`` (mode 0600: it holds the replica's xDS token), ``replica-<i>.log``
(Envoy's output), ``work-<i>/`` (Envoy's working directory, mode 0700, holding its access log
``access.log``: the compiled config names it relatively, the same for every replica),
``admin-<i>.sock`` (Envoy's admin, a Unix socket of mode 0600: never a TCP
port a gateway could reach) and ``replica-<i>.pid`` (pid and start time, so that an agent
started later can adopt the process).

Replicas are started in a session of their own and without a parent-death signal: they outlive
the agent when it crashes or is killed, and the next agent adopts them (``adoptable``).
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from provisioning.runtimes.local.admin import admin_request
from provisioning.translate.access_log import LOCAL_PATH as ACCESS_LOG

LOG_ROTATE_BYTES = 5 * 1024 * 1024  # the default of GANTRY_LOCAL_LOG_MAX_BYTES
# sun_path holds 108 bytes with its NUL; longer socket paths go to a short directory instead.
MAX_SOCKET_PATH = 100


def dying_with_parent(command: list[str]) -> list[str]:
    """``command`` run so that it gets SIGTERM when the thread that started it ends, even on
    SIGKILL (Linux's parent-death signal, set by util-linux ``setpriv``, which then execs the
    command): the warm validator's Envoy goes when its process goes. As it is where there is no
    ``setpriv``. Start it from a thread that lives as long as the process should.

    Not a ``preexec_fn``: that forks a threaded process and runs code before exec (gRPC's fork
    handlers, the dynamic loader), which now and then hung the child before it ran Envoy.
    Without it, Python starts the child with vfork and exec straight away."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _rotate(log: Path, max_bytes: int) -> bool:
    """Renames the log to ``<name>.1`` (replacing the older one) once it is over ``max_bytes``."""
    try:
        if log.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    log.replace(log.with_suffix(log.suffix + ".1"))
    return True


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot, ``/proc/<pid>/stat`` field 22), or None
    when there is no such process or it is a zombie. With the pid it names one process for
    good: a pid reused later has another start time."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # fields[0] is field 3 (the state); field 22 is fields[19].
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def command_line(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


class Started:
    """A replica process this agent started (a child: its exit code is known)."""

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen
        self.pid = popen.pid
        self.start_time = start_time(popen.pid)

    def running(self) -> bool:
        return self.popen.poll() is None

    @property
    def exit_code(self) -> int | None:
        return self.popen.returncode

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signum)

    def wait(self, timeout: float) -> bool:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


class Adopted:
    """A replica process an earlier agent started: watched through ``/proc`` (it is not our
    child, so its exit code is never known)."""

    exit_code = None

    def __init__(self, pid: int, started: int):
        self.pid, self.start_time = pid, started

    def running(self) -> bool:
        return start_time(self.pid) == self.start_time

    def signal(self, signum: int) -> None:
        if self.running():  # never signal a process that merely reuses the pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True


@dataclass
class Replica:
    """One replica slot: its process when running, and its restart bookkeeping."""

    gateway_id: int
    gateway_key: str
    index: int
    directory: Path
    process: Started | Adopted | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row without a healthy run
    restarts: int = 0
    restart_at: float = 0.0
    draining_until: float | None = None
    admin_ready: bool = False
    log_max_bytes: int = LOG_ROTATE_BYTES
    reported: dict = field(default_factory=dict)
    # Metering: this run's ReplicaIncarnation, the next sample's number, when it was last read.
    incarnation: uuid.UUID | None = None
    seq: int = 0
    metered_at: float = 0.0
    access_read_at: float = 0.0  # when its access log was last read

    @property
    def node_id(self) -> str:
        return f"{self.gateway_key}/{self.index}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"replica-{self.index}.log"

    @property
    def work_directory(self) -> Path:
        return self.directory / f"work-{self.index}"

    @property
    def access_log_path(self) -> Path:
        return self.work_directory / ACCESS_LOG

    @property
    def admin_socket(self) -> Path:
        path = self.directory / f"admin-{self.index}.sock"
        if len(str(path)) <= MAX_SOCKET_PATH:
            return path
        # Long tenant and gateway names: a short name in the runtime directory's "admin/".
        return self.directory.parent.parent / "admin" / f"{self.gateway_id}-{self.index}.sock"

    @property
    def bootstrap_path(self) -> Path:
        return self.directory / f"bootstrap-{self.index}.json"

    @property
    def pid_path(self) -> Path:
        return self.directory / f"replica-{self.index}.pid"

    def alive(self) -> bool:
        return self.process is not None and self.process.running()

    def start(self, envoy: str, bootstrap: dict, concurrency: int, drain_seconds: float) -> None:
        """Starts Envoy as a new incarnation (``self.incarnation``, also in the pid file)."""
        self.incarnation, self.seq, self.metered_at = uuid.uuid4(), 0, 0.0
        write_private(self.bootstrap_path, json.dumps(bootstrap))
        self.admin_socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.admin_socket.unlink(missing_ok=True)
        _rotate(self.log_path, self.log_max_bytes)
        self.work_directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        command = [
            envoy,
            "-c", str(self.bootstrap_path),
            # Envoy's own log goes to a file it reopens on /reopen_logs (rotation while it runs);
            # its stdout and stderr (anything before logging starts, a crash) go there too.
            "--log-path", str(self.log_path),
            "--file-flush-interval-msec", "1000",  # the log API shows lines within a second
            "--disable-hot-restart",  # many Envoys on one host; config changes come over xDS
            "--concurrency", str(concurrency),
            "--drain-time-s", str(max(1, int(drain_seconds))),
            "--drain-strategy", "immediate",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            # A session of its own: signals to the agent's process group (a terminal's Ctrl-C,
            # a supervisor killing the group) do not reach it; the agent stops it itself.
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_directory,  # where the access log's relative path opens
                start_new_session=True,
            )
        self.process = Started(popen)
        self._write_pid()
        self.started_at = time.monotonic()
        self.admin_ready = False
        self.draining_until = None

    def _write_pid(self) -> None:
        record = {
            "pid": self.process.pid,
            "start_time": self.process.start_time,
            "gateway_id": self.gateway_id,
            "gateway_key": self.gateway_key,
            "index": self.index,
            "incarnation": str(self.incarnation) if self.incarnation else None,
        }
        write_private(self.pid_path, json.dumps(record))

    def admin(self, method: str, url: str, timeout: float = 1.0) -> tuple[int, str]:
        return admin_request(str(self.admin_socket), method, url, timeout)

    def check_admin(self) -> bool:
        """Whether the admin answers (once it does, Envoy has started)."""
        if not self.admin_ready and self.admin_socket.exists():
            with contextlib.suppress(OSError):
                self.admin_ready = self.admin("GET", "/ready")[0] in (200, 503)
        return self.admin_ready

    def rotate_log(self) -> bool:
        """Rotates the log and the access log once over ``log_max_bytes``, while Envoy runs:
        rename, then ``/reopen_logs`` so Envoy writes new files (its stdout, still open on the
        old log, only carries a crash's last words). The access log's reader finishes the
        renamed file before it reads the new one (``access_logs.Tail``)."""
        if not self.admin_ready:
            return False
        rotated = _rotate(self.log_path, self.log_max_bytes)
        rotated = _rotate(self.access_log_path, self.log_max_bytes) or rotated
        if not rotated:
            return False
        with contextlib.suppress(OSError):
            self.admin("POST", "/reopen_logs")
        return True

    def drain(self, seconds: float) -> None:
        """Stop accepting connections; finish the open ones for ``seconds``, then stop."""
        with contextlib.suppress(OSError):
            self.admin("POST", "/drain_listeners?graceful")
        self.draining_until = time.monotonic() + seconds

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stops the process (SIGTERM, then SIGKILL after ``timeout``); its exit code, None
        when unknown (an adopted process) or when nothing ran."""
        process = self.process
        if process is None:
            return None
        if process.running():
            process.signal(signal.SIGTERM)
            if not process.wait(timeout):
                process.signal(signal.SIGKILL)
                process.wait(10)
        self.process = None
        self.pid_path.unlink(missing_ok=True)
        self.admin_socket.unlink(missing_ok=True)
        return process.exit_code


def _is_replica(pid: int, bootstrap: Path) -> bool:
    """Whether the process runs Envoy on this bootstrap (and not something that got the pid)."""
    argv = command_line(pid)
    if not argv or not Path(argv[0]).name.startswith("envoy"):
        return False
    return any(a == "-c" and b == str(bootstrap) for a, b in zip(argv, argv[1:], strict=False))


def adoptable(runtime_dir: Path) -> list[Replica]:
    """The replicas an earlier agent left running: each pid file whose process still runs with
    the recorded start time and is an Envoy on that replica's bootstrap. Stale pid files (the
    process went, or its pid now belongs to another process) are removed."""
    found = []
    for pid_path in sorted(runtime_dir.glob("*/*/replica-*.pid")):
        try:
            record = json.loads(pid_path.read_text())
            replica = Replica(
                int(record["gateway_id"]), str(record["gateway_key"]), int(record["index"]),
                pid_path.parent,
            )  # fmt: skip
            pid, started = int(record["pid"]), record["start_time"]
        except (OSError, ValueError, KeyError, TypeError):
            pid_path.unlink(missing_ok=True)
            continue
        if (
            pid_path != replica.pid_path
            or started is None
            or start_time(pid) != started
            or not _is_replica(pid, replica.bootstrap_path)
        ):
            pid_path.unlink(missing_ok=True)
            continue
        replica.process = Adopted(pid, started)
        replica.started_at = time.monotonic()
        with contextlib.suppress(KeyError, TypeError, ValueError):
            replica.incarnation = uuid.UUID(record["incarnation"])
        found.append(replica)
    return found
