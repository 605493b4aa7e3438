"""What collecting Kubernetes gateways' access logs from their pods' logs costs, per pass.

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/pod_access_logs.py
    ... bench/pod_access_logs.py --gateways 50 --pods 2 --lines 500 --passes 3

Against the project's Kubernetes API server test double (over HTTP, through the real client)
and a throwaway PostgreSQL database (``test_<name>``, as the tests do). Each gateway's pods
write ``--lines`` access log lines (the JSON Envoy writes, about 400 bytes) and one Envoy log
line per ten between passes; each pass is one ``pod_logs.collect()`` (what beat runs every
``GANTRY_POD_ACCESS_LOG_SECONDS``). Then an idle pass (nothing new) and a pass after every
cursor was lost (everything read again, nothing stored twice). Prints the time per pass, per
pod (median, p95) and per stored line; the figures are in docs/usage.md.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import yaml  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.test.utils import (  # noqa: E402
    setup_databases,
    setup_test_environment,
    teardown_databases,
)

from gateways.models import Gateway  # noqa: E402
from provisioning import pod_logs  # noqa: E402
from provisioning.models import (  # noqa: E402
    AccessLogEntry,
    KubernetesCluster,
    KubernetesPlacement,
    PodLogCursor,
)
from provisioning.runtimes.kubernetes import names  # noqa: E402
from provisioning.translate.access_log import FIELDS  # noqa: E402
from tenants import services as tenant_services  # noqa: E402
from tenants.audit import Actor  # noqa: E402
from tenants.default_plans import DEFAULT_PLANS  # noqa: E402
from tenants.models import Plan  # noqa: E402
from tests.kubernetes.apiserver_double import ApiServerDouble  # noqa: E402

SYSTEM = Actor.system("bench")
TENANTS = 10
ENVOY_LINE = (
    "[2026-12-04 19:15:00.123][1][info][upstream] [source/common/upstream/cds_api_helper.cc:32]"
    " cds: add 3 cluster(s), remove 0 cluster(s)"
)


def access_line(tenant: str, gateway: str, n: int) -> str:
    record = dict.fromkeys(FIELDS)
    record.update(
        start="2026-12-04T19:15:00.123Z", requestId=f"5f0c3b2a-9d1e-4f6a-8b7c-{n:012d}",
        method="GET", path=f"/api/items/{n}", status=200, flags="-", bytesReceived=0,
        bytesSent=1843, durationMs=3, upstreamMs="2",
        route=f"{tenant}/{gateway}/route/items/rule/0/match/0", upstreamHost="10.0.3.17:8080",
        port=8080, client="203.0.113.7", userAgent="Mozilla/5.0 (X11; Linux x86_64) bench/1.0",
        consumer="alice",
    )  # fmt: skip
    return json.dumps(record, separators=(",", ":"))


def setup(double, gateways: int, pods: int) -> list[tuple[str, str, str]]:
    for fields in DEFAULT_PLANS:
        Plan.objects.get_or_create(name=fields["name"], defaults=fields)
    kubeconfig = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "double", "cluster": {"server": double.host}}],
        "users": [{"name": "gantry", "user": {"token": "operator-token"}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "gantry"}}],
        "current-context": "double",
    })  # fmt: skip
    cluster = KubernetesCluster.objects.create(
        name="double", kubeconfig=kubeconfig, xds_address="127.0.0.1", xds_port=1
    )
    tenants = []
    for index in range(TENANTS):
        owner = get_user_model().objects.create_user(f"owner-{index}", password="x")
        tenants.append(tenant_services.create_tenant(SYSTEM, f"t{index:03d}", owner.username))
    placed = []
    for index in range(gateways):
        tenant = tenants[index % TENANTS]
        gateway = Gateway.objects.create(
            tenant=tenant, name=f"gw-{index:04d}", spec={"runtime": "kubernetes"}
        )
        KubernetesPlacement.objects.create(gateway=gateway, cluster=cluster)
        namespace = names.namespace(tenant.slug)
        labels = names.gateway_labels(tenant.slug, gateway.name)
        for p in range(pods):
            pod = f"envoy-{gateway.name}-{p}"
            double.add_pod(namespace, pod, labels, names.workload(gateway.name))
            placed.append((namespace, pod, f"{tenant.slug}/{gateway.name}"))
    return placed


def write(double, placed, lines: int, start: int) -> None:
    for namespace, pod, key in placed:
        tenant, gateway = key.split("/")
        for n in range(start, start + lines):
            double.write_log(namespace, pod, access_line(tenant, gateway, n))
            if n % 10 == 0:
                double.write_log(namespace, pod, ENVOY_LINE)


def timed_pass(label: str, rows: list) -> None:
    per_pod = []
    original = pod_logs.collect_pod

    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            per_pod.append(time.perf_counter() - began)

    pod_logs.collect_pod = timed
    try:
        before = AccessLogEntry.objects.count()
        began = time.perf_counter()
        result = pod_logs.collect()
        total = time.perf_counter() - began
    finally:
        pod_logs.collect_pod = original
    stored = AccessLogEntry.objects.count() - before
    per_pod.sort()
    p95 = per_pod[min(len(per_pod) - 1, int(len(per_pod) * 0.95))]
    per_line = f"{1e6 * total / stored:8.0f}" if stored else f"{'-':>8}"
    rows.append((label, result.pods, result.reads, stored, total,
                 1000 * statistics.median(per_pod), 1000 * p95, per_line))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=50)
    parser.add_argument("--pods", type=int, default=2)
    parser.add_argument("--lines", type=int, default=500, help="new lines per pod per pass")
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    double = ApiServerDouble(validate=False).start()
    try:
        placed = setup(double, args.gateways, args.pods)
        rows: list = []
        for number in range(args.passes):
            write(double, placed, args.lines, number * args.lines)
            timed_pass(f"{args.lines} new lines/pod", rows)
        timed_pass("nothing new", rows)
        PodLogCursor.objects.all().delete()
        timed_pass("cursors lost: all again", rows)
        expected = len(placed) * args.lines * args.passes
        assert AccessLogEntry.objects.count() == expected, "each line stored once"
        print(f"{args.gateways} gateways × {args.pods} pods, {len(placed)} pod logs; "
              f"{expected:,} entries stored in all")  # fmt: skip
        print(f"{'pass':26} {'pods':>5} {'reads':>6} {'stored':>7} {'total s':>8} "
              f"{'ms/pod p50':>10} {'p95':>6} {'µs/line':>8}")  # fmt: skip
        for label, pods, reads, stored, total, median, p95, per_line in rows:
            print(f"{label:26} {pods:5} {reads:6} {stored:7} {total:8.2f} {median:10.1f} "
                  f"{p95:6.1f} {per_line}")  # fmt: skip
    finally:
        double.stop()
        teardown_databases(databases, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
