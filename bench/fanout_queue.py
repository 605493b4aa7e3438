"""One gateway's change while another tenant's write fans out to many gateways.

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/fanout_queue.py \\
        [--gateways 200] [--rounds 3]

On a fresh PostgreSQL database with a real worker (concurrency 2, over Redis): tenant
``many`` has ``--gateways`` gateways with a route each, tenant ``one`` a gateway ``solo``.
Each round, ``many`` creates a consumer (a tenant-wide write: one reconcile per gateway of
the tenant), then ``one`` changes ``solo``'s route right after, and the bench times that
change from the write's return to its revision being stored by the worker (the queue's
part of a change's way; Envoy's part is ``bench/propagation.py``'s). Rounds alternate:
the fan-out's reconciles sent to the main queue, as before the fan-out queue existed (the
producer's ``GANTRY_CELERY_FANOUT_QUEUE`` set to the main queue), and to the fan-out queue.
Also printed: how long the fan-out takes to be worked through.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gantry_stack import _drop_database, _fresh_database  # noqa: E402

MODES = ("one queue (before)", "fan-out queue")


def wait(predicate, timeout: float, what: str, interval: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"{what}: not within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each mode")
    args = parser.parse_args()
    base, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not (base and redis_url and base.startswith("postgres")):
        raise SystemExit("needs DATABASE_URL (PostgreSQL) and REDIS_URL: run it under "
                         "scripts/with_services.py")  # fmt: skip
    url, name = _fresh_database(base)
    prefix = f"bench-fanout-{os.urandom(3).hex()}"
    os.environ.update(
        DATABASE_URL=url, CELERY_BROKER_URL=redis_url, GANTRY_BROKER_KEY_PREFIX=prefix,
        GANTRY_CELERY_QUEUE=prefix, GANTRY_LOCAL_PORT_RANGE="30000-39999",
        DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    worker = None
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        with tempfile.TemporaryDirectory() as directory:
            log = Path(directory) / "worker.log"
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", "2",
                 "--without-mingle", "--without-gossip", "--without-heartbeat"],
                cwd=ROOT, env=os.environ.copy(), stdout=log.open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                return run(args.gateways, args.rounds)
            except Exception:
                print(log.read_text()[-3000:])
                raise
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        from django.db import connections

        connections.close_all()
        _drop_database(base, name)


def run(count: int, rounds: int) -> int:
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from gateways import services
    from provisioning.models import ConfigRevision, PendingReconcile
    from tenants import services as tenant_services
    from tenants.audit import Actor
    from tenants.models import Plan

    actor = Actor.system("bench")
    Plan.objects.update(max_gateways=count + 10, max_consumers=100)
    tenants = {}
    for slug in ("many", "one"):
        get_user_model().objects.create_user(username=f"{slug}-owner", password="x")
        tenants[slug] = tenant_services.create_tenant(actor, slug, f"{slug}-owner")
        services.create_backend(actor, tenants[slug], "app", {
            "endpoints": [{"ip": {"address": "192.0.2.10", "port": 8080}}]})  # fmt: skip
    rule = {"rules": [{"backendRefs": [{"name": "app"}]}]}
    started = time.perf_counter()
    for index in range(count):
        gateway = services.create_gateway(actor, tenants["many"], f"g{index}", {})
        services.create_route(actor, gateway, "all", rule)
    solo = services.create_gateway(actor, tenants["one"], "solo", {})
    route = services.create_route(actor, solo, "all", rule)

    def drained() -> bool:
        stored = ConfigRevision.objects.values("gateway").distinct().count() >= count + 1
        return stored and not PendingReconcile.objects.exists()

    wait(drained, 60 + count, "the first compile of every gateway", 0.2)
    print(f"{count} gateways of tenant many and 1 of tenant one compiled in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    main_queue = settings.GANTRY_CELERY_QUEUE
    fanout_queue = settings.GANTRY_CELERY_FANOUT_QUEUE
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    number = 0
    for _ in range(rounds):
        for mode in MODES:
            settings.GANTRY_CELERY_FANOUT_QUEUE = main_queue if mode == MODES[0] else fanout_queue
            number += 1
            latest = ConfigRevision.objects.filter(gateway=solo).order_by("-number").first()
            begin = time.perf_counter()
            services.create_consumer(actor, tenants["many"], f"c{number}", {})
            spec = {"rules": [{**rule["rules"][0], "filters": [
                {"type": "ResponseHeaderModifier",
                 "responseHeaderModifier": {"set": [{"name": "x-change", "value": str(number)}]}}
            ]}]}  # fmt: skip
            route = services.patch_route_spec(actor, route, spec)
            written = time.perf_counter()
            revisions = ConfigRevision.objects.filter(gateway=solo, number__gt=latest.number)
            wait(revisions.exists, 120, "solo's change")
            stored = time.perf_counter()
            wait(lambda: not PendingReconcile.objects.exists() and idle(), 60 + count,
                 "the fan-out", 0.02)  # fmt: skip
            done = time.perf_counter()
            results[mode].append((stored - written, done - begin))
            print(f"{mode:22}: solo's change stored {1000 * (stored - written):7.0f} ms after "
                  f"its write; the fan-out of {count} worked through in {done - begin:5.1f} s",
                  flush=True)  # fmt: skip
    settings.GANTRY_CELERY_FANOUT_QUEUE = fanout_queue
    print(f"\n{count} gateways fanned out, {rounds} rounds of each, medians:")
    print(f"{'':22}  {'solo: write → stored':>22}  {'fan-out worked through':>22}")
    for mode in MODES:
        change = statistics.median(r[0] for r in results[mode])
        fanout = statistics.median(r[1] for r in results[mode])
        print(f"{mode:22}  {1000 * change:19.0f} ms  {fanout:20.1f} s")
    before, after = (statistics.median(r[0] for r in results[mode]) for mode in MODES)
    print(f"ratio (one queue / fan-out queue): {before / after:.0f}×")
    return 0


def idle() -> bool:
    """No message waits in any of the worker's queues (the last reconciles taken may still
    be running: tens of milliseconds)."""
    from celery import current_app
    from kombu import Queue

    with current_app.connection_for_read() as connection:
        channel = connection.default_channel
        for name in current_app.amqp.queues:
            declared = Queue(name, routing_key=name)(channel).queue_declare()
            if declared.message_count:
                return False
    return True


if __name__ == "__main__":
    sys.exit(main())
