"""Each tenant's share of the main queue: a tenant's reconciles past its burst are sent at a
lower priority, so another tenant's change is not queued behind a flood of them. Over the
real Redis broker, then a real worker."""

import os

import pytest

from gateways import services
from provisioning import fair_share, tasks
from provisioning.models import ConfigRevision
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR, start_worker, stop_worker, use_queue, wait_for
from tests.delivery.test_fanout import compiled_order, waiting
from tests.delivery.test_heal import gateways_behind_the_platforms_back, purge

BURST = 10
FLOOD = 30


@pytest.fixture
def queue(settings):
    queue = f"gantry-test-{os.urandom(4).hex()}"
    use_queue(settings, queue)
    # An hour's window: the writes below all fall in one, however slow the machine.
    settings.GANTRY_TENANT_RECONCILE_BURST = BURST
    settings.GANTRY_TENANT_RECONCILE_WINDOW = 3600
    yield queue
    purge(queue, f"{queue}.fanout", f"{queue}.heal")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_change_is_not_queued_behind_another_tenants_flood(org, queue, monkeypatch, tmp_path):
    flooded = gateways_behind_the_platforms_back(org.tenant, FLOOD, monkeypatch)
    for gateway in flooded:  # one change to each gateway: none coalesces with another
        services.replace_gateway_spec(ACTOR, gateway, {"replicas": 2})
    other = services.create_gateway(ACTOR, make_org("beta").tenant, "other", {})
    assert waiting(queue) == FLOOD + 1

    log = tmp_path / "worker.log"
    worker = start_worker(log, queue)
    try:
        assert wait_for(
            lambda: ConfigRevision.objects.values("gateway").distinct().count() >= FLOOD + 1, 120
        ), log.read_text()[-3000:]
    finally:
        output = stop_worker(worker, log)
    order = compiled_order()
    assert sorted(order) == sorted([g.pk for g in flooded] + [other.pk]), output[-3000:]
    # The flood's first BURST went at full priority before it; the other 20 wait behind it.
    assert order.index(other.pk) == BURST, order
    assert order[:BURST] == [g.pk for g in flooded[:BURST]]


@pytest.mark.django_db
def test_a_change_is_sent_at_full_priority_when_the_count_is_unreachable(
    org, queue, settings, monkeypatch, caplog
):
    gateway = gateways_behind_the_platforms_back(org.tenant, 1, monkeypatch)[0]
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    assert fair_share.priority(gateway.pk) is None
    assert "tenant reconcile count unavailable" in caplog.text
    assert "Connection refused" in caplog.text
    tasks.send_reconcile(gateway.pk)
    assert waiting(queue) == 1  # sent all the same
