"""What a global rate limit costs: a gateway's Envoy with no limit, with a local limit, and with
a global limit asking the rate limit service (``manage.py ratelimit_server``, counting in
Redis), one and two service processes, side by side in one run.

    .venv/bin/python bench/global_rate_limit.py [--seconds 5] [--rounds 5]

Each variant is its own Envoy with one worker, loaded with wrk -t2 -c32 over keep-alive (as
bench/policy_throughput.py) against a private nginx answering 200; the limits are high enough
never to refuse, so every request does the full work (the global one: a gRPC call to the
service and a Redis INCRBY + EXPIRE). Also measured: p99 with one client sending one request
after another (the latency a request pays, without queueing), and the service's CPU time per
request. Needs Redis (REDIS_URL, default redis://127.0.0.1:6379/0).

Prints medians over the rounds (rounds interleave the variants) and the ratios to the
no-limit config. The goal (issue: "a service that keeps up with Envoy") is read as: the
global variant's throughput ratio and its added p99, printed with where the Python service
stops keeping up.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("GANTRY_CACHE_PREFIX", f"gantry-bench-{os.getpid()}")

from bench.policy_throughput import (  # noqa: E402 (sets Django up first)
    NGINX,
    Envoy,
    cpu_seconds,
    free_port,
    measure,
)
from gateways.validation.policies import validate_policy_spec  # noqa: E402
from provisioning.compile import compile_gateway  # noqa: E402
from provisioning.ir.build import DesiredState  # noqa: E402

GATEWAY = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}
NEVER = {"limit": {"requests": 4_000_000_000, "unit": "Hour"}}


def policy(rate_limit: dict) -> dict:
    spec = validate_policy_spec("BackendTrafficPolicy", {"targetRefs": [GATEWAY],
                                                         "rateLimit": rate_limit},
                                "edge", ["http"])  # fmt: skip
    return {"name": "limits", "kind": "BackendTrafficPolicy", "spec": spec}


LOCAL = policy({"type": "Local", "local": {"rules": [NEVER]}})
GLOBAL = policy({"type": "Global", "global": {"rules": [NEVER]}})


def gantry(port: int, upstream: int, policies: list[dict]):
    """The config Gantry compiles for a local gateway with one route (and ``policies``)."""
    state = DesiredState(
        tenant="bench", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": "all", "spec": {"rules": [{"backendRefs": [{"name": "app"}]}]}}],
        backends={"app": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": upstream}}]}},
        policies=policies,
    )  # fmt: skip
    return compile_gateway(state, address="127.0.0.1", port_map={80: port},
                           rate_limit_host="127.0.0.1")  # fmt: skip


class Service:
    """``processes`` rate limit service processes sharing one port (SO_REUSEPORT)."""

    def __init__(self, directory: Path, processes: int):
        self.port = free_port()
        command = [sys.executable, "manage.py", "ratelimit_server", "--address", "127.0.0.1",
                   "--port", str(self.port)]  # fmt: skip
        self.logs = [directory / f"ratelimit-{self.port}-{i}.log" for i in range(processes)]
        self.processes = [
            subprocess.Popen(command, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
            for log in self.logs
        ]  # fmt: skip
        deadline = time.monotonic() + 20
        while not all("ready on" in log.read_text() for log in self.logs):
            if time.monotonic() > deadline:
                raise RuntimeError("the rate limit service did not start")
            time.sleep(0.05)

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    subprocess.run([str(ROOT / "scripts" / "ensure-bench-tools.sh")], check=True)
    from django.conf import settings

    directory = Path(tempfile.mkdtemp(prefix="gantry-ratelimit-bench-"))
    upstream = free_port()
    (directory / "nginx.conf").write_text(NGINX.format(prefix=directory, port=upstream,
                                                       body="x" * 1024))  # fmt: skip
    nginx = subprocess.Popen(
        ["nginx", "-p", str(directory), "-c", str(directory / "nginx.conf"),
         "-e", str(directory / "error.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    one, two = Service(directory, 1), Service(directory, 2)
    variants = {
        "no limit": ([], None),
        "local limit": ([LOCAL], None),
        "global, 1 service process": ([GLOBAL], one),
        "global, 2 service processes": ([GLOBAL], two),
    }
    results: dict[str, list[tuple]] = {name: [] for name in variants}
    try:
        time.sleep(0.5)
        for round_number in range(args.rounds):
            for name, (policies, service) in variants.items():
                if service is not None:
                    settings.GANTRY_RATELIMIT_PORT = service.port
                port = free_port()
                resources = gantry(port, upstream, policies)
                envoy = Envoy(resources, directory)
                url = f"http://127.0.0.1:{port}/"
                try:
                    service_before = service.cpu() if service else 0.0
                    rps, p99, envoy_cpu = measure(url, args.seconds, {}, envoy)
                    requests = rps * args.seconds
                    service_cpu = ((service.cpu() - service_before) * 1e6 / requests
                                   if service else 0.0)  # fmt: skip
                    one_by_one = wrk_one_client(url, max(2, args.seconds // 2))
                    results[name].append((rps, p99, envoy_cpu, service_cpu, one_by_one))
                finally:
                    envoy.stop()
            print(f"round {round_number + 1} of {args.rounds} done", flush=True)
    finally:
        one.stop()
        two.stop()
        nginx.terminate()
        nginx.wait(10)
        shutil.rmtree(directory, ignore_errors=True)

    def median(name: str, index: int) -> float:
        return statistics.median(run[index] for run in results[name])

    base_rps, base_single = median("no limit", 0), median("no limit", 4)
    print(f"\n{'variant':30}{'req/s':>9}{'vs none':>9}{'p99 ms':>9}{'1-client p99':>14}"
          f"{'added':>8}{'Envoy CPU/req':>15}{'service CPU/req':>17}")  # fmt: skip
    for name in results:
        rps, p99, envoy_cpu, service_cpu, single = (median(name, i) for i in range(5))
        print(f"{name:30}{rps:9.0f}{rps / base_rps:9.2f}{p99:9.2f}{single:11.2f} ms"
              f"{single - base_single:+8.2f}{envoy_cpu:12.1f} µs"
              f"{service_cpu:14.1f} µs")  # fmt: skip
    best = max(median(n, 0) for n in results if n.startswith("global"))
    per_core = 1e6 / median("global, 1 service process", 3)
    print(
        f"\nglobal limit: {best / base_rps:.2f}× the no-limit throughput at best; "
        f"one service process answers at most ~{per_core:.0f} calls/s per core "
        f"(its CPU per call); added p99 for a lone client "
        f"{median('global, 1 service process', 4) - base_single:+.2f} ms"
    )
    return 0


def wrk_one_client(url: str, seconds: int) -> float:
    """p99 in ms with one connection sending one request after another."""
    command = ["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


if __name__ == "__main__":
    sys.exit(main())
