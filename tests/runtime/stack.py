"""The platform's processes as ``make run`` starts them (xDS server, runtime agent, Celery worker),
as real subprocesses against the test database, each of which a test can kill and start again."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.provisioning.harness import free_port

ROOT = Path(__file__).resolve().parent.parent.parent


def database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"


class Process:
    def __init__(self, name: str, command: list[str], env: dict, log: Path):
        self.name, self.command, self.env, self.log = name, command, env, log
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Process":
        handle = open(self.log, "ab")  # noqa: SIM115 (the child keeps it)
        self.popen = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        handle.close()
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash: no clean-up runs."""
        if self.popen and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)

    def stop(self, timeout: float = 15) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        return self.popen.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Stack:
    """``xds`` and ``agent`` (and ``worker`` when asked) for one test, logs in ``directory``."""

    def __init__(
        self,
        directory: Path,
        queue: str | None = None,
        poll_interval: float = 1.0,
        database: str | None = None,
        worker_env: dict | None = None,
    ):
        self.directory = directory
        self.xds_port = free_port()
        self.queue = queue
        self.env = {
            **os.environ,
            "DATABASE_URL": database or database_url(),
            "GANTRY_XDS_PORT": str(self.xds_port),
            "GANTRY_RUNTIME_DIR": str(directory / "runtime"),
            "GANTRY_LOCAL_PORT_RANGE": settings.GANTRY_LOCAL_PORT_RANGE,
            "GANTRY_LOCAL_DRAIN_SECONDS": "1",
            "GANTRY_XDS_POLL_INTERVAL": str(poll_interval),
            "PYTHONUNBUFFERED": "1",
        }
        if queue:
            self.env |= {"CELERY_BROKER_URL": settings.REDIS_URL, "GANTRY_CELERY_QUEUE": queue}
        manage = [sys.executable, "manage.py"]
        self.xds = Process("xds", [*manage, "xds_server"], self.env, directory / "xds.log")
        self.agent = Process("agent", [*manage, "runtime_agent"], self.env, directory / "agent.log")
        self.worker = Process(
            "worker",
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
             "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO"],
            {**self.env, **(worker_env or {})}, directory / "worker.log",
        )  # fmt: skip

    def processes(self) -> list[Process]:
        return [self.xds, self.agent] + ([self.worker] if self.queue else [])

    def start(self) -> "Stack":
        for process in self.processes():
            process.start()
        self.wait_for_xds()
        return self

    def wait_for_xds(self, timeout: float = 20) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.xds_port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"xds_server did not listen:\n{self.xds.output()[-3000:]}")

    def stop(self) -> None:
        for process in reversed(self.processes()):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.output()[-4000:]}" for p in self.processes())
