"""The periodic heal (``reconcile_all``) through a real worker over the real Redis broker: its
reconciles wait in a queue of their own, which the worker reads only when no tenant's change
is waiting, and a pass is skipped while the last pass's reconciles still wait."""

import contextlib
import os

import pytest

from gateways import services
from provisioning import tasks
from provisioning.models import ConfigRevision
from tenants.models import Plan
from tests.delivery.helpers import ACTOR, start_worker, stop_worker, use_queue, wait_for

HEALED = 24


def purge(*queues: str) -> None:
    from config.celery_app import app

    with app.connection_for_write() as broker:
        for queue in queues:
            with contextlib.suppress(broker.channel_errors):
                broker.default_channel.queue_purge(queue)


@pytest.fixture
def queues(settings):
    """This process sends to a queue of its own, as the worker it starts reads."""
    queue = f"gantry-test-{os.urandom(4).hex()}"
    use_queue(settings, queue)
    yield queue, f"{queue}.heal"
    purge(queue, f"{queue}.fanout", f"{queue}.heal")


def gateways_behind_the_platforms_back(tenant, count: int, monkeypatch) -> list:
    """``count`` gateways whose reconcile messages were lost: only a heal compiles them."""
    Plan.objects.filter(pk=tenant.plan_id).update(max_gateways=count + 5)
    with monkeypatch.context() as lost:
        lost.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
        return [services.create_gateway(ACTOR, tenant, f"old-{i}", {}) for i in range(count)]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_tenants_change_is_not_queued_behind_the_heal(org, queues, monkeypatch, tmp_path):
    queue, _ = queues
    healed = gateways_behind_the_platforms_back(org.tenant, HEALED, monkeypatch)
    log = tmp_path / "worker.log"
    worker = start_worker(log, queue)  # no -Q: it reads both queues, in the settings' order
    try:
        from provisioning.tasks import reconcile_all

        reconcile_all.apply_async(queue=queue)
        assert wait_for(lambda: ConfigRevision.objects.exists(), 60), "the heal never began"
        # A tenant creates a gateway while the heal works through the others: the API's
        # write sends its reconcile on commit, as every change does.
        fresh = services.create_gateway(ACTOR, org.tenant, "fresh", {})
        everyone = HEALED + 1
        assert wait_for(lambda: ConfigRevision.objects.count() >= everyone, 120), (
            f"{ConfigRevision.objects.count()} of {everyone} gateways compiled"
        )
    finally:
        output = stop_worker(worker, log)
    order = list(
        ConfigRevision.objects.order_by("created_at", "id").values_list("gateway_id", flat=True)
    )
    assert sorted(order) == sorted([g.pk for g in healed] + [fresh.pk]), output[-3000:]
    # The worker finishes the heal's reconcile in hand (and at most one it had taken), then
    # takes the tenant's: in one queue it would have waited for all 24.
    position = order.index(fresh.pk)
    heal_done_before = ConfigRevision.objects.filter(
        gateway__in=healed, created_at__lt=ConfigRevision.objects.get(gateway=fresh).created_at
    ).count()
    assert position <= 4 and heal_done_before < HEALED - 10, (position, order)
    assert f"enqueued {HEALED} gateway reconciles" in output


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_heal_pass_is_skipped_while_the_last_ones_reconciles_wait(
    org, queues, monkeypatch, tmp_path
):
    """A worker that reads only the first queue (as one given ``-Q <queue>`` alone would)
    runs reconcile_all but none of the heal's reconciles: the second pass adds nothing."""
    queue, _ = queues
    gateways_behind_the_platforms_back(org.tenant, 5, monkeypatch)
    log = tmp_path / "worker.log"
    worker = start_worker(log, queue, "-Q", queue)
    try:
        from provisioning.tasks import reconcile_all

        reconcile_all.apply_async(queue=queue)
        assert wait_for(lambda: tasks.heal_backlog() == 5, 30), tasks.heal_backlog()
        reconcile_all.apply_async(queue=queue)
        skipped = "the last heal pass still has 5 reconciles waiting: this pass is skipped"
        assert wait_for(lambda: skipped in log.read_text(), 30), log.read_text()[-3000:]
        assert tasks.heal_backlog() == 5
    finally:
        stop_worker(worker, log)
    assert not ConfigRevision.objects.exists()
