"""Compile and validate a gateway with many routes; print the time of each stage.

    .venv/bin/python bench/compile_routes.py [--routes 1000 10000] [--repeat 3]

Stages: build the IR from the desired state, translate the IR to Envoy resources, serialise
them (JSON, as the xDS server and revisions will), and load them into real Envoy with
``--mode validate``. Medians of ``--repeat`` runs; memory growth per route from tracemalloc.
Goal (issue 3): 10,000 routes compiled in under 1 s and validated by Envoy in under 3 s.
"""

import argparse
import json
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()  # the IR's checks share the API's validation, which needs Django's settings

from route_specs import route_spec  # noqa: E402

from provisioning.compile import gc_paused  # noqa: E402
from provisioning.envoy import validate_cold as validate  # noqa: E402  (--mode validate)
from provisioning.ir.build import DesiredState, gateway_ir  # noqa: E402
from provisioning.translate import translate  # noqa: E402


def desired_state(routes: int) -> DesiredState:
    """``routes`` HTTPRoutes over 100 hostnames, each with two rules and varied matches."""
    backends = {
        f"svc-{i}": {
            "endpoints": [{"ip": {"address": f"10.0.{i // 250}.{i % 250 + 1}", "port": 8080}}]
        }
        for i in range(50)
    }
    specs = [{"name": f"route-{i}", "spec": route_spec(i)} for i in range(routes)]
    return DesiredState(
        tenant="bench",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=specs,
        backends=backends,
    )


def measure(routes: int) -> dict:
    state = desired_state(routes)
    started = time.perf_counter()
    with gc_paused():
        ir = gateway_ir(state)
        built = time.perf_counter()
        resources = translate(ir)
    translated = time.perf_counter()
    payload = json.dumps(resources.as_dict())
    serialised = time.perf_counter()
    result = validate(resources)
    validated = time.perf_counter()
    if not result.ok:
        raise SystemExit(f"Envoy rejected the config: {result.message}")
    return {
        "ir": built - started,
        "translate": translated - built,
        "serialise": serialised - translated,
        "compile": serialised - started,
        "validate": validated - serialised,
        "bytes": len(payload),
    }


def memory_per_route(routes: int) -> float:
    tracemalloc.start()
    state = desired_state(routes)
    base, _ = tracemalloc.get_traced_memory()
    resources = translate(gateway_ir(state))
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del resources
    return (current - base) / routes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--routes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'routes':>7} {'IR':>8} {'xDS':>8} {'JSON':>8} {'compile':>9} {'validate':>9} "
          f"{'MB':>6} {'KB/route':>9}  goal")  # fmt: skip
    for routes in args.routes:
        runs = [measure(routes) for _ in range(args.repeat)]
        med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        per_route = memory_per_route(routes) / 1024
        goal = ""
        if routes == 10000:
            ok = med["compile"] < 1 and med["validate"] < 3
            goal = f"compile<1s validate<3s: {'met' if ok else 'NOT met'}"
        print(f"{routes:>7} {med['ir']:>7.3f}s {med['translate']:>7.3f}s {med['serialise']:>7.3f}s "
              f"{med['compile']:>8.3f}s {med['validate']:>8.3f}s {med['bytes'] / 1e6:>6.1f} "
              f"{per_route:>9.2f}  {goal}")  # fmt: skip


if __name__ == "__main__":
    main()
