#!/usr/bin/env python3
"""Runs every process of a Procfile in the foreground, and keeps each one running.

``make run``'s supervisor (``scripts/run.sh``): one process dying never stops the others (every
tenant's Envoy keeps serving while, say, the web restarts). A process that exits, whatever
the reason, is started again after 1 s, then 2, 4 … up to 30 s while it keeps failing; the
delay starts again at 1 s once it has run for a minute. Output is one line at a time, each
prefixed with the time and ``<name>.1 |``.

Ctrl-C (SIGINT) or SIGTERM stops them all: SIGTERM to each process's group, then SIGKILL to
what is left after ``--grace`` seconds. Each process runs in a session of its own, so a
terminal's Ctrl-C reaches only the supervisor, which stops them in order; and gets SIGTERM
should the supervisor itself die (Linux's parent-death signal, through util-linux
``setpriv``), so nothing outlives it.

Standard library only: it starts before anything else and must not fail with the others.
"""

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

FIRST_DELAY, MAX_DELAY = 1.0, 30.0
STABLE_AFTER = 60.0  # seconds of running after which a process's restart delay starts over
TICK = 0.1
_print_lock = threading.Lock()
_width = [8]  # of the widest label


def say(name: str, text: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    with _print_lock:
        sys.stdout.write(f"{stamp} {name:<{_width[0]}} | {text}\n")
        sys.stdout.flush()


def parse_procfile(text: str) -> list[tuple[str, str]]:
    """``name: command`` lines, in order; blank lines and ``#`` comments skipped."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_-]+):\s*(.+)", line.strip())
        if match is None:
            raise SystemExit(f"Procfile line {number}: expected 'name: command', got {line!r}")
        entries.append((match.group(1), match.group(2)))
    if not entries:
        raise SystemExit("the Procfile names no process")
    return entries


def shell_command(command: str) -> str:
    """What ``sh -c`` runs: the shell expands ${VARIABLES} as a Procfile expects, then, for a
    simple command, becomes it (``exec``), so the pid shown and signalled is the program's."""
    if re.search(r"[;&|<>()`\n]|\$\(", command):
        return command
    return f"exec {command}"


def next_delay(previous: float, ran_for: float) -> float:
    """The wait before the next start: doubling while the process keeps failing, from 1 s to
    30 s; back to 1 s after a run of ``STABLE_AFTER`` seconds."""
    if previous <= 0 or ran_for >= STABLE_AFTER:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


@dataclass
class Child:
    """One Procfile entry and the process currently running it (if any)."""

    name: str
    command: str
    popen: subprocess.Popen | None = None
    started: float = 0.0
    delay: float = 0.0  # the last restart delay
    restart_at: float | None = 0.0  # when to start it (None: running, or stopping)
    readers: list[threading.Thread] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name}.1"

    def start(self) -> None:
        argv = ["/bin/sh", "-c", shell_command(self.command)]
        setpriv = shutil.which("setpriv")
        if setpriv:
            argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started, self.restart_at = time.monotonic(), None
        reader = threading.Thread(target=self._relay, args=(self.popen.stdout,), daemon=True)
        reader.start()
        self.readers = [reader]
        say(self.label, f"started with pid {self.popen.pid}")

    def _relay(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            say(self.label, raw.decode(errors="replace").rstrip("\n"))
        stream.close()

    def signal_group(self, signum: int) -> None:
        """``signum`` to the process's group: gunicorn's and Celery's children go too."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signum)

    def check(self) -> None:
        """Notices an exit and schedules the restart."""
        if self.popen is None or self.popen.poll() is None:
            return
        code, ran_for = self.popen.returncode, time.monotonic() - self.started
        # What it started is left alone: gunicorn's and Celery's children notice their parent
        # is gone and exit; Envoy replicas keep serving until the next agent adopts them.
        self.delay = next_delay(self.delay, ran_for)
        self.restart_at = time.monotonic() + self.delay
        self.popen = None
        say(self.label, f"exited with code {code} after {ran_for:.1f}s; restarting in "
            f"{self.delay:g}s")  # fmt: skip


class Supervisor:
    def __init__(self, entries: list[tuple[str, str]], grace: float):
        self.children = [Child(name, command) for name, command in entries]
        _width[0] = max(len("system"), *(len(child.label) for child in self.children))
        self.grace = grace
        self.stopping: str | None = None

    def on_signal(self, signum, frame) -> None:
        if self.stopping is None:
            self.stopping = signal.Signals(signum).name

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        while self.stopping is None:
            now = time.monotonic()
            for child in self.children:
                child.check()
                if child.restart_at is not None and now >= child.restart_at:
                    child.start()
            time.sleep(TICK)
        say("system", f"{self.stopping} received, stopping every process")
        self.stop()
        return 0

    def stop(self) -> None:
        running = [child for child in self.children if child.popen is not None]
        for child in running:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and any(c.popen.poll() is None for c in running):
            time.sleep(TICK)
        for child in running:
            if child.popen.poll() is None:
                say(child.label, f"still running after {self.grace:g}s: SIGKILL")
            child.signal_group(signal.SIGKILL)  # the process or what it left in its group
            child.popen.wait()
            say(child.label, f"stopped (code {child.popen.returncode})")
        for child in running:
            for reader in child.readers:
                reader.join(timeout=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--procfile", default="Procfile")
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds from SIGTERM to SIGKILL when stopping"
    )
    options = parser.parse_args(argv)
    with open(options.procfile) as handle:
        entries = parse_procfile(handle.read())
    return Supervisor(entries, options.grace).run()


if __name__ == "__main__":
    sys.exit(main())
