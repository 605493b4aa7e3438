"""Reconcile many gateways against the project's Kubernetes API server test double; print the
time per gateway and the API calls (and writes) of a reconcile with nothing to change.

    .venv/bin/python bench/k8s_reconcile.py [--tenants 100] [--per-tenant 10] [--no-validate]

Three passes over every gateway, through the real ``kubernetes`` client over HTTP: create
(empty cluster), no-op (nothing changed: the goal is zero writes), and change (every gateway
scaled by one replica). The double validates each applied object against the real schemas
unless ``--no-validate`` (that check is the double's cost, not Gantry's).
"""

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from kubernetes import client as k8s  # noqa: E402

from provisioning.runtimes.kubernetes import apply  # noqa: E402
from provisioning.runtimes.kubernetes.client import KubeApi  # noqa: E402
from provisioning.runtimes.kubernetes.inputs import (  # noqa: E402
    BackendAddress,
    ClusterSettings,
    GatewayInput,
    ListenerPort,
    TenantInput,
    TenantQuota,
)
from tests.kubernetes.apiserver_double import ApiServerDouble  # noqa: E402

CLUSTER = ClusterSettings(
    "LoadBalancer", "envoyproxy/envoy:v1.40.0", "gantry-xds.gantry.svc", 18000
)
QUOTA = TenantQuota(10, 10, 4, 8, 1, 2)


def fleet(tenants: int, per_tenant: int) -> list[tuple[TenantInput, GatewayInput]]:
    result = []
    for t in range(tenants):
        tenant = TenantInput(f"tenant-{t:03d}", QUOTA)
        for g in range(per_tenant):
            gateway = GatewayInput(
                tenant=tenant.slug, name=f"gw-{g}", vcpu=1 + g % 2, memory_gib=2 + 2 * (g % 2),
                replicas=1 + g % 3,
                listeners=(ListenerPort("http", 80, "HTTP"), ListenerPort("https", 443, "HTTPS")),
                backends=(BackendAddress(f"10.{t}.{g}.1", 8080),),
            )  # fmt: skip
            result.append((tenant, gateway))
    return result


def run_pass(api: KubeApi, double, gateways, label: str) -> dict:
    durations, calls, writes = [], [], []
    for tenant, gateway in gateways:
        before_calls, before_writes = api.counters.calls, api.counters.writes
        start = time.perf_counter()
        apply.reconcile(api, tenant, gateway, CLUSTER)
        durations.append(time.perf_counter() - start)
        calls.append(api.counters.calls - before_calls)
        writes.append(api.counters.writes - before_writes)
    total = sum(durations)
    print(
        f"{label:<8} {len(gateways)} gateways in {total:6.1f} s: "
        f"{1000 * total / len(gateways):6.1f} ms/gateway "
        f"(p50 {1000 * statistics.median(durations):5.1f} ms, "
        f"max {1000 * max(durations):6.1f} ms), "
        f"API calls/gateway {statistics.mean(calls):4.1f}, "
        f"writes/gateway {statistics.mean(writes):4.2f}"
    )
    return {"calls": calls, "writes": writes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--per-tenant", type=int, default=10)
    parser.add_argument("--no-validate", action="store_true")
    args = parser.parse_args()
    double = ApiServerDouble(validate=not args.no_validate).start()
    try:
        api = KubeApi(k8s.ApiClient(k8s.Configuration(host=double.host)))
        gateways = fleet(args.tenants, args.per_tenant)
        run_pass(api, double, gateways, "create")
        noop = run_pass(api, double, gateways, "no-op")
        scaled = [(t, replace(g, replicas=g.replicas + 1)) for t, g in gateways]
        run_pass(api, double, scaled, "change")
        print(f"objects on the double: {len(double.objects)}; retries: {api.counters.retries}")
        print(f"no-op reconcile: {max(noop['writes'])} writes at most (goal 0), "
              f"{statistics.mean(noop['calls']):.0f} reads each (a list per kind)")  # fmt: skip
    finally:
        double.stop()


if __name__ == "__main__":
    main()
