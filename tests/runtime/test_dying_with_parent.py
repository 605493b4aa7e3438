"""The warm validator's Envoy goes when the process that started it goes, even on SIGKILL: no
orphaned validating Envoy is left behind. (Gateway replicas, on the contrary, outlive the
runtime agent: see test_agent_restart.py.)"""

import os
import signal
import subprocess
import sys
import time

from provisioning.runtimes.local.processes import dying_with_parent

PARENT = """
import subprocess, threading, time
from provisioning.runtimes.local.processes import dying_with_parent

threading.Thread(target=time.sleep, args=(60,), daemon=True).start()  # a threaded parent
child = subprocess.Popen(dying_with_parent(["sleep", "60"]))
print(child.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie waiting for its reaper is gone too
        return handle.read().split(") ")[1][0] != "Z"


def test_the_child_is_terminated_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd())  # fmt: skip
    child = int(parent.stdout.readline())
    time.sleep(0.3)
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(5)
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_the_command_is_run_unchanged_after_the_prefix():
    command = dying_with_parent(["envoy", "--version"])
    assert command[-2:] == ["envoy", "--version"]
