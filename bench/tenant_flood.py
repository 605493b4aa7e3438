"""One gateway's change while another tenant floods the queue with changes to its gateways.

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/tenant_flood.py \\
        [--gateways 300] [--threads 4] [--rounds 3]

On a fresh PostgreSQL database with a real worker (concurrency 2, over Redis): tenant
``many`` has ``--gateways`` gateways with a route each, tenant ``one`` a gateway ``solo``.
Each round, ``--threads`` threads change the route of each of ``many``'s gateways once, as
fast as the services answer (a script looping over its gateways: one reconcile per change,
none coalesced); once half of them are written, ``one`` changes ``solo``'s route, timed from
its write's return to its revision stored by the worker. Rounds alternate: every reconcile
at full priority, as before tenants had shares (``GANTRY_TENANT_RECONCILE_BURST`` set out of
reach in the producer), and with the default share (10 a second).
"""

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fanout_queue import compiled, idle, route_change, tenant, wait, with_worker  # noqa: E402

MODES = ("no shares (before)", "tenant shares")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each mode")
    args = parser.parse_args()
    return with_worker(lambda: run(args.gateways, args.threads, args.rounds))


def run(count: int, threads: int, rounds: int) -> int:
    from django.conf import settings
    from django.db import connection

    from gateways import services
    from provisioning.models import ConfigRevision, PendingReconcile
    from tenants.audit import Actor
    from tenants.models import Plan

    actor = Actor.system("bench")
    Plan.objects.update(max_gateways=count + 10)
    started = time.perf_counter()
    _, flooded = tenant(actor, "many", count)
    _, (solo,) = tenant(actor, "one", 1)
    compiled(count + 1)
    print(f"{count} gateways of tenant many and 1 of tenant one compiled in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    routes = {gateway.pk: gateway.routes.get() for gateway in flooded}
    solo_route = solo.routes.get()
    share = settings.GANTRY_TENANT_RECONCILE_BURST
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    number = 0
    for _ in range(rounds):
        for mode in MODES:
            settings.GANTRY_TENANT_RECONCILE_BURST = share if mode == MODES[1] else 10**9
            number += 1
            written, half = [0], threading.Event()
            todo = iter(flooded)
            lock = threading.Lock()

            def flood(number=number, written=written, half=half, todo=todo, lock=lock) -> None:
                try:
                    while True:
                        with lock:
                            gateway = next(todo, None)
                        if gateway is None:
                            return
                        services.patch_route_spec(actor, routes[gateway.pk], route_change(number))
                        with lock:
                            written[0] += 1
                            if written[0] >= count // 2:
                                half.set()
                finally:
                    connection.close()

            latest = ConfigRevision.objects.filter(gateway=solo).order_by("-number").first()
            begin = time.perf_counter()
            workers = [threading.Thread(target=flood) for _ in range(threads)]
            for thread in workers:
                thread.start()
            half.wait(120)
            solo_route = services.patch_route_spec(actor, solo_route, route_change(number))
            at = time.perf_counter()
            revisions = ConfigRevision.objects.filter(gateway=solo, number__gt=latest.number)
            wait(revisions.exists, 120 + count, "solo's change", 0.005)
            stored = time.perf_counter()
            for thread in workers:
                thread.join()
            wait(lambda: not PendingReconcile.objects.exists() and idle(), 120 + count,
                 "the flood", 0.02)  # fmt: skip
            done = time.perf_counter()
            results[mode].append((stored - at, done - begin))
            print(f"{mode:20}: solo's change stored {1000 * (stored - at):6.0f} ms after its "
                  f"write; the flood of {count} changes worked through in {done - begin:5.1f} s",
                  flush=True)  # fmt: skip
    settings.GANTRY_TENANT_RECONCILE_BURST = share
    print(f"\n{count} changes from {threads} threads, {rounds} rounds of each, medians:")
    print(f"{'':20}  {'solo: write → stored':>22}  {'flood worked through':>22}")
    for mode in MODES:
        solo_ms, flood_s = (statistics.median(r[i] for r in results[mode]) for i in range(2))
        print(f"{mode:20}  {1000 * solo_ms:19.0f} ms  {flood_s:20.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
