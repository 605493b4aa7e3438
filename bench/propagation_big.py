"""One route changed on a gateway with many routes (10,000 by default): from the write's
commit to the first request through a real Envoy that shows it, with the stages of the
reconcile, and the bytes the xDS server sends for the change against the whole snapshot.

    .venv/bin/python scripts/with_services.py -- .venv/bin/python bench/propagation_big.py \\
        [--routes 10000] [--changes 5] [--hosts 100] [--xds process|inline]

On a fresh PostgreSQL database: a gateway with ``--routes`` HTTPRoutes over ``--hosts``
hostnames (two rules each, 50 backends, all answered by one local upstream, in a process of
its own), the real xDS server (Redis notifications; ``manage.py xds_server`` in a process of
its own, as in production, or with ``--xds inline`` on an event loop of this process) and a
real Envoy on it (Delta xDS). Each
change sets a response header on one route through the services, then runs the reconcile as
a worker does (compile, warm-Envoy validation, store, announce) while a client in a process of
its own polls that route's URL (a millisecond apart; in one process with the reconcile, the
client's polling took the interpreter lock from it). Bytes: what the Delta session sends for
each change (inline: the serialized responses; as a process: what Envoy's xDS connection
received, framing included), against what the same session took for the whole config when
Envoy connected, counted the same way (the serialized size of the snapshot's resources alone
is printed beside it). The queue (~3 ms through Redis) is not part of it. Printed last:
Envoy's own time to apply a changed virtual host (its ``update_duration`` histogram for
VHDS), the largest stage left.

Goals (delivery at scale): p50 ≤ 250 ms; a one-route change's Delta bytes ≤ 1 % of the
snapshot.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from gantry_stack import UpstreamProcess, _drop_database, _fresh_database  # noqa: E402
from route_specs import route_spec as compile_route_spec  # noqa: E402

HOSTS = 100  # the hostnames the routes are spread over (``--hosts``)


def route_spec(i: int, value: str | None = None) -> dict:
    """``bench/route_specs.py``'s route ``i``; with ``value``, its exact rule also sets the
    response header ``x-change`` (what the client waits for)."""
    spec = compile_route_spec(i, HOSTS)
    if value is not None:
        header = {"set": [{"name": "x-change", "value": value}]}
        spec["rules"][1]["filters"] = [
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": header}
        ]
    return spec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument(
        "--hosts", type=int, default=100,
        help="hostnames the routes are spread over: a one-route change sends its host's "
        "virtual host (Envoy's unit of VHDS), so the bytes sent are about 1/hosts of the whole",
    )  # fmt: skip
    parser.add_argument(
        "--xds", choices=["process", "inline"], default="process",
        help="the xDS server as its own process (manage.py xds_server, as in production), or "
        "inline in this process (then it shares the worker's interpreter lock)",
    )  # fmt: skip
    args = parser.parse_args()
    global HOSTS
    HOSTS = args.hosts
    base = os.environ.get("DATABASE_URL")
    if not (base and os.environ.get("REDIS_URL")):
        raise SystemExit("run it under scripts/with_services.py (PostgreSQL and Redis)")
    url, name = _fresh_database(base)
    os.environ["DATABASE_URL"] = url
    try:
        return run(args.routes, args.changes, args.xds)
    finally:
        from django.db import connections

        connections.close_all()
        _drop_database(base, name)


def run(count: int, changes: int, mode: str = "process") -> int:
    import django

    django.setup()
    import requests
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from gateways import services
    from gateways.models import Route
    from gateways.services.routes import _validate
    from provisioning import tasks
    from provisioning.models import LocalPort
    from provisioning.reconcile import reconcile
    from provisioning.xds import delta, server
    from provisioning.xds.credentials import issue_replica_token
    from provisioning.xds.resources import encode
    from tests.conftest import make_org
    from tests.delivery.helpers import ACTOR
    from tests.xds.harness import LoopThread, running_envoy
    from tests.xds.test_db_envoy import DatabaseXds

    settings.GANTRY_LOCAL_PORT_RANGE = "61000-61999"
    call_command("migrate", verbosity=0)
    tasks.send_reconcile = lambda *args, **kwargs: None  # the bench runs each reconcile itself
    upstream = UpstreamProcess()
    tenant = make_org("acme").tenant  # the key DatabaseXds serves: acme/edge
    gateway = services.create_gateway(ACTOR, tenant, "edge", {})
    for i in range(50):
        services.create_backend(ACTOR, tenant, f"svc-{i}", upstream.backend())
    started = time.perf_counter()
    Route.objects.bulk_create(
        Route(gateway=gateway, name=f"route-{i}", spec=_validate(route_spec(i), gateway))
        for i in range(count)
    )
    print(f"{count} routes stored in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    first = reconcile(gateway.pk)
    print(f"first revision: {first.result} in {time.perf_counter() - started:.2f} s "
          f"({first.revision.size / 1e6:.1f} MB)", flush=True)  # fmt: skip
    # The bulk insert left every route's status empty: the first route write fills them all
    # in (10,000 updates, ~5 s). Then what autovacuum does within a minute of that: the
    # planner's statistics, and the visibility map that lets the routes' index answer a
    # reconcile's read alone (a long-lived gateway has both).
    services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway, name="route-0"),
                              route_spec(0, "0"))  # fmt: skip
    reconcile(gateway.pk)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE gateways_route")
    port = LocalPort.objects.get(gateway=gateway, listener_port=80).host_port

    sent: list[int] = []
    respond = delta.DeltaSession._response

    def counted(self, type_url, upserts, removals):
        response = respond(self, type_url, upserts, removals)
        if getattr(self, "node_id", "") == "acme/edge/0":  # not the warm validator's Envoy
            sent.append(response.ByteSize())
        return response

    exchange = server.AggregatedDiscoveryService._exchange

    def named(service, session, gateway_key, node_id, *rest):
        session.node_id = node_id
        return exchange(service, session, gateway_key, node_id, *rest)

    delta.DeltaSession._response = counted
    server.AggregatedDiscoveryService._exchange = named
    xds = XdsProcess() if mode == "process" else InlineXds(DatabaseXds, LoopThread)
    xds.start()
    totals, stages, ratios = [], [], []
    poller, envoy_update = None, None
    try:
        bootstrap = xds.bootstrap(issue_replica_token(gateway, 0))
        admin = bootstrap["admin"]["address"]["socket_address"]["port_value"]
        with running_envoy(bootstrap, timeout=120):
            session = requests.Session()
            snapshot_bytes = sum(
                item.body.ByteSize()
                for kind in encode(_resources(first.revision)).values()
                for item in kind.values()
            )
            deadline = time.monotonic() + 60  # the listener binds a moment after Envoy is ready
            while True:
                try:
                    session.get(f"http://127.0.0.1:{port}/", timeout=5)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            # The whole config as this Envoy's session received it, counted as each change is
            # (inline: the serialized responses; as a process: the connection's bytes).
            time.sleep(0.5)
            whole = sum(sent) if mode == "inline" else xds_rx_bytes(admin)
            poller = Poller()
            for change in range(1, changes + 1):
                i = (change * 997) % count
                route = Route.objects.get(gateway=gateway, name=f"route-{i}")
                time.sleep(0.5)
                sent.clear()
                received = xds_rx_bytes(admin)
                begin = time.time()
                services.patch_route_spec(ACTOR, route, route_spec(i, str(change)))
                committed = time.time()
                # The client polls from a process of its own, as clients do, while this one
                # reconciles as a worker does: what the reconcile does after the commit
                # (statuses, pruning) overlaps the delivery.
                poller.start(port, f"/exact/{i}", f"host-{i % HOSTS}.example.com", str(change))
                outcome = _reconcile(reconcile, gateway.pk)
                served = poller.served()
                totals.append(served - committed)
                stages.append(outcome.timings)
                time.sleep(0.2)
                # Inline: the serialized responses; as a process: what Envoy's xDS connection
                # received (gRPC and HTTP/2 framing included).
                size = sum(sent) if mode == "inline" else xds_rx_bytes(admin) - received
                ratios.append(size / whole)
                print(f"change {change}: {1000 * (served - committed):.0f} ms after the commit "
                      f"(write {1000 * (committed - begin):.0f} ms), {outcome.timings}, "
                      f"sent {size / 1e3:.1f} kB of {whole / 1e6:.2f} MB "
                      f"({snapshot_bytes / 1e6:.2f} MB of resources)",
                      flush=True)  # fmt: skip
            envoy_update = vhds_update_p50(admin)
    finally:
        if poller is not None:
            poller.stop()
        xds.stop()
        upstream.close()
    p50 = statistics.median(totals)
    print(f"\n{count} routes, {changes} one-route changes: p50 {1000 * p50:.0f} ms, "
          f"max {1000 * max(totals):.0f} ms (goal p50 ≤ 250 ms)")  # fmt: skip
    for stage in stages[0]:
        print(f"  {stage:9} {statistics.median(s.get(stage, 0) for s in stages):8.1f} ms")
    if envoy_update is not None:
        print(f"  envoy     {envoy_update:8.1f} ms  (Envoy's own VHDS update: P50 of its "
              "update_duration histogram over the run)")  # fmt: skip
    ratio = statistics.median(ratios)
    print(f"Delta bytes per change: {100 * ratio:.3f} % of the whole config's, counted alike "
          "(goal ≤ 1 %)")  # fmt: skip
    return 0 if p50 <= 0.25 and ratio <= 0.01 else 1


def vhds_update_p50(admin: int) -> float | None:
    """The median of Envoy's own VHDS updates, in ms (rebuilding the listener's route table
    for a changed virtual host): its ``update_duration`` histogram, cumulative."""
    import re

    import requests

    url = f"http://127.0.0.1:{admin}/stats?filter=vhds.*update_duration"
    match = re.search(r"P50\([^,]*,([0-9.]+)\)", requests.get(url, timeout=5).text)
    return float(match.group(1)) if match else None


def xds_rx_bytes(admin: int) -> int:
    """Bytes Envoy has received on its connection to the xDS server."""
    import requests

    from provisioning.xds.bootstrap import XDS_CLUSTER

    name = f"cluster.{XDS_CLUSTER}.upstream_cx_rx_bytes_total"
    for line in requests.get(f"http://127.0.0.1:{admin}/stats", timeout=5).text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split(":")[1])
    raise SystemExit(f"no {name} in Envoy's stats")


POLL = """
import http.client, sys, time
for line in sys.stdin:
    port, path, host, value = line.split()
    deadline = time.monotonic() + 60
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
    while time.monotonic() < deadline:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        response.read()
        if response.getheader("x-change") == value:
            break
        time.sleep(0.001)  # a millisecond between polls leaves the machine's cores to the rest
    print(time.time() if time.monotonic() < deadline else "timeout", flush=True)
    connection.close()
"""


class Poller:
    """A client in a process of its own: polls a URL until the ``x-change`` header has a value
    and tells when it saw it (its interpreter is not the reconcile's)."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-c", POLL], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def start(self, port: int, path: str, host: str, value: str) -> None:
        self.process.stdin.write(f"{port} {path} {host} {value}\n")
        self.process.stdin.flush()

    def served(self) -> float:
        line = self.process.stdout.readline().strip()
        if line in ("", "timeout"):
            raise SystemExit("the change was not served within 60 s")
        return float(line)

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)


class XdsProcess:
    """``manage.py xds_server`` on a free port, as production runs it (its own interpreter)."""

    def __init__(self):
        from tests.provisioning.harness import free_port

        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="xds-", suffix=".log")  # noqa: SIM115
        self.process = None

    def start(self):
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "xds_server", "--port", str(self.port)],
            cwd=root, env=os.environ.copy(), stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while b"ready on" not in Path(self.log.name).read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(Path(self.log.name).read_text(errors="replace")[-2000:])
            time.sleep(0.1)

    def bootstrap(self, token):
        from provisioning.xds.bootstrap import envoy_bootstrap
        from tests.provisioning.harness import free_port

        return envoy_bootstrap(
            gateway_key="acme/edge", replica=0, token=token, xds_address="127.0.0.1",
            xds_port=self.port, admin_port=free_port(),
        )  # fmt: skip

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
        self.log.close()


class InlineXds:
    """The xDS server on an event loop of this process (its responses can be counted)."""

    def __init__(self, server_class, loop_class):
        from django.conf import settings

        self.loop = loop_class()
        self.server = server_class(self.loop, settings.REDIS_URL, poll_interval=60)

    def start(self):
        self.server.start()

    def bootstrap(self, token):
        return self.server.bootstrap(token)

    def stop(self):
        self.server.stop()
        self.loop.close()


def _reconcile(reconcile, gateway_id):
    return reconcile(gateway_id, enqueued_at=time.time())


def _resources(revision):
    from provisioning.revisions import resources_of
    from provisioning.translate import Resources

    return Resources.from_dict(resources_of(revision))


if __name__ == "__main__":
    sys.exit(main())
