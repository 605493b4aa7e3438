"""What ``POST …/apply/`` and ``GET …/export/`` cost with a big file, through the whole Django
stack (middleware, auth, parsing, validation, services, audit, one transaction).

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/declarative_apply.py
    ... bench/declarative_apply.py --routes 50 200 --repeat 5

The file: one gateway, 20 backends, N routes and two policies. For each size, each repeat
uses a fresh tenant: the first apply (everything created), the same file again (everything
unchanged: nothing written), a dry run changing one route, the apply of that change, and an
export. Prints medians and p95 in milliseconds side by side. A throwaway database is created
and dropped (``test_<name>``, as the tests do); reconciles are not sent (no worker: what is
measured is the API).
"""

import argparse
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
from django.test import Client  # noqa: E402
from django.test.utils import (  # noqa: E402
    setup_databases,
    setup_test_environment,
    teardown_databases,
)

from provisioning import tasks  # noqa: E402
from tenants import services as tenant_services  # noqa: E402
from tenants.audit import Actor  # noqa: E402
from tenants.models import Plan  # noqa: E402

SYSTEM = Actor.system("bench")
STEPS = ["create", "unchanged", "dry run (1 change)", "apply (1 change)", "export"]


def file_text(routes: int, variant: int = 0) -> str:
    docs = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "edge"},
            "spec": {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        }
    ]
    docs += [
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "Backend",
            "metadata": {"name": f"app-{i}"},
            "spec": {"endpoints": [{"ip": {"address": f"10.0.0.{i + 1}", "port": 8080}}]},
        }
        for i in range(20)
    ]
    for i in range(routes):
        prefix = f"/r{i}" + ("/v2" if variant and i == 0 else "")
        docs.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": f"r-{i}"},
                "spec": {
                    "parentRefs": [{"name": "edge"}],
                    "hostnames": ["api.example.com"],
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                            "backendRefs": [{"name": f"app-{i % 20}"}],
                        }
                    ],
                },
            }
        )
    docs.append(
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "BackendTrafficPolicy",
            "metadata": {"name": "retries"},
            "spec": {
                "targetRefs": [{"kind": "Gateway", "name": "edge"}],
                "retry": {"numRetries": 2},
            },
        }
    )
    docs.append(
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "SecurityPolicy",
            "metadata": {"name": "cors"},
            "spec": {
                "targetRefs": [{"kind": "HTTPRoute", "name": "r-0"}],
                "cors": {"allowOrigins": ["https://app.example.com"]},
            },
        }
    )
    return "".join("---\n" + yaml.safe_dump(doc) for doc in docs)  # fmt: skip


def timed(call) -> float:
    start = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - start) * 1000
    assert response.status_code == 200, response.content[:500]
    return elapsed


def run(routes: int, repeat: int, client: Client, user) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    text, changed = file_text(routes), file_text(routes, variant=1)
    for attempt in range(repeat):
        slug = f"b{routes}-{attempt}"
        tenant_services.create_tenant(SYSTEM, slug, user.username, plan="enterprise")
        url = f"/api/v1/tenants/{slug}/apply/"

        def post(body, query=""):
            return client.post(url + query, body, content_type="application/yaml")  # noqa: B023

        times["create"].append(timed(lambda: post(text)))  # noqa: B023
        times["unchanged"].append(timed(lambda: post(text)))  # noqa: B023
        times["dry run (1 change)"].append(timed(lambda: post(changed, "?dryRun=true")))  # noqa: B023
        times["apply (1 change)"].append(timed(lambda: post(changed)))  # noqa: B023
        times["export"].append(timed(lambda: client.get(f"/api/v1/tenants/{slug}/export/")))  # noqa: B023
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tasks.send_reconcile = lambda *a, **k: None
    setup_test_environment()
    databases = setup_databases(verbosity=0, interactive=False)
    try:
        Plan.objects.filter(name="enterprise").update(
            max_gateways=1000, max_routes_per_gateway=max(args.routes) + 10
        )
        user = get_user_model().objects.create_user("bench", password="pw-bench")
        client = Client()
        client.force_login(user)
        results = {routes: run(routes, args.repeat, client, user) for routes in args.routes}
        header = f"{'step':<22}" + "".join(
            f"{f'{n} routes p50':>16}{'p95':>8}" for n in args.routes
        )
        print(f"documents per file: 23 + routes; {args.repeat} runs each (ms)")
        print(header)
        for step in STEPS:
            row = f"{step:<22}"
            for routes in args.routes:
                values = results[routes][step]
                row += f"{statistics.median(values):>16.0f}{p95(values):>8.0f}"
            print(row)
    finally:
        teardown_databases(databases, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
