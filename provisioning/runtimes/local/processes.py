"""Starting and stopping one Envoy replica process of the local runtime (no database here).

A replica's files live in ``<runtime dir>/<tenant>/<gateway>-<id>/``: ``bootstrap-<i>.json``
(mode 0600: it holds the gateway's xDS token), ``replica-<i>.log`` (Envoy's output) and
``admin-<i>.address`` (where Envoy's admin interface bound: port 0, so replicas never clash).
"""

import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

LOG_ROTATE_BYTES = 5 * 1024 * 1024


def dying_with_parent(command: list[str]) -> list[str]:
    """``command`` run so that it gets SIGTERM when the thread that started it ends, even on
    SIGKILL (Linux's parent-death signal, set by util-linux ``setpriv``, which then execs the
    command): Envoys go when the agent goes, and no orphan keeps a port. As it is where there
    is no ``setpriv``. Start it from a thread that lives as long as the process should.

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


def _rotate(log: Path) -> None:
    if log.exists() and log.stat().st_size > LOG_ROTATE_BYTES:
        log.replace(log.with_suffix(log.suffix + ".1"))


@dataclass
class Replica:
    """One replica slot: its process when running, and its restart bookkeeping."""

    gateway_id: int
    gateway_key: str
    index: int
    directory: Path
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row without a healthy run
    restarts: int = 0
    restart_at: float = 0.0
    draining_until: float | None = None
    admin_address: str = ""
    reported: dict = field(default_factory=dict)

    @property
    def node_id(self) -> str:
        return f"{self.gateway_key}/{self.index}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"replica-{self.index}.log"

    @property
    def admin_path(self) -> Path:
        return self.directory / f"admin-{self.index}.address"

    @property
    def bootstrap_path(self) -> Path:
        return self.directory / f"bootstrap-{self.index}.json"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, envoy: str, bootstrap: dict, concurrency: int, drain_seconds: float) -> None:
        write_private(self.bootstrap_path, json.dumps(bootstrap))
        self.admin_path.unlink(missing_ok=True)
        _rotate(self.log_path)
        command = [
            envoy,
            "-c", str(self.bootstrap_path),
            "--disable-hot-restart",  # many Envoys on one host; config changes come over xDS
            "--concurrency", str(concurrency),
            "--admin-address-path", str(self.admin_path),
            "--drain-time-s", str(max(1, int(drain_seconds))),
            "--drain-strategy", "immediate",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                dying_with_parent(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        self.started_at = time.monotonic()
        self.admin_address = ""
        self.draining_until = None

    def read_admin_address(self) -> str:
        if not self.admin_address:
            with contextlib.suppress(FileNotFoundError):
                self.admin_address = self.admin_path.read_text().strip()
        return self.admin_address

    def drain(self, seconds: float) -> None:
        """Stop accepting connections; finish the open ones for ``seconds``, then stop."""
        address = self.read_admin_address()
        if address:
            import urllib.request

            try:
                request = urllib.request.Request(
                    f"http://{address}/drain_listeners?graceful", method="POST"
                )
                urllib.request.urlopen(request, timeout=1).close()  # noqa: S310 (our URL)
            except OSError:
                pass
        self.draining_until = time.monotonic() + seconds

    def stop(self, timeout: float = 5.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code
