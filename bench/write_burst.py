"""A burst of writes to one gateway, and what it does to another gateway's changes.

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/write_burst.py \
        [--routes 300] [--clients 8] [--configurations postgres+redis]

Gantry as ``make run`` starts it (web, one worker of concurrency 2, xDS server, runtime agent
with real Envoys). Gateway ``busy`` takes a burst: ``--clients`` API clients create
``--routes`` routes on it as fast as the API answers (as a deploy script or CI job does).
Gateway ``quiet`` has one route; during the burst its route is changed again and again, and
each change is timed from the API's answer to the first request through its Envoy that shows
it (as ``bench/propagation.py`` does), beside the same changes with nothing else going on.
Also printed: how long ``busy`` takes after the burst's last answer to serve every route, and
how many reconciles the worker ran for it.
"""

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gantry_stack import (  # noqa: E402
    Gantry,
    Upstream,
    configurations,
    percentile,
    stop_cleanly_on_sigterm,
)
from propagation import route, wait_for_change  # noqa: E402


def busy_route(i: int) -> dict:
    return {
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": f"/burst/{i}"}}],
                "backendRefs": [{"name": "app"}],
            }
        ]
    }


def burst(gantry: Gantry, routes: int, clients: int, answers: list[tuple[float, int]]) -> None:
    """``routes`` routes created on ``busy`` by ``clients`` threads; when each was answered."""
    numbers = iter(range(routes))
    lock = threading.Lock()
    errors: list[str] = []

    def client() -> None:
        session = requests.Session()
        session.headers.update(gantry.api.headers)
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            answer = session.post(
                f"{gantry.tenant}gateways/busy/routes/",
                json={"name": f"r{number}", "spec": busy_route(number)}, timeout=60,
            )  # fmt: skip
            if answer.status_code not in (201, 202):
                errors.append(f"{answer.status_code} {answer.text[:200]}")
                return
            answers.append((time.perf_counter(), number))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"the burst's writes failed: {errors[:3]}")


def changes(gantry: Gantry, client, url: str, first: int, count: int, stop=None) -> list[float]:
    """Changes ``quiet``'s route ``count`` times (or until ``stop`` is set): seconds from each
    API answer to the first request showing it."""
    totals = []
    for value in range(first, first + count):
        gantry.call("PATCH", "gateways/quiet/routes/all/", {"spec": route(value)})
        answered = time.perf_counter()
        totals.append(wait_for_change(client, url, value, timeout=120, pause=0.002) - answered)
        if stop is not None and stop.is_set():  # at least one change, made in the burst
            break
        time.sleep(0.1)
    return totals


def measure(gantry: Gantry, routes: int, clients: int) -> dict:
    upstream = Upstream()
    try:
        gantry.call("POST", "backends/", {"name": "app", "spec": upstream.backend()})
        for name in ("quiet", "busy"):
            gantry.call("POST", "gateways/", {"name": name, "spec": {"replicas": 1}})
        gantry.call("POST", "gateways/quiet/routes/", {"name": "all", "spec": route(0)})
        gantry.call("POST", "gateways/busy/routes/", {"name": "probe", "spec": busy_route(-1)})
        quiet = gantry.wait_ready("quiet")["status"]["listeners"][0]["url"]
        busy = gantry.wait_ready("busy")["status"]["listeners"][0]["url"]
        client = requests.Session()
        wait_for_change(client, quiet, 0, first=True)
        busy_client = requests.Session()
        served(busy_client, f"{busy.rstrip('/')}/burst/-1", 60)
        idle = changes(gantry, client, quiet, 1, 10)
        operations_before = count_operations(gantry, "busy")

        answers: list[tuple[float, int]] = []
        done = threading.Event()
        during: list[float] = []

        def measure_quiet() -> None:
            during.extend(changes(gantry, client, quiet, 100, 1000, stop=done))

        prober = threading.Thread(target=measure_quiet)
        started = time.perf_counter()
        prober.start()
        burst(gantry, routes, clients, answers)
        done.set()
        # The route answered last was committed last: the revision that serves it holds
        # every route of the burst.
        last_answer, last = max(answers)
        served(busy_client, f"{busy.rstrip('/')}/burst/{last}", 300)
        converged = time.perf_counter() - last_answer
        prober.join()
        return {
            "idle": idle,
            "during": during,
            "writes_per_s": routes / (last_answer - started),
            "burst_s": last_answer - started,
            "converged_s": converged,
            "reconciles": count_operations(gantry, "busy") - operations_before,
        }
    finally:
        upstream.close()


def served(client: requests.Session, url: str, timeout: float) -> None:
    """Until ``url`` answers 200 (404 while no route matches it)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if client.get(url, timeout=5).status_code == 200:
                return
        except requests.ConnectionError:  # the listener is still warming
            time.sleep(0.01)
        time.sleep(0.005)
    raise RuntimeError(f"{url} not served within {timeout} s")


def count_operations(gantry: Gantry, gateway: str) -> int:
    return gantry.call("GET", f"gateways/{gateway}/operations/?page_size=1")["count"]


def report(results: dict[str, dict], routes: int, clients: int) -> None:
    names = list(results)
    print(f"\n{routes} routes created on one gateway by {clients} clients; another gateway's "
          "route changed meanwhile\n")  # fmt: skip
    print(f"{'':40}" + "".join(f"{n:>18}" for n in names))
    rows = [
        ("burst: writes/s", lambda r: f"{r['writes_per_s']:.0f}"),
        ("burst: seconds", lambda r: f"{r['burst_s']:.1f}"),
        ("busy: reconciles run", lambda r: f"{r['reconciles']}"),
        ("busy: last answer → all served (ms)", lambda r: f"{r['converged_s'] * 1000:.0f}"),
        ("quiet, idle: p50 (ms)", lambda r: f"{percentile(r['idle'], 0.5) * 1000:.1f}"),
        ("quiet, idle: max (ms)", lambda r: f"{max(r['idle']) * 1000:.1f}"),
        ("quiet, in the burst: changes", lambda r: f"{len(r['during'])}"),
        ("quiet, in the burst: p50 (ms)", lambda r: f"{percentile(r['during'], 0.5) * 1000:.1f}"),
        ("quiet, in the burst: p90 (ms)", lambda r: f"{percentile(r['during'], 0.9) * 1000:.1f}"),
        ("quiet, in the burst: max (ms)", lambda r: f"{max(r['during']) * 1000:.1f}"),
    ]
    for label, cell in rows:
        print(f"{label:40}" + "".join(f"{cell(results[n]):>18}" for n in names))
    for name, result in results.items():
        ratio = statistics.median(result["during"]) / statistics.median(result["idle"])
        print(f"{name}: quiet's p50 in the burst is ×{ratio:.1f} its idle p50")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--configurations", help="embedded,postgres+redis (default: both)")
    args = parser.parse_args()
    stop_cleanly_on_sigterm()
    results = {}
    for configuration in configurations(args.configurations):
        print(f"{configuration}: starting Gantry …", flush=True)
        with Gantry(configuration) as gantry:
            print(f"{configuration}: {args.routes} routes by {args.clients} clients …", flush=True)
            results[configuration] = measure(gantry, args.routes, args.clients)
    report(results, args.routes, args.clients)
    return 0


if __name__ == "__main__":
    sys.exit(main())
