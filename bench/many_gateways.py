"""Many gateways: how the platform's delivery grows with gateways and xDS streams.

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/many_gateways.py \
        [--sizes 10,100,1000] [--servers 2] [--workers 1]

For each size N: N gateways across N/10 tenants (10 a tenant, the standard plan's quota),
each with one route to its tenant's backend and two replicas, in a fresh PostgreSQL database
(Redis as broker and change notifier). Each gateway is compiled once through the real
reconcile. Then ``--servers`` real xDS servers (``manage.py xds_server``) side by side, and 2N
replicas spread over them: ``--envoys`` real Envoys (replica 1 of the first gateways of the
tenant whose backend changes, each its own process) and simulated ones for the rest
(``bench/xds_client.py``: Delta ADS with each replica's own token, ACKing every response, in
this process). Measured:

- **xDS server memory**: each server's resident memory before and after its streams
  converged (every stream holding its gateway's current revision): bytes per stream.
- **Converge**: from starting the streams until every one holds its gateway's current
  revision (the cold start of a whole fleet reconnecting).
- **Fan-out**: a tenant's backend changed through the API (gunicorn) → a worker (``celery
  worker``, a real process) reconciles the tenant's 10 gateways → every one of their 20 streams
  holds the new revision: time from the API's answer to each stream's update (p50, p99, max),
  and to the servers hearing each replica ACK it (its receipt), real Envoys apart.
- **reconcile_all**: the periodic heal sent through the broker (``apply_async``), run by the
  worker(s): time until the worker has finished every gateway's reconcile.
- **Fan-out during reconcile_all**: the same backend change sent once a tenth of the heal's
  reconciles are done: how long the tenant's change waits behind the heal.
- **API p99** of ``GET gateways/`` and ``GET gateways/{g}/`` (one tenant's token) while
  reconcile_all runs, beside the same requests when idle.

Backends belong to one tenant, so a backend "shared by every gateway" is a tenant's backend
shared by its gateways; one change never fans out across tenants.
"""

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gantry_stack import _drop_database, _fresh_database, free_port, percentile  # noqa: E402

PER_TENANT = 10
STREAMS_PER_CHANNEL = 50


def setup_environment(prefix: str) -> tuple[str, str]:
    base, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not (base and redis_url and base.startswith("postgres")):
        raise SystemExit("needs DATABASE_URL (PostgreSQL) and REDIS_URL: run it under "
                         "scripts/with_services.py")  # fmt: skip
    url, name = _fresh_database(base)
    os.environ.update(
        DATABASE_URL=url, CELERY_BROKER_URL=redis_url, GANTRY_CACHE_PREFIX=prefix,
        GANTRY_BROKER_KEY_PREFIX=prefix, GANTRY_CELERY_QUEUE=prefix,
        GANTRY_API_RATE="1000000/minute", GANTRY_LOCAL_PORT_RANGE="20000-29999",
        DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    return base, name


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Processes:
    def __init__(self, directory: Path):
        self.directory, self.running = directory, []

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.directory / f"{name}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        log.close()
        self.running.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.running = []


def wait(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"{what}: not within {timeout} s")


def create_fleet(size: int):
    """``size`` gateways, compiled: {tenant slug: (tenant, [gateways])}, and an API token."""
    from django.contrib.auth import get_user_model

    from gateways import services
    from provisioning import tasks
    from provisioning.reconcile import reconcile
    from tenants import services as tenant_services
    from tenants.audit import Actor

    actor = Actor.system("bench")
    original, tasks.send_reconcile = tasks.send_reconcile, lambda *args, **kwargs: None
    fleet, token = {}, None
    try:
        for number in range(max(1, size // PER_TENANT)):
            slug = f"t{number:03d}"
            owner = get_user_model().objects.create_user(username=f"{slug}-owner", password="x")
            tenant = tenant_services.create_tenant(actor, slug, f"{slug}-owner", plan="standard")
            if token is None:
                token = tenant_services.create_token(actor, tenant, "bench", user=owner)[1]
            services.create_backend(actor, tenant, "app", {
                "endpoints": [{"ip": {"address": "192.0.2.10", "port": 8080}}]})  # fmt: skip
            gateways = []
            for index in range(min(PER_TENANT, size)):
                gateway = services.create_gateway(actor, tenant, f"g{index}", {"replicas": 2})
                services.create_route(actor, gateway, "all", {"rules": [
                    {"backendRefs": [{"name": "app"}]}]})  # fmt: skip
                outcome = reconcile(gateway.pk)
                if outcome.result != "created":
                    raise RuntimeError(f"{slug}/g{index}: {outcome}")
                gateways.append(gateway)
            fleet[slug] = (tenant, gateways)
    finally:
        tasks.send_reconcile = original
    return fleet, token


def current_versions(gateway_ids: list[int]) -> dict[int, str]:
    from provisioning.models import ConfigRevision

    rows = ConfigRevision.objects.filter(gateway_id__in=gateway_ids, current=True)
    return dict(rows.values_list("gateway_id", "content_hash"))


class Streams:
    """The simulated replicas, in an event loop of their own thread."""

    def __init__(self, replicas, ports: list[int]):
        from bench import xds_client

        self.client, self.replicas, self.ports = xds_client, replicas, ports
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stop_event = None
        self.tasks, self.channels = [], []

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(600)

    def start(self) -> None:
        from grpc import aio

        async def go():
            self.stop_event = asyncio.Event()
            for position, replica in enumerate(self.replicas):
                if position % STREAMS_PER_CHANNEL == 0:
                    port = self.ports[(position // STREAMS_PER_CHANNEL) % len(self.ports)]
                    self.channels.append(aio.insecure_channel(f"127.0.0.1:{port}"))
                run = self.client.run(self.channels[-1], replica, self.stop_event)
                self.tasks.append(asyncio.ensure_future(run))

        self._run(go())

    def close(self) -> None:
        async def finish():
            self.stop_event.set()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            for channel in self.channels:
                await channel.close()

        self._run(finish())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def holding(replicas, by_gateway: dict[str, int], versions: dict[int, str], types=None) -> list:
    """The replicas that hold ``types`` (default: every type) at their gateway's current
    version. (Delta sends only what changed: after a backend change only the clusters.)"""
    from bench.xds_client import CLUSTER, LISTENER, ROUTES, VHOSTS

    types = types or (CLUSTER, LISTENER, ROUTES, VHOSTS)
    return [
        r for r in replicas
        if all(r.version(t) == versions.get(by_gateway[r.gateway_key]) for t in types)
    ]  # fmt: skip


def api_p99(session, urls: list[str], seconds: float) -> tuple[float, float, int]:
    """(p50, p99) in ms and the count of GETs over ``seconds``, one request after another."""
    times, deadline, position = [], time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        answer = session.get(urls[position % len(urls)], timeout=30)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {answer.url}: {answer.status_code}")
        position += 1
    return percentile(times, 0.5), percentile(times, 0.99), len(times)


def finished_reconciles(processes: Processes, workers: int) -> int:
    return sum(len(re.findall(r"reconcile_gateway\[[^\]]+\] succeeded",
                              processes.log(f"worker{i}"))) for i in range(workers))  # fmt: skip


def measure(size: int, servers: int, workers: int, envoys: int, directory: Path) -> dict:
    from bench.xds_client import CLUSTER, Replica
    from provisioning.models import ConfigRevision, ReplicaReceipt
    from provisioning.xds.bootstrap import envoy_bootstrap
    from provisioning.xds.credentials import issue_replica_token
    from tests.xds.harness import running_envoy

    result: dict = {"size": size}
    started = time.perf_counter()
    fleet, token = create_fleet(size)
    result["setup_s"] = time.perf_counter() - started
    gateways = [g for _, items in fleet.values() for g in items]
    by_gateway = {f"{g.tenant.slug}/{g.name}": g.pk for g in gateways}
    # Replica 1 of the first ``envoys`` gateways of the first tenant (the one whose backend
    # changes) is a real Envoy; every other replica is simulated.
    real = [(g, 1) for g in next(iter(fleet.values()))[1][:envoys]]
    replicas = [
        Replica(f"{g.tenant.slug}/{g.name}", index, issue_replica_token(g, index),
                (f"{g.tenant.slug}/{g.name}/port/80",))
        for g in gateways for index in (0, 1) if (g, index) not in real
    ]  # fmt: skip
    real_nodes = [f"{g.tenant.slug}/{g.name}/{index}" for g, index in real]
    processes = Processes(directory)
    python = sys.executable
    ports = [free_port() for _ in range(servers)]
    real_envoys = contextlib.ExitStack()
    try:
        xds = [processes.start(f"xds{i}", [python, "manage.py", "xds_server", "--port", str(p)])
               for i, p in enumerate(ports)]  # fmt: skip
        for i in range(workers):
            processes.start(f"worker{i}", [
                python, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO",
                "--concurrency", "2",
                "--without-mingle", "--without-gossip", "--without-heartbeat"])  # fmt: skip
        web_port = free_port()
        processes.start("web", [str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi",
                                "--bind", f"127.0.0.1:{web_port}", "--workers", "2"])  # fmt: skip
        for i in range(servers):
            wait(lambda i=i: "ready on" in processes.log(f"xds{i}"), 60, f"xds{i} ready")
        for i in range(workers):
            wait(lambda i=i: " ready." in processes.log(f"worker{i}"), 60, f"worker{i} ready")
        time.sleep(1)
        idle_rss = [rss_kib(p.pid) for p in xds]
        # Everything made so far lives to the end: the collector need not walk it again and
        # again while this process also plays 2N replicas.
        gc.collect()
        gc.freeze()
        streams = Streams(replicas, ports)
        versions = current_versions(list(by_gateway.values()))
        connect = time.perf_counter()
        streams.start()
        for position, (gateway, index) in enumerate(real):
            real_envoys.enter_context(running_envoy(envoy_bootstrap(
                gateway_key=f"{gateway.tenant.slug}/{gateway.name}", replica=index,
                token=issue_replica_token(gateway, index), xds_address="127.0.0.1",
                xds_port=ports[position % servers], admin_port=free_port(),
            ), timeout=max(60, size * 0.5)))  # fmt: skip
        wait(lambda: len(holding(replicas, by_gateway, versions)) == len(replicas),
             max(60, size * 0.5), "every stream at its revision", interval=0.1)  # fmt: skip
        result["converge_s"] = time.perf_counter() - connect
        # The servers record every ACK and a receipt per replica: until they have, they are
        # still busy with the fleet's arrival.
        everyone = len(replicas) + len(real)
        wait(lambda: ReplicaReceipt.objects.count() >= everyone, max(60, size * 0.5),
             "every replica's receipt recorded", interval=0.1)  # fmt: skip
        result["receipts_s"] = time.perf_counter() - connect
        time.sleep(1)
        busy_rss = [rss_kib(p.pid) for p in xds]
        result["rss_idle_mib"] = sum(idle_rss) / 1024
        result["rss_streams_mib"] = sum(busy_rss) / 1024
        result["kib_per_stream"] = (sum(busy_rss) - sum(idle_rss)) / everyone

        # Fan-out: one tenant's backend changed through the API.
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        first_slug = next(iter(fleet))
        base = f"http://127.0.0.1:{web_port}/api/v1/tenants/{first_slug}/"
        wait(lambda: _ok(session, base + "gateways/"), 60, "the API answering")
        affected_ids = [g.pk for g in fleet[first_slug][1]]
        affected = [r for r in replicas if by_gateway[r.gateway_key] in affected_ids]
        fanouts, compiles, server_side, real_side = [], [], [], []

        def change_backend(port: int) -> tuple[float, list[float], float]:
            """PATCH the tenant's backend; when each of its 20 streams got the new revision
            (seconds after the API's answer), and when the 10 revisions were all stored."""
            before = current_versions(affected_ids)
            answer = session.patch(
                base + "backends/app/",
                json={"spec": {"endpoints": [{"ip": {"address": "192.0.2.10", "port": port}}]}},
                headers={"Content-Type": "application/merge-patch+json"}, timeout=30,
            )  # fmt: skip
            answered, answered_at = time.monotonic(), time.time()
            if answer.status_code not in (200, 202):
                raise RuntimeError(f"PATCH backend: {answer.status_code} {answer.text[:300]}")
            seen: dict[str, float] = {}
            compiled: list[float] = []

            def all_updated():
                now_versions = current_versions(affected_ids)
                if any(now_versions[g] == before[g] for g in affected_ids):
                    return False
                if not compiled:
                    compiled.append(time.monotonic() - answered)
                for replica in holding(affected, by_gateway, now_versions, (CLUSTER,)):
                    seen.setdefault(replica.node_id, replica.updated_at)
                return len(seen) == len(affected)

            wait(all_updated, max(60, size * 1.0), "the fan-out", interval=0.005)
            return answered_at, [seen[r.node_id] - answered for r in affected], compiled[0]

        for round_number in range(3):
            answered_at, arrivals, compiled = change_backend(8081 + round_number)
            fanouts += arrivals
            compiles.append(compiled * 1000)
            arrivals = sorted(value * 1000 for value in arrivals)
            # The servers' view: when they heard each replica ACK the new revision (its
            # receipt), which this process's own scheduling cannot delay.
            heard = wait(lambda: _receipts(affected_ids, len(affected) + len(real)), 60,
                         "receipts")  # fmt: skip
            by_node = {node: (moment - answered_at) * 1000 for node, moment in heard}
            heard = sorted(by_node.values())
            server_side.extend(heard)
            real_side.extend(by_node[node] for node in real_nodes)
            print(f"  fan-out round {round_number + 1}: revisions after {compiled * 1000:.0f}"
                  f" ms; streams updated after {arrivals[0]:.0f} … {arrivals[-1]:.0f} ms; "
                  f"ACKs heard by the servers after {heard[0]:.0f} … {heard[-1]:.0f} ms",
                  flush=True)  # fmt: skip
        result["fanout_ms"] = [value * 1000 for value in fanouts]
        result["fanout_compiled_ms"] = compiles
        result["fanout_heard_ms"] = server_side
        result["fanout_real_ms"] = real_side

        # API p99 idle, then while reconcile_all runs through the worker(s).
        urls = [base + "gateways/"] + [base + f"gateways/{g.name}/" for g in fleet[first_slug][1]]
        result["api_idle"] = api_p99(session, urls, 5)
        from provisioning.tasks import reconcile_all

        done_before = finished_reconciles(processes, workers)
        sent = time.monotonic()
        reconcile_all.apply_async(queue=os.environ["GANTRY_CELERY_QUEUE"])
        loaded: list[tuple] = []
        thread = threading.Thread(target=lambda: loaded.append(
            api_p99(session, urls, max(3.0, size * 0.01))))  # fmt: skip
        thread.start()
        # A tenant's change while the heal is under way (a tenth of it done): the heal's
        # thousand reconciles must not stand between the tenant and its replicas.
        wait(lambda: finished_reconciles(processes, workers) - done_before >= size // 10,
             max(120, size * 1.0), "the heal under way", interval=0.02)  # fmt: skip
        _, arrivals, compiled = change_backend(9000)
        result["fanout_heal_ms"] = [value * 1000 for value in arrivals]
        result["fanout_heal_compiled_ms"] = compiled * 1000
        healed = finished_reconciles(processes, workers) - done_before
        print(f"  fan-out during reconcile_all: revisions after {compiled * 1000:.0f} ms; "
              f"streams updated after {min(arrivals) * 1000:.0f} … {max(arrivals) * 1000:.0f}"
              f" ms ({healed} of {size} heal reconciles done by then)", flush=True)  # fmt: skip
        wait(lambda: finished_reconciles(processes, workers) - done_before
             >= size + len(affected_ids),
             max(120, size * 1.0), "reconcile_all finished", interval=0.1)  # fmt: skip
        result["reconcile_all_s"] = time.monotonic() - sent
        thread.join()
        result["api_busy"] = loaded[0]
        result["revisions"] = ConfigRevision.objects.count()
        result["stream_errors"] = sum(1 for r in replicas if r.error)
        streams.close()
        real_envoys.close()
    except BaseException:
        for name in ("worker0", "web", "xds0"):
            print(f"--- {name}:\n" + processes.log(name)[-3000:], file=sys.stderr)
        raise
    finally:
        real_envoys.close()
        processes.stop()
    return result


def _receipts(gateway_ids: list[int], expected: int) -> list[tuple[str, float]] | None:
    """(node, when) the servers heard each replica of these gateways ACK its current revision
    (None until every replica has)."""
    from provisioning.models import ReplicaReceipt

    rows = ReplicaReceipt.objects.filter(
        revision__gateway_id__in=gateway_ids, revision__current=True
    ).values_list("node_id", "applied_at")
    moments = [(node, applied.timestamp()) for node, applied in rows]
    return moments if len(moments) >= expected else None


def _ok(session, url: str) -> bool:
    try:
        return session.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _p50(values: list[float]) -> str:
    return f"{percentile(values, 0.5):.0f}" if values else "-"


def _max(values: list[float]) -> str:
    return f"{max(values):.0f}" if values else "-"


def report(results: list[dict], servers: int, workers: int, envoys: int) -> None:
    print(f"\n{servers} xDS server(s), {workers} worker(s) of concurrency 2; 2 replicas per "
          f"gateway, {envoys} of them real Envoys, the others simulated\n")  # fmt: skip
    rows = [
        ("gateways", lambda r: f"{r['size']}"),
        ("xDS streams", lambda r: f"{2 * r['size']}"),
        ("setup + first compile (s)", lambda r: f"{r['setup_s']:.1f}"),
        ("all streams converged (s)", lambda r: f"{r['converge_s']:.2f}"),
        ("… receipts recorded (s)", lambda r: f"{r['receipts_s']:.2f}"),
        ("xDS RSS idle (MiB, all)", lambda r: f"{r['rss_idle_mib']:.0f}"),
        ("xDS RSS with streams (MiB)", lambda r: f"{r['rss_streams_mib']:.0f}"),
        ("KiB per stream", lambda r: f"{r['kib_per_stream']:.0f}"),
        (
            "fan-out: 10 revisions (ms)",
            lambda r: f"{statistics.median(r['fanout_compiled_ms']):.0f}",
        ),
        ("fan-out p50 (ms)", lambda r: f"{percentile(r['fanout_ms'], 0.5):.0f}"),
        ("fan-out p99 (ms)", lambda r: f"{percentile(r['fanout_ms'], 0.99):.0f}"),
        ("… ACKs heard p50 (ms)", lambda r: f"{percentile(r['fanout_heard_ms'], 0.5):.0f}"),
        ("… ACKs heard p99 (ms)", lambda r: f"{percentile(r['fanout_heard_ms'], 0.99):.0f}"),
        ("… real Envoys' ACKs p50 (ms)", lambda r: _p50(r["fanout_real_ms"])),
        ("… real Envoys' ACKs max (ms)", lambda r: _max(r["fanout_real_ms"])),
        ("fan-out max (ms)", lambda r: f"{max(r['fanout_ms']):.0f}"),
        ("reconcile_all (s)", lambda r: f"{r['reconcile_all_s']:.1f}"),
        ("… per gateway (ms)", lambda r: f"{r['reconcile_all_s'] * 1000 / r['size']:.1f}"),
        ("fan-out in reconcile_all p50", lambda r: f"{percentile(r['fanout_heal_ms'], 0.5):.0f}"),
        ("… max (ms)", lambda r: f"{max(r['fanout_heal_ms']):.0f}"),
        ("API p50 idle (ms)", lambda r: f"{r['api_idle'][0]:.1f}"),
        ("API p99 idle (ms)", lambda r: f"{r['api_idle'][1]:.1f}"),
        ("API p50 in reconcile_all", lambda r: f"{r['api_busy'][0]:.1f}"),
        ("API p99 in reconcile_all", lambda r: f"{r['api_busy'][1]:.1f}"),
        ("stream errors", lambda r: f"{r['stream_errors']}"),
    ]
    for label, cell in rows:
        print(f"{label:30}" + "".join(f"{cell(r):>12}" for r in results))
    if len(results) > 1:
        first, last = results[0], results[-1]

        def fanout(result: dict) -> float:
            return statistics.median(result["fanout_ms"])

        grow = last["size"] / first["size"]
        print(f"\n×{grow:.0f} gateways: reconcile_all ×"
              f"{last['reconcile_all_s'] / first['reconcile_all_s']:.1f} (linear: the heal "
              f"compiles every gateway), converge ×{last['converge_s'] / first['converge_s']:.1f}"
              f", fan-out p50 ×{fanout(last) / fanout(first):.1f}"
              " (one tenant's 10 gateways: should not grow), API p99 in reconcile_all ×"
              f"{last['api_busy'][1] / first['api_busy'][1]:.1f} (should not grow)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100", help="gateways, comma-separated")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--envoys", type=int, default=3, help="real Envoy replicas (≤ 10)")
    args = parser.parse_args()
    results = []
    prefix = f"gantry-bench-{os.getpid()}-{random.randrange(1 << 30)}"
    for size in (int(part) for part in args.sizes.split(",")):
        base, name = setup_environment(prefix)
        import django
        from django.core.management import call_command
        from django.db import connections

        django.setup()
        logging.getLogger("provisioning").setLevel(logging.WARNING)
        connections["default"].close()
        connections["default"].settings_dict["NAME"] = name
        call_command("migrate", verbosity=0)
        directory = Path(tempfile.mkdtemp(prefix="gantry-many-"))
        print(f"{size} gateways: creating and compiling …", flush=True)
        try:
            results.append(measure(size, args.servers, args.workers, args.envoys, directory))
        finally:
            connections.close_all()
            _drop_database(base, name)
            os.environ["DATABASE_URL"] = base
        print(f"{size} gateways: done", flush=True)
    report(results, args.servers, args.workers, args.envoys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
