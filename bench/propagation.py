"""Propagation: from the API's 2xx for a route change to the first request through the gateway
that shows it, over N changes, on the embedded default and on PostgreSQL + Redis, side by side.

Each change sets a response header (``x-change: <i>``) on the route; a keep-alive client polls
the gateway's URL until the header carries the new value. Stages come from the platform's own
records: the reconcile's timings (queue: the task in the broker; lock: taking the gateway's lock;
compile: loading and compiling its desired state; validate: the warm Envoy's verdict; store: writing
the revision and committing, which announces it to the xDS servers); "deliver" is what is left
until the client sees the change (the xDS server reading the revision, the push, Envoy applying
it, the client's next request). Separately, "ACKed" is when the revision's ``programmedAt`` says
every replica had ACKed it and the platform had recorded that, after the API's answer.

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/propagation.py
    .venv/bin/python bench/propagation.py --configurations embedded --changes 20

Goals: p50 ≤ 30 ms and p99 ≤ 60 ms with PostgreSQL + Redis, p50 ≤ 50 ms on the embedded
default. The exit status is 0 when they are met.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gantry_stack import (  # noqa: E402
    Gantry,
    Upstream,
    configurations,
    parse_time,
    percentile,
    stop_cleanly_on_sigterm,
)

STAGES = ("queue", "lock", "compile", "validate", "store", "deliver")
GOALS = {"postgres+redis": (0.030, 0.060), "embedded": (0.050, None)}  # p50, p99 (seconds)


def route(value: int) -> dict:
    header = {"set": [{"name": "x-change", "value": str(value)}]}
    return {
        "rules": [
            {
                "backendRefs": [{"name": "app"}],
                "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": header}],
            }
        ]
    }


def wait_for_change(
    client: requests.Session,
    url: str,
    value: int,
    timeout: float = 10,
    first: bool = False,
    pause: float = 0.0,
) -> float:
    """``first``: the listener may still be warming (a replica ACKs a listener a moment before
    it binds), so refused connections are retried; afterwards any error fails the run.
    ``pause``: seconds between requests (0: back to back)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if client.get(url, timeout=5).headers.get("x-change") == str(value):
                return time.perf_counter()
        except requests.ConnectionError:
            if not first:
                raise
            time.sleep(0.01)
        if pause:
            time.sleep(pause)
    raise RuntimeError(f"change {value} not served within {timeout} s")


def measure(gantry: Gantry, changes: int, spacing: float, pause: float) -> dict:
    upstream = Upstream()
    try:
        gantry.call("POST", "gateways/", {"name": "bench", "spec": {"replicas": 1}})
        gantry.call("POST", "backends/", {"name": "app", "spec": upstream.backend()})
        gantry.call("POST", "gateways/bench/routes/", {"name": "all", "spec": route(0)})
        url = gantry.wait_ready("bench")["status"]["listeners"][0]["url"]
        client = requests.Session()
        wait_for_change(client, url, 0, first=True)
        totals, answers = [], []
        for value in range(1, changes + 1):
            gantry.call("PATCH", "gateways/bench/routes/all/", {"spec": route(value)})
            answered = time.perf_counter()
            answers.append(time.time())
            totals.append(wait_for_change(client, url, value, pause=pause) - answered)
            time.sleep(spacing)
        time.sleep(1)  # the last revision's ACKs recorded
        stages = stage_shares(gantry, changes, totals, answers)
    finally:
        upstream.close()
    return {"totals": totals, "stages": stages}


def stage_shares(
    gantry: Gantry, changes: int, totals: list[float], answers: list[float]
) -> dict[str, list[float]]:
    """Per change, seconds in each stage, from the timeline and the revisions."""
    operations = gantry.call("GET", "gateways/bench/operations/?page_size=500")["results"]
    revisions = gantry.call("GET", "gateways/bench/revisions/?page_size=500")["results"]
    programmed = {r["number"]: r["programmedAt"] for r in revisions}
    by_revision = {
        op["revision"]: op for op in operations if op["kind"] == "reconcile" and op["revision"]
    }
    newest = max(programmed)
    stages: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "ACKed")}
    for index, number in enumerate(range(newest - changes + 1, newest + 1)):
        operation, done = by_revision.get(number), programmed.get(number)
        if operation is None:
            continue
        timings = {k: v / 1000 for k, v in operation["timings"].items()}
        known = sum(timings.get(s, 0) for s in STAGES[:5])
        for stage in STAGES[:5]:
            stages[stage].append(timings.get(stage, 0.0))
        stages["deliver"].append(max(0.0, totals[index] - known))
        if done is not None:
            stages["ACKed"].append(parse_time(done) - answers[index])
    return stages


def report(results: dict[str, dict]) -> None:
    names = list(results)
    print(f"\n{'':22}" + "".join(f"{n:>18}" for n in names))
    for label, fraction in (("p50 (ms)", 0.5), ("p90 (ms)", 0.9), ("p99 (ms)", 0.99)):
        row = [percentile(results[n]["totals"], fraction) * 1000 for n in names]
        print(f"{label:22}" + "".join(f"{v:18.1f}" for v in row))
    print(f"{'max (ms)':22}" + "".join(f"{max(results[n]['totals']) * 1000:18.1f}" for n in names))
    print("\nmedian per stage (ms, share of the median total)")
    for stage in (*STAGES, "ACKed"):
        cells = []
        for n in names:
            values = results[n]["stages"][stage]
            median = statistics.median(values) if values else 0.0
            total = statistics.median(results[n]["totals"])
            cells.append(f"{median * 1000:8.1f} ({median / total:4.0%})")
        print(f"{stage:22}" + "".join(f"{c:>18}" for c in cells))
    if len(names) == 2:
        a, b = (statistics.median(results[n]["totals"]) for n in names)
        print(f"\nmedian ratio {names[1]} / {names[0]}: {b / a:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--spacing", type=float, default=0.05, help="seconds between changes")
    parser.add_argument("--configurations", help="embedded,postgres+redis (default: both)")
    parser.add_argument(
        "--poll-pause", type=float, default=0.001,
        help="seconds between the client's requests (its polling shares the 2 cores with "
        "Gantry; 0: back to back)",
    )  # fmt: skip
    args = parser.parse_args()
    stop_cleanly_on_sigterm()
    results = {}
    for configuration in configurations(args.configurations):
        print(f"{configuration}: starting Gantry …", flush=True)
        with Gantry(configuration) as gantry:
            print(f"{configuration}: {args.changes} route changes …", flush=True)
            results[configuration] = measure(gantry, args.changes, args.spacing, args.poll_pause)
    report(results)
    ok = True
    for name, result in results.items():
        p50_goal, p99_goal = GOALS[name]
        p50, p99 = percentile(result["totals"], 0.5), percentile(result["totals"], 0.99)
        met = p50 <= p50_goal and (p99_goal is None or p99 <= p99_goal)
        ok = ok and met
        goal = f"p50 ≤ {p50_goal * 1000:.0f} ms" + (
            f", p99 ≤ {p99_goal * 1000:.0f} ms" if p99_goal else ""
        )
        print(f"{name}: goal {goal}: {'met' if met else 'NOT met'} "
              f"(p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
