"""How long the console's pages take to render on the server, with many objects: one gateway
with 1,000 routes (besides 99 other gateways, 50 backends, 5,000 audit events, two revisions
of the big gateway and 30 days of hourly usage of every gateway), each page
requested in process through the whole Django stack (middleware, session, views, queries,
templates).

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/console_pages.py
    ... bench/console_pages.py --routes 1000 --requests 50

Prints p50 and p95 in milliseconds per page. A throwaway database is created and dropped
(``test_<name>``, as the tests do). The first 20 routes are created through the services (so
conflicts and statuses are the real ones); the rest are inserted in bulk with the status the
services gave the first, which is what a page reads. Goal: p50 under 150 ms for every page.
"""

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from datetime import UTC, timedelta  # noqa: E402

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import (  # noqa: E402
    setup_databases,
    setup_test_environment,
    teardown_databases,
)
from django.utils import timezone  # noqa: E402

from billing import rollups  # noqa: E402
from billing.models import ReplicaHour, UsageHour  # noqa: E402
from gateways import services  # noqa: E402
from gateways.models import Backend, Gateway, Route  # noqa: E402
from provisioning import tasks  # noqa: E402
from provisioning.reconcile import reconcile  # noqa: E402
from tenants import services as tenant_services  # noqa: E402
from tenants.audit import Actor  # noqa: E402
from tenants.models import AuditEvent, Plan  # noqa: E402

SYSTEM = Actor.system("bench")
THROUGH_SERVICES = 20


def route_spec(index: int) -> dict:
    return {
        "hostnames": [f"r{index}.example.com"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": f"/r{index}"}}],
                "backendRefs": [{"name": f"app-{index % 50}"}],
            }
        ],
    }


def populate(routes: int, gateways: int, events: int):
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    Plan.objects.filter(name="enterprise").update(
        max_gateways=gateways + 10, max_routes_per_gateway=routes + 10
    )
    tenant = tenant_services.create_tenant(SYSTEM, "bench", user.username, plan="enterprise")
    edge = services.create_gateway(SYSTEM, tenant, "edge", {"replicas": 2})
    for index in range(min(routes, THROUGH_SERVICES)):
        services.create_route(SYSTEM, edge, f"route-{index:04d}", route_spec(index))
    first = Route.objects.filter(gateway=edge).first()
    Route.objects.bulk_create(
        Route(
            gateway=edge, name=f"route-{index:04d}", spec=route_spec(index), status=first.status
        )  # fmt: skip
        for index in range(THROUGH_SERVICES, routes)
    )
    Gateway.objects.bulk_create(
        Gateway(tenant=tenant, name=f"gw-{index:03d}", spec=edge.spec, status=edge.status)
        for index in range(gateways - 1)
    )
    Backend.objects.bulk_create(
        Backend(
            tenant=tenant,
            name=f"app-{index}",
            status={"conditions": []},
            spec={
                "endpoints": [{"ip": {"address": f"10.0.0.{index + 1}", "port": 8080}}],
                "appProtocol": "HTTP/1.1",
            },
        )  # fmt: skip
        for index in range(50)
    )
    AuditEvent.objects.bulk_create(
        AuditEvent(
            tenant=tenant,
            tenant_slug="bench",
            actor_name="bench",
            action="update",
            object_type="route",
            object_name=f"edge/route-{index % routes:04d}",
        )  # fmt: skip
        for index in range(events)
    )
    # Two revisions of the big gateway (compiled and checked by Envoy, as a worker would).
    reconcile(edge.pk)
    services.patch_route_spec(SYSTEM, Route.objects.get(gateway=edge, name="route-0000"),
                              {"hostnames": ["changed.example.com"]})  # fmt: skip
    reconcile(edge.pk)
    usage(tenant, [edge.name, *(f"gw-{index:03d}" for index in range(gateways - 1))])
    return user


def usage(tenant, names: list[str], days: int = 30) -> None:
    """An hour of traffic and of replica time for every gateway and hour of the last ``days``."""
    now = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [now - timedelta(hours=back) for back in range(days * 24)]
    UsageHour.objects.bulk_create(
        UsageHour(tenant=tenant, gateway_name=name, hour=hour, port=80, responses_2xx=900,
                  responses_4xx=60, responses_5xx=4, latency={"1": 500, "5": 400, "50": 64})
        for name in names for hour in hours
    )  # fmt: skip
    ReplicaHour.objects.bulk_create(
        ReplicaHour(tenant=tenant, gateway_name=name, hour=hour, size="small",
                    milliseconds=3_600_000)
        for name in names for hour in hours
    )  # fmt: skip
    rollups.roll_days(hours[-1], now + timedelta(hours=1))  # the days, as the rollup keeps them


PAGES = {
    "dashboard": "/t/bench/",
    "gateway list": "/t/bench/gateways/",
    "gateway list, sorted by replicas": "/t/bench/gateways/?sort=-replicas",
    "gateway detail": "/t/bench/gateways/edge/",
    "gateway status partial": "/t/bench/gateways/edge/status/",
    "route list": "/t/bench/gateways/edge/routes/",
    "route list, last page": "/t/bench/gateways/edge/routes/?page=40",
    "route list, filtered, sorted": "/t/bench/gateways/edge/routes/?name=route-09&sort=-name",
    "route detail": "/t/bench/gateways/edge/routes/route-0500/",
    "route edit": "/t/bench/gateways/edge/routes/route-0500/edit/",
    "backend list (50)": "/t/bench/backends/",
    "policies of every gateway": "/t/bench/policies/",
    "audit log": "/t/bench/audit/",
    "audit log, filtered by actor and object": "/t/bench/audit/?actor=bench&objectType=route",
    "audit event": "/t/bench/audit/{event}/",
    "revisions": "/t/bench/gateways/edge/revisions/",
    "revisions 1 and 2 side by side": "/t/bench/gateways/edge/revisions/compare/?from=1&to=2",
    "operations": "/t/bench/gateways/edge/operations/",
    "usage, 24 h by hour (100 gateways)": "/t/bench/usage/",
    "usage, 30 days by day (100 gateways)": "/t/bench/usage/?range=30d",
    "usage of one gateway, 24 h": "/t/bench/gateways/edge/usage/",
    "usage CSV, 30 days by day": "/t/bench/usage/csv/?range=30d",
    "invoices, with the running month": "/t/bench/invoices/",
    "upcoming invoice (100 gateways)": "/t/bench/invoices/upcoming/",
    "upcoming invoice PDF": "/t/bench/invoices/upcoming/pdf/",
    "budget": "/t/bench/budget/",
}
# Measured as a platform operator.
OPS_PAGES = {
    "revenue, running month (ops)": "/ops/revenue/",
}


def measure(client: Client, url: str, requests: int) -> list[float]:
    client.get(url)  # warm: template loading, first queries
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--gateways", type=int, default=100)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--only", default="", help="pages whose name holds one of these (a,b)")
    parser.add_argument("--gc-off", action="store_true", help="no garbage collection while timed")
    parser.add_argument("--no-freeze", action="store_true",
                        help="leave the setup's objects to the collector (config/wsgi.py freezes "
                             "a web process's after start-up)")  # fmt: skip
    args = parser.parse_args()
    tasks.send_reconcile = lambda *a, **k: None  # no worker: what is measured is the page
    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    try:
        user = populate(args.routes, args.gateways, args.events)
        client = Client()
        client.force_login(user)
        print(f"{args.routes} routes on one gateway, {args.gateways} gateways, "
              f"{args.events} audit events; {args.requests} requests per page")  # fmt: skip
        print(f"{'page':40} {'p50 ms':>8} {'p95 ms':>8}")
        event = AuditEvent.objects.filter(tenant__slug="bench").first().pk
        if not args.no_freeze:  # as a web process does once started (config/wsgi.py)
            gc.collect()
            gc.freeze()
        if args.gc_off:
            gc.disable()
        for name, url in PAGES.items():
            if not any(part in name for part in args.only.split(",")):
                continue
            times = measure(client, url.format(event=event), args.requests)
            p50, p95 = statistics.median(times), percentile(times, 0.95)
            print(f"{name:40} {p50:8.1f} {p95:8.1f}")
        operator = Client()
        operator.force_login(get_user_model().objects.create_user("bench-ops", is_staff=True))
        for name, url in OPS_PAGES.items():
            if not any(part in name for part in args.only.split(",")):
                continue
            times = measure(operator, url, args.requests)
            p50, p95 = statistics.median(times), percentile(times, 0.95)
            print(f"{name:40} {p50:8.1f} {p95:8.1f}")
    finally:
        teardown_databases(databases, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
