"""gRPC unary calls per second through a Gantry gateway's Envoy config, beside a minimal
hand-written Envoy config to the same grpcio server, in one run.

    .venv/bin/python bench/grpc_unary.py [--seconds 5] [--rounds 5] [--concurrency 32]

Variants (each its own Envoy with one worker, started alone):

- ``hand-written``: an h2c listener → one route ``/`` → one static HTTP/2 cluster: the floor.
- ``gantry``: what Gantry compiles for a gateway with one GRPCRoute (``service`` +
  ``method`` exact match) to a backend with ``appProtocol: gRPC`` — the gRPC-Web filter, the
  UNIMPLEMENTED fallback route and the listener defaults included.

The client is one process of grpc.aio (``--concurrency`` calls in flight over one HTTP/2
connection), the upstream a grpcio server in another process answering every call with its
request. Both are Python and use most of the CPU: calls per second show whether the gateway's
config costs anything visible end to end; Envoy's CPU time per call (from /proc) shows what it
costs in Envoy itself. Rounds interleave the variants; prints medians and the ratios.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from provisioning.envoy import envoy_binary, static_bootstrap  # noqa: E402
from provisioning.ir.build import DesiredState, gateway_ir  # noqa: E402
from provisioning.translate import translate  # noqa: E402

METHOD = "/bench.Echo/Say"
HOST = "grpc.bench"
PAYLOAD = b"x" * 64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(port: int) -> None:
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Say": grpc.unary_unary_rpc_method_handler(lambda request, _: request)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def gantry_bootstrap(listen: int, upstream: int, admin: int) -> dict:
    state = DesiredState(
        tenant="bench",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": "echo", "kind": "GRPCRoute", "spec": {"hostnames": [HOST], "rules": [
            {"matches": [{"method": {"service": "bench.Echo", "method": "Say"}}],
             "backendRefs": [{"name": "echo"}]}]}}],
        backends={"echo": {"appProtocol": "gRPC", "endpoints": [
            {"ip": {"address": "127.0.0.1", "port": upstream}}]}},
    )  # fmt: skip
    resources = translate(gateway_ir(state), address="127.0.0.1", port_map={80: listen})
    bootstrap = static_bootstrap(resources, admin_port=admin)
    for listener in bootstrap["static_resources"]["listeners"]:  # no access log file writes
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                network_filter["typed_config"].pop("access_log", None)
    return bootstrap


def hand_written_bootstrap(listen: int, upstream: int, admin: int) -> dict:
    hcm = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    options = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{
                "name": "in",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": hcm + "HttpConnectionManager",
                        "stat_prefix": "in", "codec_type": "AUTO",
                        "route_config": {"virtual_hosts": [{
                            "name": "all", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"},
                                        "route": {"cluster": "echo"}}]}]},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/"
                                     "envoy.extensions.filters.http.router.v3.Router"}}],
                    },
                }]}],
            }],
            "clusters": [{
                "name": "echo", "type": "STATIC", "connect_timeout": "5s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": options,
                        "explicit_http_config": {"http2_protocol_options": {}}}},
                "load_assignment": {"cluster_name": "echo", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {
                        "address": "127.0.0.1", "port_value": upstream}}}}]}]},
            }],
        },
    }  # fmt: skip


def envoy_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(admin: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("envoy did not become ready")


async def load(port: int, seconds: float, concurrency: int) -> list[float]:
    options = [("grpc.default_authority", HOST)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        call = channel.unary_unary(METHOD)
        for _ in range(50):  # warm-up
            assert await call(PAYLOAD, timeout=5) == PAYLOAD
        latencies: list[float] = []
        stop = time.perf_counter() + seconds

        async def worker():
            while time.perf_counter() < stop:
                started = time.perf_counter()
                await call(PAYLOAD, timeout=5)
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies


def run_variant(bootstrap: dict, listen: int, admin: int, seconds: float, concurrency: int):
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "bootstrap.json")
        Path(config).write_text(json.dumps(bootstrap))
        envoy = subprocess.Popen(
            [envoy_binary(), "--config-path", config, "--use-dynamic-base-id",
             "--concurrency", "1", "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready(admin)
            cpu_before = envoy_cpu_seconds(envoy.pid)
            latencies = asyncio.run(load(listen, seconds, concurrency))
            cpu = envoy_cpu_seconds(envoy.pid) - cpu_before
        finally:
            envoy.terminate()
            envoy.wait(timeout=10)
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "cpu_us": cpu / len(latencies) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    upstream = free_port()
    server = multiprocessing.Process(target=serve, args=(upstream,), daemon=True)
    server.start()
    time.sleep(1)
    variants = {"hand-written": hand_written_bootstrap, "gantry": gantry_bootstrap}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    try:
        for _ in range(args.rounds):
            for name, make in variants.items():
                listen, admin = free_port(), free_port()
                results[name].append(
                    run_variant(make(listen, upstream, admin), listen, admin, args.seconds,
                                args.concurrency)
                )  # fmt: skip
    finally:
        server.terminate()
    floor = {k: statistics.median(r[k] for r in results["hand-written"]) for k in results[
        "hand-written"][0]}  # fmt: skip
    print(f"{args.rounds} rounds × {args.seconds:g} s, {args.concurrency} calls in flight")
    print(f"{'variant':<14}{'calls/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'Envoy CPU µs/call':>20}{'ratio':>8}")  # fmt: skip
    for name, rounds in results.items():
        median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(f"{name:<14}{median['rps']:>10.0f}{median['rps'] / floor['rps']:>8.3f}"
              f"{median['p50_ms']:>9.2f}{median['p99_ms']:>9.2f}{median['cpu_us']:>20.1f}"
              f"{median['cpu_us'] / floor['cpu_us']:>8.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
