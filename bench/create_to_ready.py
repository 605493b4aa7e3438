"""A gateway from create to Ready on the local runtime: POST a gateway with 2 replicas, poll it
until ``status.phase`` is Ready (both Envoys run its first revision), delete it; N times, on the
embedded default and on PostgreSQL + Redis, side by side.

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/create_to_ready.py

Goal (delivery issue): p50 ≤ 2 s over 20 creates.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gantry_stack import Gantry, configurations, percentile, stop_cleanly_on_sigterm  # noqa: E402


def measure(gantry: Gantry, creates: int, replicas: int) -> list[float]:
    durations = []
    for index in range(creates):
        name = f"gw-{index}"
        started = time.perf_counter()
        gantry.call("POST", "gateways/", {"name": name, "spec": {"replicas": replicas}})
        gantry.wait_ready(name, interval=0.01)
        durations.append(time.perf_counter() - started)
        gantry.call("DELETE", f"gateways/{name}/")
        time.sleep(0.3)  # the agent stops the replicas of the deleted gateway
    return durations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--configurations", help="embedded,postgres+redis (default: both)")
    args = parser.parse_args()
    stop_cleanly_on_sigterm()
    results = {}
    for configuration in configurations(args.configurations):
        print(f"{configuration}: starting Gantry …", flush=True)
        with Gantry(configuration) as gantry:
            print(f"{configuration}: {args.creates} creates …", flush=True)
            results[configuration] = measure(gantry, args.creates, args.replicas)
    names = list(results)
    print(f"\ncreate → Ready, {args.replicas} replicas" + "".join(f"{n:>18}" for n in names))
    for label, fraction in (("p50 (s)", 0.5), ("p90 (s)", 0.9)):
        row = "".join(f"{percentile(results[n], fraction):18.2f}" for n in names)
        print(f"{label:34}{row}")
    print(f"{'max (s)':34}" + "".join(f"{max(results[n]):18.2f}" for n in names))
    ok = all(statistics.median(values) <= 2.0 for values in results.values())
    print(f"\ngoal p50 ≤ 2 s: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
