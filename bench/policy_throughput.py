"""Throughput and p99 through a Gantry gateway's Envoy config, with and without policies, beside
a minimal hand-written Envoy config to the same upstream, in one run.

    .venv/bin/python bench/policy_throughput.py [--seconds 6] [--rounds 7] [--explain]

Variants (each its own Envoy with one worker, started alone, loaded with wrk -t2 -c32 over
keep-alive, as the Envoy and nginx baselines in docs/performance.md; the upstream is a private
nginx answering 200 with 1 KiB):

- ``hand-written``: listener → one route → one static cluster: the floor.
- ``gantry``: the config Gantry compiles for a gateway with one route to that backend.
- ``gantry+policies``: the same gateway with one SecurityPolicy (JWT signed with RS256, an API
  key, client-CIDR authorization) and a local rate limit high enough never to trigger (a feature
  the API would refuse is skipped, and said so).
- ``hand-written+checks``: the hand-written config with the same four checks (API key, JWT,
  client-CIDR RBAC, local rate limit) written the shortest way Envoy allows: what the checks
  cost in Envoy itself, whoever writes the config.
- ``…+edge defaults``: that config with the client-address and path-normalization settings
  Gantry puts on every listener.
- ``…, no x-ratelimit-*``: the same, with a ClientTrafficPolicy ``headers.disableRateLimitHeaders``
  (shown for what that setting saves; the goals are about the defaults).
- with ``--explain``: ``gantry+policies`` without the client-address setting
  (``use_remote_address``), without path normalization, and without both and the other
  listener settings (the early strip of a client's consumer header, websocket upgrades,
  ``strip_any_host_port``, the JWT error mapper): what each costs beside the checks.

Every variant gets the same requests: each carries a valid token and API key, which the
policies check and the other configs pass upstream untouched. (Carrying them costs every
config about 6% on its own, so comparing credential-carrying requests with bare ones would
charge the policies for the request's size.)

Prints medians over the rounds (rounds interleave the variants, so machine noise hits all) and
the ratios to the hand-written config, and beside them Envoy's CPU time per request (from
/proc), which moves much less with what else the shared machine runs than throughput does.
Goals (policies issue): ``gantry`` ≥ 0.95× its throughput; ``gantry+policies`` ≥ 0.85× and
≤ 0.5 ms added at p99.
"""

import argparse
import copy
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from config.errors import ValidationFailed  # noqa: E402
from gateways.validation.policies import validate_policy_spec  # noqa: E402
from provisioning.compile import compile_gateway  # noqa: E402
from provisioning.envoy import envoy_binary, static_bootstrap  # noqa: E402
from provisioning.ir.build import DesiredState  # noqa: E402
from provisioning.translate import Resources  # noqa: E402
from tests.provisioning.jwts import Key, claims, jwks  # noqa: E402

API_KEY = "gak_bench_0123456789abcdef"
ISSUER = "https://issuer.example"
GATEWAY = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}
NGINX = """daemon off; worker_processes 1; pid {prefix}/nginx.pid; error_log {prefix}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off;
  server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;
    location / {{ return 200 '{body}'; }} }} }}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)


def hand_written(port: int, upstream: int) -> Resources:
    address = {"socket_address": {"address": "127.0.0.1", "port_value": port}}
    manager = {
        "@type": HCM, "stat_prefix": "plain", "rds": {"route_config_name": "plain"},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
    }  # fmt: skip
    hcm = {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}
    chain = {"filters": [hcm]}
    listener = {"name": "plain", "address": address, "filter_chains": [chain]}
    route = {"name": "plain", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]}  # fmt: skip
    cluster = {"name": "app", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
        "cluster_name": "app", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": upstream}}}}]}]}}  # fmt: skip
    return Resources((listener,), (route,), (cluster,))


def typed(kind: str, **config) -> dict:
    return {"@type": f"type.googleapis.com/envoy.extensions.filters.http.{kind}", **config}


# What an edge proxy needs whatever its policies, and Gantry sets on every listener: the client's
# address from the connection (not from a header the client wrote) and paths normalized before
# routes and policies see them (docs/translation.md).
EDGE_DEFAULTS = {"use_remote_address": True, "normalize_path": True, "merge_slashes": True,
                 "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT"}  # fmt: skip


def hand_written_filters(port: int, upstream: int, jwks: str, edge: bool = False) -> Resources:
    """The hand-written config with the same four checks, written the shortest way Envoy allows
    (gateway-wide filter configs, no per-route lookups, no consumer-header stripping): what
    enforcing these policies costs in Envoy itself, whoever writes the config. ``edge`` adds
    the client-address and path settings Gantry puts on every listener."""
    resources = hand_written(port, upstream)
    provider = {"issuer": ISSUER, "audiences": ["bench"], "local_jwks": {"inline_string": jwks},
                "jwt_cache_config": {"jwt_cache_size": 1000}}  # fmt: skip
    bucket = {"max_tokens": 100_000_000, "tokens_per_fill": 100_000_000, "fill_interval": "1s"}
    percent = {"default_value": {"numerator": 100}, "runtime_key": "enabled"}
    filters = [
        ("api_key_auth", typed("api_key_auth.v3.ApiKeyAuth",
            credentials=[{"key": API_KEY, "client": "alice"}],
            key_sources=[{"header": "x-api-key"}], forwarding={"header": "x-gantry-consumer"})),
        ("jwt_authn", typed("jwt_authn.v3.JwtAuthentication", providers={"bench": provider},
            rules=[{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}])),
        ("rbac", typed("rbac.v3.RBAC", rules={"action": "ALLOW", "policies": {"cidr": {
            "permissions": [{"any": True}],
            "principals": [{"remote_ip": {"address_prefix": "127.0.0.0", "prefix_len": 8}}]}}})),
        ("local_ratelimit", typed("local_ratelimit.v3.LocalRateLimit", stat_prefix="limit",
            token_bucket=bucket, filter_enabled=percent, filter_enforced=percent,
            enable_x_ratelimit_headers="DRAFT_VERSION_03")),
    ]  # fmt: skip
    manager = resources.listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]
    if edge:
        manager.update(EDGE_DEFAULTS)
    manager["http_filters"][:0] = [
        {"name": f"envoy.filters.http.{name}", "typed_config": config} for name, config in filters
    ]
    return resources


# --explain: Gantry's policy config without its per-listener settings, to show what each costs.
CLIENT_ADDRESS = ("use_remote_address",)
PATHS = ("normalize_path", "merge_slashes", "path_with_escaped_slashes_action")
EXTRAS = ("early_header_mutation_extensions", "upgrade_configs", "strip_any_host_port",
          "local_reply_config")  # fmt: skip


def without(resources: Resources, settings: tuple[str, ...]) -> Resources:
    """The config with these HTTP connection manager settings removed from every listener."""
    resources = copy.deepcopy(resources)
    for listener in resources.listeners:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                for setting in settings:
                    network_filter["typed_config"].pop(setting, None)
    return resources


def policies(jwks: str) -> tuple[list[dict], list[str], dict]:
    """The policies the API accepts today (validated as the API would), what was skipped, and
    the headers a request needs to pass them."""
    candidates = [
        ("API key", "SecurityPolicy", {"targetRefs": [GATEWAY], "apiKeyAuth": {
            "credentialRefs": [{"kind": "Consumer", "name": "alice"}],
            "extractFrom": [{"headers": ["x-api-key"]}]}}),
        ("local rate limit", "BackendTrafficPolicy", {"targetRefs": [GATEWAY], "rateLimit": {
            "type": "Local", "local": {"rules": [
                {"limit": {"requests": 100_000_000, "unit": "Second"}}]}}}),
        ("client CIDR authorization", "SecurityPolicy", {"targetRefs": [GATEWAY],
            "authorization": {"defaultAction": "Deny", "rules": [
                {"action": "Allow", "principal": {"clientCIDRs": ["127.0.0.0/8"]}}]}}),
        ("JWT", "SecurityPolicy", {"targetRefs": [GATEWAY], "jwt": {"providers": [
            {"name": "bench", "issuer": ISSUER, "audiences": ["bench"],
             "localJWKS": {"inline": jwks}}]}}),
    ]  # fmt: skip
    accepted, skipped, security = [], [], {}
    for label, kind, spec in candidates:
        try:
            spec = validate_policy_spec(kind, spec, "edge", ["http"])
        except ValidationFailed as error:
            skipped.append(f"{label} ({error})")
            continue
        if kind == "SecurityPolicy":  # one SecurityPolicy per target: merge the features
            security.update({k: v for k, v in spec.items() if k != "targetRefs"})
        else:
            accepted.append({"name": "limits", "kind": kind, "spec": spec})
    if security:
        accepted.append({"name": "security", "kind": "SecurityPolicy",
                         "spec": {"targetRefs": [GATEWAY], **security}})  # fmt: skip
    return accepted, skipped, security


QUIET = {"name": "quiet", "kind": "ClientTrafficPolicy", "spec": validate_policy_spec(
    "ClientTrafficPolicy", {"targetRefs": [GATEWAY], "headers": {"disableRateLimitHeaders": True}},
    "edge", ["http"])}  # fmt: skip


def gantry(port: int, upstream: int, policy_list: list[dict]) -> Resources:
    state = DesiredState(
        tenant="bench", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": "all", "spec": {"rules": [{"backendRefs": [{"name": "app"}]}]}}],
        backends={"app": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": upstream}}]}},
        policies=policy_list, consumers={"alice": {"apiKeys": [API_KEY], "basicAuth": []}},
    )  # fmt: skip
    return compile_gateway(state, address="127.0.0.1", port_map={80: port})


class Envoy:
    def __init__(self, resources: Resources, directory: Path):
        self.admin = free_port()
        config = directory / f"envoy-{self.admin}.json"
        config.write_text(json.dumps(static_bootstrap(resources, admin_port=self.admin)))
        self.process = subprocess.Popen(
            [envoy_binary(), "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
             "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("Envoy did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def wrk(url: str, seconds: int, headers: dict) -> tuple[float, float, int]:
    """Requests per second, p99 in ms and the number of requests answered."""
    command = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} non-2xx answers (a policy refused)")
    return rps, p99_ms, int(re.search(r"(\d+) requests in", output).group(1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, seconds: int, headers: dict, envoy: "Envoy") -> tuple[float, float, float]:
    """Requests per second, p99 in ms, and Envoy's CPU time per request in µs: the last one
    depends much less than the first two on what else the shared machine runs."""
    before = cpu_seconds(envoy.process.pid)
    rps, p99_ms, requests = wrk(url, seconds, headers)
    return rps, p99_ms, (cpu_seconds(envoy.process.pid) - before) * 1e6 / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--explain", action="store_true",
        help="add Gantry's policy config without its client-address, path and other listener "
        "settings, to show what each costs",
    )  # fmt: skip
    args = parser.parse_args()
    subprocess.run([str(ROOT / "scripts" / "ensure-bench-tools.sh")], check=True)
    directory = Path(tempfile.mkdtemp(prefix="gantry-policy-bench-"))
    upstream = free_port()
    (directory / "nginx.conf").write_text(
        NGINX.format(prefix=directory, port=upstream, body="x" * 1024)
    )
    nginx = subprocess.Popen(
        ["nginx", "-p", str(directory), "-c", str(directory / "nginx.conf"),
         "-e", str(directory / "error.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        key = Key("RSA", "bench")  # RS256, as BASELINES.md measured jwt_authn
        policy_list, skipped, security = policies(jwks=jwks(key))
        headers = {"x-api-key": API_KEY}
        if "jwt" in security:
            token = key.sign(claims(ISSUER, "bench", lifetime=3600))
            headers["authorization"] = f"Bearer {token}"
        variants = {
            "hand-written": (lambda port: hand_written(port, upstream), headers),
            "gantry": (lambda port: gantry(port, upstream, []), headers),
            "gantry+policies": (lambda port: gantry(port, upstream, policy_list), headers),
            "hand-written+checks": (
                lambda port: hand_written_filters(port, upstream, jwks(key)),
                headers,
            ),
            "…+edge defaults": (
                lambda port: hand_written_filters(port, upstream, jwks(key), edge=True),
                headers,
            ),
            "…, no x-ratelimit-*": (
                lambda port: gantry(port, upstream, [*policy_list, QUIET]),
                headers,
            ),
        }
        if args.explain:
            for label, settings in (("−client address", CLIENT_ADDRESS), ("−paths", PATHS),
                                    ("−all three", CLIENT_ADDRESS + PATHS + EXTRAS)):  # fmt: skip
                variants[f"…policies {label}"] = (
                    lambda port, settings=settings: without(
                        gantry(port, upstream, policy_list), settings
                    ),
                    headers,
                )
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
        for round_number in range(args.rounds):
            for name, (build, request_headers) in variants.items():
                port = free_port()
                envoy = Envoy(build(port), directory)
                try:
                    results[name].append(measure(f"http://127.0.0.1:{port}/", args.seconds,
                                                 request_headers, envoy))  # fmt: skip
                finally:
                    envoy.stop()
            print(f"round {round_number + 1} of {args.rounds} done", flush=True)
    finally:
        nginx.terminate()
        nginx.wait(10)
        shutil.rmtree(directory, ignore_errors=True)

    def median(name: str, index: int) -> float:
        return statistics.median(run[index] for run in results[name])

    base_rps, base_p99, base_cpu = (median("hand-written", i) for i in range(3))
    print(f"\n{'variant':26}{'req/s':>10}{'vs hand':>9}{'p99 ms':>9}{'added p99':>11}"
          f"{'Envoy CPU/req':>15}{'vs hand':>9}")  # fmt: skip
    for name in results:
        rps, p99, cpu = (median(name, i) for i in range(3))
        print(f"{name:26}{rps:10.0f}{rps / base_rps:9.2f}{p99:9.2f}{p99 - base_p99:+11.2f}"
              f"{cpu:12.1f} µs{cpu / base_cpu:9.2f}")  # fmt: skip
    print("policies measured:", ", ".join(p["name"] + ": " + ", ".join(
        k for k in p["spec"] if k != "targetRefs") for p in policy_list))  # fmt: skip
    for reason in skipped:
        print("not measured (the API does not accept it yet):", reason[:160])
    plain = median("gantry", 0) / base_rps
    loaded = median("gantry+policies", 0) / base_rps
    added = median("gantry+policies", 1) - base_p99
    checks = median("hand-written+checks", 0) / base_rps
    edge = median("…+edge defaults", 0) / base_rps
    cpu_edge = median("…+edge defaults", 2)
    print(f"\nthe four checks written by hand: {checks:.2f}× the bare config; with the edge "
          f"defaults: {edge:.2f}×\nGantry's policies against those: {loaded / checks:.2f}× and "
          f"{loaded / edge:.2f}× (Envoy CPU per request: "
          f"{median('gantry+policies', 2) / cpu_edge:.2f}× the latter's)")  # fmt: skip
    ok = plain >= 0.95 and loaded >= 0.85 and added <= 0.5
    print(f"\ngoals (≥0.95×, ≥0.85× and ≤0.5 ms added at p99): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
