"""Long-lived connections survive unrelated changes: a WebSocket, a server-sent event stream and
a gRPC server stream stay open through a real gateway (a real Envoy on the real xDS server,
reading revisions from the database) while another route of the gateway changes 1,000 times,
each change written through the services and reconciled (compiled, validated by the warm
Envoy, stored and pushed), as a worker does."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
import requests
from django.conf import settings

from bench.noloss.longlived import LongLived
from gateways import services
from gateways.models import Route
from provisioning import tasks
from provisioning.models import LocalPort
from provisioning.reconcile import reconcile
from provisioning.xds.credentials import issue_replica_token
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.provisioning.grpc_servers import EchoServer
from tests.xds.harness import running_envoy, wait_for
from tests.xds.test_db_envoy import serve

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
CHANGES = 1000
UPSTREAM = Path(__file__).resolve().parents[2] / "bench" / "noloss" / "upstream.py"


@pytest.fixture
def aiohttp_upstream():
    process = subprocess.Popen([sys.executable, str(UPSTREAM)], stdout=subprocess.PIPE, text=True)
    port = int(process.stdout.readline())
    yield port
    process.terminate()
    process.wait(10)


def other(value: int) -> dict:
    header = {"set": [{"name": "x-change", "value": str(value)}]}
    modifier = {"type": "ResponseHeaderModifier", "responseHeaderModifier": header}
    return {"hostnames": ["other.test"],
            "rules": [{"backendRefs": [{"name": "web"}], "filters": [modifier]}]}  # fmt: skip


class Ticks:
    """A gRPC server stream (a tick every 100 ms) read on a thread of its own."""

    def __init__(self, port: int):
        self.received, self.error = 0, None
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.default_authority", "clock.test")]
        )
        self.call = self.channel.unary_stream("/gantry.test.Clock/Ticks")(b"100000,100")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for _ in self.call:
                self.received += 1
        except grpc.RpcError as error:
            self.error = error

    def stop(self):
        self.call.cancel()
        self.thread.join(10)
        self.channel.close()


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test provides it)")
def test_websocket_sse_and_grpc_streams_survive_1000_unrelated_changes(
    loop_thread, aiohttp_upstream, monkeypatch
):
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    clock = EchoServer("clock")
    tenant = make_org("acme").tenant
    gateway = services.create_gateway(ACTOR, tenant, "edge", {})
    web = {"endpoints": [{"ip": {"address": "127.0.0.1", "port": aiohttp_upstream}}]}
    services.create_backend(ACTOR, tenant, "web", web)
    services.create_backend(ACTOR, tenant, "clock", clock.backend())
    live = {"hostnames": ["live.test"], "rules": [{"backendRefs": [{"name": "web"}],
            "timeouts": {"request": "0s"}}]}  # fmt: skip
    services.create_route(ACTOR, gateway, "live", live)
    services.create_grpc_route(ACTOR, gateway, "clock",
                               {"hostnames": ["clock.test"],
                                "rules": [{"backendRefs": [{"name": "clock"}]}]})  # fmt: skip
    services.create_route(ACTOR, gateway, "other", other(0))
    assert reconcile(gateway.pk).result == "created"
    port = LocalPort.objects.get(gateway=gateway, listener_port=80).host_port
    xds = serve(loop_thread, settings.REDIS_URL, poll_interval=60)
    ticks = streams = None
    try:
        with running_envoy(xds.bootstrap(issue_replica_token(gateway, 0))):
            base = f"http://127.0.0.1:{port}"
            streams = LongLived(base, headers={"Host": "live.test"}).start()
            ticks = Ticks(port)
            wait_for(lambda: ticks.received > 0, timeout=10, message="the first tick")
            route = Route.objects.get(gateway=gateway, name="other")
            started = time.monotonic()
            for value in range(1, CHANGES + 1):
                services.patch_route_spec(ACTOR, route, other(value))
                assert reconcile(gateway.pk).result == "created"
            took = time.monotonic() - started
            session = requests.Session()
            wait_for(
                lambda: session.get(f"http://127.0.0.1:{port}/", headers={"Host": "other.test"},
                                    timeout=5).headers.get("x-change") == str(CHANGES),
                timeout=10, message="the last change served",
            )  # fmt: skip
            received_before = (ticks.received, len(streams.stream.times),
                               len(streams.websocket.times))  # fmt: skip
            time.sleep(1)  # every stream still delivering after the last change
            received_after = (ticks.received, len(streams.stream.times),
                              len(streams.websocket.times))  # fmt: skip
            finished = time.monotonic()
            streams.stop()
            ticks.stop()
    finally:
        if streams is not None:
            streams.stop()
        if ticks is not None:
            ticks.stop()
        xds.stop()
        clock.close()
    print(f"\n{CHANGES} changes in {took:.1f} s; ticks {received_after[0]}, events "
          f"{received_after[1]}, echos {received_after[2]}")  # fmt: skip
    assert streams.stream.error == "" and streams.stream.open_at_end, streams.stream.error
    assert streams.websocket.error == "" and streams.websocket.open_at_end, streams.websocket.error
    # The gRPC stream ended only when the test cancelled it.
    assert isinstance(ticks.error, grpc.RpcError)
    assert ticks.error.code() == grpc.StatusCode.CANCELLED
    assert all(a > b for b, a in zip(received_before, received_after, strict=True))
    # No gap: each kept delivering while the changes went by (a 100 ms cadence).
    assert streams.stream.longest_gap(started, finished) < 3
    assert streams.websocket.longest_gap(started, finished) < 3
