"""What usage metering costs a gateway: throughput and p99 through a Gantry gateway's Envoy with
its counters read as the runtime agent reads them, beside the same Envoy never read, in one run.

    .venv/bin/python bench/metering_overhead.py [--seconds 6] [--rounds 7]

Variants (each its own Envoy with one worker, started alone, loaded with wrk -t2 -c32 over
keep-alive; the upstream is a private nginx answering 200 with 1 KiB; the config is the one
Gantry compiles for a gateway with one route):

- ``metering off``: no admin reads, and stats flushed on Envoy's default timer;
- ``metering, every 10 s``: the replica bootstrap's ``stats_flush_on_admin`` and the agent's
  read (``provisioning.metering.STATS_URL``: counters and the request-time histogram's buckets)
  every 10 s (``GANTRY_METERING_SECONDS``' default), parsed as the agent does;
- ``metering, every 1 s``: the same, ten times as often;
- ``no access log``: ``metering off`` without the access log. Every other variant writes each
  request's JSON line to a file, as a local replica does (``provisioning/translate/access_log.py``):
  this one shows what the access log itself costs.

Prints medians over the rounds (rounds interleave the variants, each round starting with the
next one) and the ratios to ``metering off``, with Envoy's CPU time per request (from
/proc). Goal (usage issue): ≤ 2 % throughput.
"""

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from policy_throughput import NGINX, ROOT, cpu_seconds, free_port, gantry, wrk  # noqa: E402

from provisioning import metering  # noqa: E402
from provisioning.envoy import envoy_binary, static_bootstrap  # noqa: E402


def access_logged_to(resources, path: str | None):
    """``resources`` with every access log writing to ``path`` (None: no access log)."""

    def walk(value):
        if isinstance(value, dict):
            found = {}
            for key, item in value.items():
                if key == "access_log":
                    if path is not None:
                        found[key] = [
                            {**log, "typed_config": {**log["typed_config"], "path": path}}
                            for log in item
                        ]
                    continue
                found[key] = walk(item)
            return found
        if isinstance(value, list | tuple):
            return type(value)(walk(item) for item in value)
        return value

    return dataclasses.replace(resources, **{
        field.name: walk(getattr(resources, field.name)) for field in dataclasses.fields(resources)
    })  # fmt: skip


class MeteredEnvoy:
    """Envoy on the gateway's config; with ``every`` seconds, its counters read that often."""

    def __init__(self, resources, directory: Path, every: float | None):
        self.admin, self.every, self.reads = free_port(), every, 0
        bootstrap = static_bootstrap(resources, admin_port=self.admin)
        if every is not None:
            bootstrap["stats_flush_on_admin"] = True
        config = directory / f"envoy-{self.admin}.json"
        config.write_text(json.dumps(bootstrap))
        self.process = subprocess.Popen(
            [envoy_binary(), "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
             "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("Envoy did not become ready")
        if every is not None:
            self._reader.start()

    def _read(self) -> None:
        url = f"http://127.0.0.1:{self.admin}{metering.STATS_URL}"
        while not self._stop.wait(self.every):
            with urllib.request.urlopen(url, timeout=5) as answer:
                metering.parse_stats(answer.read().decode(), "bench.edge")
            self.reads += 1

    def stop(self) -> None:
        self._stop.set()
        self.process.terminate()
        self.process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    subprocess.run([str(ROOT / "scripts" / "ensure-bench-tools.sh")], check=True)
    directory = Path(tempfile.mkdtemp(prefix="gantry-metering-bench-"))
    upstream = free_port()
    (directory / "nginx.conf").write_text(
        NGINX.format(prefix=directory, port=upstream, body="x" * 1024)
    )
    nginx = subprocess.Popen(
        ["nginx", "-p", str(directory), "-c", str(directory / "nginx.conf"),
         "-e", str(directory / "error.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    variants = {"metering off": None, "metering, every 10 s": 10.0, "metering, every 1 s": 1.0,
                "no access log": None}  # fmt: skip
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    try:
        time.sleep(0.5)
        names = list(variants)
        for round_number in range(args.rounds):
            # Each round starts with another variant: no variant always runs first or last.
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                every = variants[name]
                port = free_port()
                log = None if name == "no access log" else str(directory / f"access-{port}.log")
                resources = access_logged_to(gantry(port, upstream, []), log)
                envoy = MeteredEnvoy(resources, directory, every)
                try:
                    before = cpu_seconds(envoy.process.pid)
                    rps, p99, requests = wrk(f"http://127.0.0.1:{port}/", args.seconds, {})
                    cpu = (cpu_seconds(envoy.process.pid) - before) * 1e6 / requests
                    results[name].append((rps, p99, cpu))
                    if every is not None and every < args.seconds and envoy.reads == 0:
                        raise RuntimeError(f"{name}: the counters were never read")
                finally:
                    envoy.stop()
                    if log is not None:
                        Path(log).unlink(missing_ok=True)  # some 60 MB a run
            print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        nginx.terminate()
        nginx.wait(10)

    def median(name: str, index: int) -> float:
        return statistics.median(run[index] for run in results[name])

    base_rps, base_p99, base_cpu = (median("metering off", i) for i in range(3))
    print(f"\n{'variant':24}{'req/s':>10}{'vs off':>8}{'p99 ms':>9}{'added p99':>11}"
          f"{'Envoy CPU/req':>15}{'vs off':>8}")  # fmt: skip
    for name in results:
        rps, p99, cpu = (median(name, i) for i in range(3))
        print(f"{name:24}{rps:10.0f}{rps / base_rps:8.3f}{p99:9.2f}{p99 - base_p99:+11.2f}"
              f"{cpu:12.1f} µs{cpu / base_cpu:8.3f}")  # fmt: skip
    ratio = median("metering, every 10 s", 0) / base_rps
    ok = ratio >= 0.98
    print(f"\ngoal (≥ 0.98× throughput with the default read interval): "
          f"{'met' if ok else 'NOT met'} ({ratio:.3f}×)")  # fmt: skip
    logged = base_rps / median("no access log", 0)
    print(f"the access log (a JSON line a request, to a file): {logged:.3f}× the throughput "
          f"without it")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
