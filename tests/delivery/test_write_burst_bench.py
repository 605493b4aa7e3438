"""``bench/write_burst.py`` at a tiny size, so its machinery (Gantry as ``make run`` starts it,
API clients writing at once, another gateway's changes timed through its Envoy meanwhile)
keeps working between the runs that produce its figures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (make test has it)")
def test_the_benchmark_runs_with_a_small_burst():
    result = subprocess.run(
        [sys.executable, "bench/write_burst.py", "--routes", "12", "--clients", "3",
         "--configurations", "postgres+redis"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {line[:40].strip(): line[40:].split() for line in result.stdout.splitlines()}
    assert 1 <= int(rows["busy: reconciles run"][0]) <= 13  # never more than one per write
    assert float(rows["quiet, idle: p50 (ms)"][0]) > 0
    assert float(rows["busy: last answer → all served (ms)"][0]) >= 0
