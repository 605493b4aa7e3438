"""``bench/many_gateways.py`` at a tiny size, so its machinery (a fresh database, real xDS
servers, worker and web processes, simulated replicas, the fan-out and reconcile_all
measurements) keeps working between the runs that produce its figures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (make test has it)")
def test_the_benchmark_runs_at_two_gateways():
    result = subprocess.run(
        [sys.executable, "bench/many_gateways.py", "--sizes", "2", "--servers", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = {line[:30].strip(): line[30:].split() for line in result.stdout.splitlines()}
    assert lines["xDS streams"] == ["4"]
    assert lines["stream errors"] == ["0"]
    assert float(lines["fan-out max (ms)"][0]) > 0
    # Measured from the API's answer: a replica can hold the change before the client has
    # read the answer (negative at this size, where the heal holds nobody up).
    assert abs(float(lines["fan-out in reconcile_all p50"][0])) < 60_000
