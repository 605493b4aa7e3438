"""A global rate limit on the local runtime, end to end: a policy written through the services,
reconciled, delivered by the real xDS server to two replicas run by the real runtime agent,
both asking the real rate limit service (Redis). Requests spread by the kernel over the two
replicas (one listener port, SO_REUSEPORT) are limited as one."""

import time

import pytest
import requests

from gateways import services
from gateways.models import Gateway
from provisioning.models import LocalReplica
from provisioning.reconcile import reconcile
from provisioning.runtimes.local.admin import admin_request
from tests.delivery.helpers import ACTOR
from tests.ratelimit.service import start_service
from tests.runtime.test_local_runtime import make_gateway, phase_is
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
LIMIT = 12


@pytest.fixture
def service(tmp_path, settings):
    process = start_service(tmp_path)
    settings.GANTRY_RATELIMIT_PORT = process.port  # what the compiled config points at
    yield process
    process.stop()


def asked(replica: LocalReplica) -> int:
    """How many times this replica asked the service (its Envoy's own counters)."""
    _, body = admin_request(replica.admin_socket, "GET", "/stats?filter=ratelimit")
    return sum(int(line.rsplit(": ", 1)[1]) for line in body.splitlines()
               if line.split(": ")[0].endswith((".ok", ".over_limit")))  # fmt: skip


def test_two_replicas_share_one_global_limit(stack, upstream, service):
    gateway = make_gateway(upstream, replicas=2)
    rate_limit = {"type": "Global", "global": {"rules": [
        {"limit": {"requests": LIMIT, "unit": "Hour"}}]}}  # fmt: skip
    services.create_policy(ACTOR, gateway, "limits", "BackendTrafficPolicy", {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}],
        "rateLimit": rate_limit,
    })  # fmt: skip
    outcome = reconcile(gateway.pk)
    assert outcome.result == "created", outcome.revision.message
    wait_for(lambda: phase_is(gateway, "Ready", 2), timeout=30, interval=0.05,
             message=lambda: f"Ready\n{stack.logs()}")  # fmt: skip
    url = Gateway.objects.get(pk=gateway.pk).status["listeners"][0]["url"]
    if 3600 - time.time() % 3600 < 30:  # the counts are per clock hour
        time.sleep(3600 - time.time() % 3600 + 0.1)
    statuses = []
    for _ in range(4 * LIMIT):
        with requests.Session() as fresh:  # a new connection: the kernel picks a replica
            statuses.append(fresh.get(url, timeout=5).status_code)
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == 3 * LIMIT

    # The agent reports a replica's admin socket once the admin answers, which can come after
    # the replica is connected and counted Ready: wait for both.
    def reported():
        rows = list(LocalReplica.objects.filter(gateway=gateway))
        return rows if len(rows) == 2 and all(row.admin_socket for row in rows) else None

    replicas = wait_for(reported, timeout=30, interval=0.05, message="both admin sockets")
    counts = [asked(replica) for replica in replicas]
    assert sum(counts) == 4 * LIMIT and all(counts), counts  # both replicas took a share
