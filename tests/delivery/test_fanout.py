"""A write that reconciles many gateways (a tenant's consumer, certificate or shared backend)
sends those reconciles to the fan-out queue, which workers read only when no single
gateway's change is waiting: another tenant's change, or the same tenant's change to one
gateway, is not queued behind it. Over the real Redis broker, then a real worker."""

import os

import pytest
from django.db.models import Min
from kombu import Queue

from gateways import services
from provisioning import pending
from provisioning.models import ConfigRevision, PendingReconcile
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR, start_worker, stop_worker, use_queue, wait_for
from tests.delivery.test_heal import gateways_behind_the_platforms_back, purge

FANNED = 24


def waiting(queue: str) -> int:
    from config.celery_app import app

    with app.connection_for_read() as broker:
        return Queue(queue, routing_key=queue)(broker.default_channel).queue_declare().message_count


def compiled_order() -> list[int]:
    """Gateway ids in the order of their first revision: the order the worker took them."""
    return list(
        ConfigRevision.objects.values("gateway")
        .annotate(first=Min("created_at"))
        .order_by("first")
        .values_list("gateway", flat=True)
    )


@pytest.mark.django_db
def test_a_gateways_own_write_is_sent_ahead_of_its_fanout_mark(org, monkeypatch):
    """The marks alone: a fan-out's mark makes later fan-outs send nothing, but the
    gateway's own write sends one (to the main queue), after which nothing more is sent."""
    gateway = gateways_behind_the_platforms_back(org.tenant, 1, monkeypatch)[0]
    assert pending.claim(gateway.pk, fanout=True)
    assert not pending.claim(gateway.pk, fanout=True)  # the fan-out's reconcile will read it
    assert pending.claim(gateway.pk)  # the gateway's own change: not behind the fan-out
    assert PendingReconcile.objects.get(gateway=gateway).fanout is False
    assert not pending.claim(gateway.pk)
    assert not pending.claim(gateway.pk, fanout=True)
    pending.release(gateway.pk)
    assert pending.claim(gateway.pk)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_change_is_not_queued_behind_another_tenants_fanout(org, settings, monkeypatch, tmp_path):
    queue = f"gantry-test-{os.urandom(4).hex()}"
    use_queue(settings, queue)
    fanout = f"{queue}.fanout"
    many = gateways_behind_the_platforms_back(org.tenant, FANNED, monkeypatch)
    # A tenant-wide write: every gateway of the tenant takes consumers.
    services.create_consumer(ACTOR, org.tenant, "alice", {})
    assert (waiting(fanout), waiting(queue)) == (FANNED, 0)
    services.create_consumer(ACTOR, org.tenant, "bob", {})  # the ones waiting will read it
    assert (waiting(fanout), waiting(queue)) == (FANNED, 0)
    # Another tenant's change, and this tenant's change to one of its gateways.
    other = services.create_gateway(ACTOR, make_org("beta").tenant, "other", {})
    mine = many[0]
    services.replace_gateway_spec(ACTOR, mine, {"replicas": 2})
    services.replace_gateway_spec(ACTOR, mine, {"replicas": 3})  # coalesced with the last
    assert (waiting(fanout), waiting(queue)) == (FANNED, 2)

    log = tmp_path / "worker.log"
    worker = start_worker(log, queue)  # no -Q: every queue, in the settings' order
    try:
        everyone = FANNED + 1
        assert wait_for(
            lambda: (
                ConfigRevision.objects.values("gateway").distinct().count() >= everyone
                and waiting(fanout) == 0
            ),
            120,
        ), log.read_text()[-3000:]
    finally:
        output = stop_worker(worker, log)
        purge(queue, fanout, f"{queue}.heal")
    order = compiled_order()
    assert sorted(order) == sorted([g.pk for g in many] + [other.pk]), output[-3000:]
    # The two single changes were taken first; in one queue they would have waited for 24.
    assert set(order[:2]) == {other.pk, mine.pk}, order
    assert not PendingReconcile.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_small_fanout_is_not_queued_behind_a_big_one(org, settings, monkeypatch, tmp_path):
    """Fan-outs are sent at a priority by their size: a tenant's write to its 3 gateways,
    sent after another tenant's write to its 24, is run first."""
    queue = f"gantry-test-{os.urandom(4).hex()}"
    use_queue(settings, queue)
    big = gateways_behind_the_platforms_back(org.tenant, FANNED, monkeypatch)
    small_tenant = make_org("beta").tenant
    small = gateways_behind_the_platforms_back(small_tenant, 3, monkeypatch)
    services.create_consumer(ACTOR, org.tenant, "alice", {})
    services.create_consumer(ACTOR, small_tenant, "bob", {})
    assert waiting(f"{queue}.fanout") == FANNED + 3

    log = tmp_path / "worker.log"
    worker = start_worker(log, queue)
    try:
        everyone = FANNED + 3
        assert wait_for(
            lambda: ConfigRevision.objects.values("gateway").distinct().count() >= everyone, 120
        ), log.read_text()[-3000:]
    finally:
        output = stop_worker(worker, log)
        purge(queue, f"{queue}.fanout", f"{queue}.heal")
    order = compiled_order()
    assert sorted(order) == sorted(g.pk for g in big + small), output[-3000:]
    assert set(order[:3]) == {g.pk for g in small}, order
