"""One gateway's change, and a small fan-out, while another tenant's write fans out to many
gateways.

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/fanout_queue.py \\
        [--gateways 200] [--rounds 3]

On a fresh PostgreSQL database with a real worker (concurrency 2, over Redis): tenant
``many`` has ``--gateways`` gateways with a route each, tenant ``few`` 5, tenant ``one`` a
gateway ``solo``. Each round, ``many`` creates a consumer (a tenant-wide write: one reconcile
per gateway of the tenant), then ``one`` changes ``solo``'s route and ``few`` creates a
consumer. Timed: ``solo``'s change from its write's return to its revision stored by the
worker (the queue's part of a change's way; Envoy's part is ``bench/propagation.py``'s), and
``few``'s fan-out until a worker has taken each of its reconciles. Rounds alternate between
the three ways the producer can send (the worker is the same): the fan-out's reconciles in
the main queue, as before the fan-out queue existed; in the fan-out queue at one priority;
and in the fan-out queue at a priority by the fan-out's size (the default). Also printed:
how long ``many``'s fan-out takes to be worked through.
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
from bench.many_gateways import wait  # noqa: E402

MODES = ("one queue (before)", "fan-out queue, one priority", "fan-out queue by size")
FEW = 5  # tenant few's gateways: its consumer write is a small fan-out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each mode")
    args = parser.parse_args()
    return with_worker(lambda: run(args.gateways, args.rounds))


def with_worker(work) -> int:
    """``work()`` on a fresh PostgreSQL database, with a real worker (concurrency 2) over
    Redis reading queues of its own; the database is dropped afterwards."""
    base, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not (base and redis_url and base.startswith("postgres")):
        raise SystemExit("needs DATABASE_URL (PostgreSQL) and REDIS_URL: run it under "
                         "scripts/with_services.py")  # fmt: skip
    url, name = _fresh_database(base)
    prefix = f"bench-queue-{os.urandom(3).hex()}"
    os.environ.update(
        DATABASE_URL=url, CELERY_BROKER_URL=redis_url, GANTRY_BROKER_KEY_PREFIX=prefix,
        GANTRY_CELERY_QUEUE=prefix, GANTRY_LOCAL_PORT_RANGE="30000-39999",
        GANTRY_CACHE_PREFIX=prefix, DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
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
                return work()
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


def tenant(actor, slug: str, gateways: int) -> tuple:
    """Tenant ``slug`` with a backend and ``gateways`` gateways of one route each."""
    from django.contrib.auth import get_user_model

    from gateways import services
    from tenants import services as tenant_services

    get_user_model().objects.create_user(username=f"{slug}-owner", password="x")
    made = tenant_services.create_tenant(actor, slug, f"{slug}-owner")
    services.create_backend(actor, made, "app", {
        "endpoints": [{"ip": {"address": "192.0.2.10", "port": 8080}}]})  # fmt: skip
    rule = {"rules": [{"backendRefs": [{"name": "app"}]}]}
    for index in range(gateways):
        gateway = services.create_gateway(actor, made, f"g{index}", {})
        services.create_route(actor, gateway, "all", rule)
    return made, list(made.gateways.order_by("pk"))


def route_change(number: int) -> dict:
    """The route spec of change ``number`` (a response header set to it)."""
    header = {"set": [{"name": "x-change", "value": str(number)}]}
    return {"rules": [{"backendRefs": [{"name": "app"}], "filters": [
        {"type": "ResponseHeaderModifier", "responseHeaderModifier": header}]}]}  # fmt: skip


def compiled(count: int) -> None:
    """Waits until ``count`` gateways have a revision and no reconcile is pending."""
    from provisioning.models import ConfigRevision, PendingReconcile

    def done() -> bool:
        stored = ConfigRevision.objects.values("gateway").distinct().count() >= count
        return stored and not PendingReconcile.objects.exists()

    wait(done, 60 + count, "the first compile of every gateway", 0.2)


def run(count: int, rounds: int) -> int:
    from django.conf import settings

    from gateways import services
    from provisioning import tasks
    from provisioning.models import ConfigRevision, PendingReconcile
    from tenants.audit import Actor
    from tenants.models import Plan

    actor = Actor.system("bench")
    Plan.objects.update(max_gateways=count + 10, max_consumers=100)
    started = time.perf_counter()
    many, _ = tenant(actor, "many", count)
    few_tenant, few_gateways = tenant(actor, "few", FEW)
    few = [gateway.pk for gateway in few_gateways]
    _, (solo,) = tenant(actor, "one", 1)
    route = solo.routes.get()
    compiled(count + FEW + 1)
    print(f"{count} gateways of tenant many, {FEW} of tenant few and 1 of tenant one compiled "
          f"in {time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    main_queue = settings.GANTRY_CELERY_QUEUE
    fanout_queue = settings.GANTRY_CELERY_FANOUT_QUEUE
    by_size = tasks.FANOUT_PRIORITIES
    results: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in MODES}
    number = 0
    for _ in range(rounds):
        for mode in MODES:
            # The producer's settings: the worker reads every queue at every priority.
            settings.GANTRY_CELERY_FANOUT_QUEUE = main_queue if mode == MODES[0] else fanout_queue
            tasks.FANOUT_PRIORITIES = by_size if mode == MODES[2] else ((10**9, 0),)
            number += 1
            latest = ConfigRevision.objects.filter(gateway=solo).order_by("-number").first()
            begin = time.perf_counter()
            services.create_consumer(actor, many, f"c{number}", {})
            route = services.patch_route_spec(actor, route, route_change(number))
            written = time.perf_counter()
            services.create_consumer(actor, few_tenant, f"c{number}", {})
            few_written = time.perf_counter()
            revisions = ConfigRevision.objects.filter(gateway=solo, number__gt=latest.number)
            marks = PendingReconcile.objects.filter(gateway__in=few)
            stored = few_taken = None
            while stored is None or few_taken is None:
                if stored is None and revisions.exists():
                    stored = time.perf_counter()
                if few_taken is None and not marks.exists():
                    few_taken = time.perf_counter()
                if time.perf_counter() - begin > 120 + count:
                    raise RuntimeError("solo's change or few's fan-out: not within the time")
                time.sleep(0.005)
            wait(lambda: not PendingReconcile.objects.exists() and idle(), 60 + count,
                 "the fan-out", 0.02)  # fmt: skip
            done = time.perf_counter()
            results[mode].append((stored - written, few_taken - few_written, done - begin))
            print(f"{mode:28}: solo's change stored {1000 * (stored - written):6.0f} ms after "
                  f"its write; few's fan-out of {FEW} taken in "
                  f"{1000 * (few_taken - few_written):6.0f} ms; many's fan-out of {count} worked "
                  f"through in {done - begin:5.1f} s", flush=True)  # fmt: skip
    settings.GANTRY_CELERY_FANOUT_QUEUE = fanout_queue
    tasks.FANOUT_PRIORITIES = by_size
    print(f"\n{count} gateways fanned out, {rounds} rounds of each, medians:")
    heads = ("solo: write → stored", f"few ({FEW}): all taken", "many: worked through")
    print(f"{'':28}  {heads[0]:>22}  {heads[1]:>22}  {heads[2]:>22}")
    for mode in MODES:
        solo_ms, few_ms, many_s = (statistics.median(r[i] for r in results[mode]) for i in range(3))
        print(f"{mode:28}  {1000 * solo_ms:19.0f} ms  {1000 * few_ms:19.0f} ms  {many_s:20.1f} s")
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
