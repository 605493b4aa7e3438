"""Dubbo calls through a Gantry gateway's Envoy config (a Dubbo listener, one DubboRoute)
beside the same calls straight to the server: the latency Envoy's dubbo_proxy adds.

    .venv/bin/python bench/dubbo_calls.py [--calls 2000] [--rounds 3]

The server (tests/provisioning/dubbo_server.py) runs in its own process; the client makes one
call at a time on one connection, so each figure is a round trip. Both are Python: the
difference between the two columns is what the gateway adds, not what Envoy can do.
"""

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

SERVICE = "org.apache.dubbo.samples.Greeter"


def serve(ready) -> None:
    from tests.provisioning.dubbo_server import DubboServer

    server = DubboServer("bench")
    ready.send(server.port)
    while True:
        time.sleep(3600)


def measure(port: int, calls: int) -> list[float]:
    from tests.provisioning.dubbo_server import OK, DubboClient

    took = []
    with DubboClient(port) as client:
        for index in range(calls):
            start = time.perf_counter()
            answer = client.call(SERVICE, "sayHello", f"call {index}", version="1.0.0")
            took.append(time.perf_counter() - start)
            assert answer.status == OK, answer
    return took


def main() -> None:
    import django

    django.setup()
    from provisioning.ir.build import DesiredState
    from tests.provisioning.harness import running_envoy

    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=serve, args=(child,), daemon=True)
    process.start()
    port = parent.recv()
    state = DesiredState(
        tenant="bench", gateway="edge",
        spec={"listeners": [{"name": "rpc", "protocol": "Dubbo", "port": 20880}]},
        routes=[{"name": "greeter", "kind": "DubboRoute", "spec": {"rules": [
            {"matches": [{"service": SERVICE, "method": "sayHello", "version": "1.0.0"}],
             "backendRefs": [{"name": "server"}]}]}}],
        backends={"server": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": port}}]}},
    )  # fmt: skip
    results: dict[str, list[float]] = {"direct": [], "gateway": []}
    with running_envoy(state) as ports:
        measure(ports[20880], 200)  # warm up both paths
        measure(port, 200)
        for _ in range(args.rounds):
            results["gateway"] += measure(ports[20880], args.calls)
            results["direct"] += measure(port, args.calls)
    process.terminate()
    for name, took in results.items():
        ms = sorted(t * 1000 for t in took)
        p50, p99 = statistics.median(ms), ms[int(len(ms) * 0.99)]
        print(f"{name:8} calls {len(ms):6}  p50 {p50:.3f} ms  p99 {p99:.3f} ms  "
              f"{len(ms) / sum(took):,.0f} calls/s one at a time")  # fmt: skip
    added = statistics.median(results["gateway"]) - statistics.median(results["direct"])
    print(f"the gateway adds {added * 1e6:.0f} µs at the median")


if __name__ == "__main__":
    main()
