"""What policies and consumers cost a compile: the same gateway with and without them.

    .venv/bin/python bench/compile_policies.py [--routes 1000 10000] [--consumers 1000]
                                               [--repeat 3]

The gateway of ``compile_routes.py`` (N routes, 50 backends) plus: a gateway-wide
SecurityPolicy accepting the API keys of every consumer (two keys each), a gateway-wide
BackendTrafficPolicy (retries, circuit breaker, outlier detection), and on every tenth route a
route policy of its own (alternately basic auth over 10 consumers, or consistent hashing with
active health checks — a cluster variant per backend). Prints medians and the ratio to the same
gateway without policies.
"""

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compile_routes import desired_state  # noqa: E402

from provisioning.compile import gc_paused  # noqa: E402
from provisioning.envoy import validate_cold as validate  # noqa: E402  (--mode validate)
from provisioning.ir.build import DesiredState, gateway_ir  # noqa: E402
from provisioning.translate import translate  # noqa: E402

GATEWAY = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}
SHA = "{SHA}LnNEJV8jKtmfFq9Xj5SGUhsNZSU="


def with_policies(state: DesiredState, consumers: int) -> DesiredState:
    names = [f"c-{i}" for i in range(consumers)]
    secrets = {name: {"apiKeys": [f"gak_{i:08d}_a", f"gak_{i:08d}_b"],
                      "basicAuth": [{"hash": SHA}]} for i, name in enumerate(names)}  # fmt: skip
    policies = [
        {"name": "keys", "kind": "SecurityPolicy", "spec": {"targetRefs": [GATEWAY], "apiKeyAuth": {
            "credentialRefs": [{"kind": "Consumer", "name": n} for n in names],
            "extractFrom": [{"headers": ["x-api-key"]}]}}},
        {"name": "resilient", "kind": "BackendTrafficPolicy", "spec": {"targetRefs": [GATEWAY],
            "retry": {"numRetries": 2}, "circuitBreaker": {"maxConnections": 100},
            "healthCheck": {"passive": {"consecutive5XxErrors": 5}}}},
    ]  # fmt: skip
    for i, route in enumerate(state.routes[::10]):
        target = {"group": GATEWAY["group"], "kind": "HTTPRoute", "name": route["name"]}
        if i % 2:
            policies.append(
                {
                    "name": f"basic-{i}",
                    "kind": "SecurityPolicy",
                    "spec": {
                        "targetRefs": [target],
                        "basicAuth": {
                            "users": [{"kind": "Consumer", "name": n} for n in names[:10]]
                        },
                    },
                }
            )
        else:
            policies.append(
                {
                    "name": f"sticky-{i}",
                    "kind": "BackendTrafficPolicy",
                    "spec": {
                        "targetRefs": [target],
                        "loadBalancer": {
                            "type": "ConsistentHash",
                            "consistentHash": {"type": "SourceIP", "tableSize": 65537},
                        },
                        "healthCheck": {"active": {"type": "HTTP", "http": {"path": "/healthz"}}},
                    },
                }
            )
    return replace(state, policies=policies, consumers=secrets)  # fmt: skip


def measure(state: DesiredState) -> dict:
    started = time.perf_counter()
    with gc_paused():
        resources = translate(gateway_ir(state))
    compiled = time.perf_counter()
    result = validate(resources)
    validated = time.perf_counter()
    if not result.ok:
        raise SystemExit(f"Envoy rejected the config: {result.message}")
    return {"compile": compiled - started, "validate": validated - compiled,
            "clusters": len(resources.clusters)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--routes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--consumers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'routes':>7} {'policies':>9} {'compile':>9} {'ratio':>6} {'validate':>9} "
          f"{'ratio':>6} {'clusters':>9}")  # fmt: skip
    for routes in args.routes:
        plain = desired_state(routes)
        rich = with_policies(plain, args.consumers)
        base = [measure(plain) for _ in range(args.repeat)]
        runs = [measure(rich) for _ in range(args.repeat)]
        b = {key: statistics.median(run[key] for run in base) for key in base[0]}
        m = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"{routes:>7} {'none':>9} {b['compile']:>8.3f}s {'':>6} {b['validate']:>8.3f}s "
              f"{'':>6} {b['clusters']:>9}")  # fmt: skip
        print(f"{routes:>7} {len(rich.policies):>9} {m['compile']:>8.3f}s "
              f"{m['compile'] / b['compile']:>5.2f}x {m['validate']:>8.3f}s "
              f"{m['validate'] / b['validate']:>5.2f}x {m['clusters']:>9}")  # fmt: skip


if __name__ == "__main__":
    main()
