"""What the analytics rollup costs: an hour of access log entries (1,000,000 by default).

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/analytics_rollup.py
    ... bench/analytics_rollup.py --entries 1000000 --gateways 50 --routes 10 --consumers 20

Fills a throwaway PostgreSQL database (``test_<name>``, as the tests do) with ``--entries``
entries spread evenly over one hour, over ``--gateways`` gateways of 10 tenants, each entry with
one of ``--routes`` routes and ``--consumers`` consumers (one in ten with none), mixed statuses
and latencies. Then times, each ``--runs`` times:

- ``rollup_minutes(the hour)``: its 60 minutes and the hour recomputed whole, sums in
  PostgreSQL (what the first run after a long outage costs);
- ``rollup_minutes(10 minutes)``: what each periodic run recomputes (``LOOKBACK``);
- the same 10 minutes by the Python path (the SQLite one: entries summed one at a time, rows
  written by ``bulk_create``), for comparison.

Prints medians and entries per second side by side; the figures are in docs/usage.md.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import (  # noqa: E402
    setup_databases,
    setup_test_environment,
    teardown_databases,
)
from django.utils import timezone  # noqa: E402

from billing import analytics  # noqa: E402
from billing.models import AnalyticsMinute  # noqa: E402
from provisioning.models import AccessLogEntry  # noqa: E402
from tenants import services as tenant_services  # noqa: E402
from tenants.audit import Actor  # noqa: E402
from tenants.default_plans import DEFAULT_PLANS  # noqa: E402
from tenants.models import Plan  # noqa: E402

SYSTEM = Actor.system("bench")
TENANTS = 10


def populate(entries: int, gateways: int, routes: int, consumers: int):
    for fields in DEFAULT_PLANS:
        Plan.objects.get_or_create(name=fields["name"], defaults=fields)
    users = get_user_model()
    tenant_ids = []
    for index in range(TENANTS):
        owner = users.objects.create_user(f"owner-{index}", password="x")
        tenant_ids.append(tenant_services.create_tenant(SYSTEM, f"t{index}", owner.username).pk)
    start = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start -= timedelta(hours=2)
    table = AccessLogEntry._meta.db_table
    with connection.cursor() as cursor:  # generated in the database: a million rows in seconds
        cursor.execute(
            f"""
            INSERT INTO {table} (tenant_id, gateway_name, replica, incarnation, segment, "offset",
                timestamp, request_id, method, path, status, flags, route, consumer,
                bytes_received, bytes_sent, duration_ms, upstream_ms, upstream_host,
                client_address, port, user_agent)
            SELECT (ARRAY[{", ".join(map(str, tenant_ids))}])[1 + n %% {TENANTS}],
                'gw-' || (n %% %(gateways)s), 0, md5('run' || (n %% 64))::uuid, 0, n,
                %(start)s + (n * 3600.0 / %(entries)s) * interval '1 second', '', 'GET', '/x',
                (ARRAY[200, 200, 200, 201, 204, 301, 404, 401, 500, 503])[1 + (n / 7) %% 10], '',
                CASE WHEN n %% 10 = 0 THEN '' ELSE 'r' || (n / 3) %% %(routes)s END,
                CASE WHEN n %% 10 = 1 THEN '' ELSE 'c' || (n / 11) %% %(consumers)s END,
                300, 1000 + n %% 5000, 1 + (n * 7919) %% 2500, (n * 7919) %% 2400, '', '', 80, ''
            FROM generate_series(1::bigint, %(entries)s::bigint) AS n
            """,
            {"gateways": gateways, "routes": routes, "consumers": consumers, "entries": entries,
             "start": start},
        )  # fmt: skip
        cursor.execute(f"ANALYZE {table}")
    return start


def timed(function, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries in the hour")
    parser.add_argument("--gateways", type=int, default=50)
    parser.add_argument("--routes", type=int, default=10)
    parser.add_argument("--consumers", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    try:
        began = time.perf_counter()
        start = populate(args.entries, args.gateways, args.routes, args.consumers)
        print(f"{args.entries:,} entries over one hour, {args.gateways} gateways, "
              f"{args.routes} routes, {args.consumers} consumers "
              f"(filled in {time.perf_counter() - began:.0f} s)")  # fmt: skip
        ten = timedelta(minutes=10)
        hour = timed(lambda: analytics.rollup_minutes(start, start + timedelta(hours=1)),
                     args.runs)  # fmt: skip
        minutes = AnalyticsMinute.objects.count()
        recent = timed(lambda: analytics.rollup_minutes(start, start + ten), args.runs)
        connection.vendor = "sqlite"  # the same rollup by the Python path
        python = timed(lambda: analytics.rollup_minutes(start, start + ten), args.runs)
        connection.vendor = "postgresql"
        in_ten = AccessLogEntry.objects.filter(
            timestamp__gte=start, timestamp__lt=start + ten
        ).count()
        print(f"{minutes:,} minute rows in the hour")
        print(f"{'what':46} {'entries':>10} {'median s':>9} {'max s':>7} {'entries/s':>10}")
        for name, count, times in (
            ("rollup_minutes(an hour), PostgreSQL sums", args.entries, hour),
            ("rollup_minutes(10 minutes), PostgreSQL sums", in_ten, recent),
            ("rollup_minutes(10 minutes), Python sums", in_ten, python),
        ):
            median = statistics.median(times)
            print(f"{name:46} {count:>10,} {median:9.2f} {max(times):7.2f} "
                  f"{count / median:>10,.0f}")  # fmt: skip
    finally:
        teardown_databases(databases, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
