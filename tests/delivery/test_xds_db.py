"""The xDS server's database side: per-replica and per-pod tokens, the revision-backed snapshot
source (woken by Redis or by polling, surviving database errors) and the record of ACKs and
NACKs."""

import asyncio

import pytest
from django.conf import settings
from django.db import OperationalError, transaction

from gateways import services
from gateways.models import Gateway, Route
from provisioning import revisions, rollback, tasks
from provisioning.reconcile import reconcile
from provisioning.translate import Resources
from provisioning.xds import db_source, notify
from provisioning.xds.credentials import identify, issue_pod_token, issue_replica_token
from provisioning.xds.db_source import DatabaseSnapshotSource
from provisioning.xds.replicas import record_ack, record_connection
from provisioning.xds.server import Principal
from provisioning.xds.snapshots import Snapshot
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR, gateway_with_route, route_spec
from tests.provisioning.harness import free_port
from tests.xds.harness import LoopThread, wait_for

KEY = "acme/edge"
ROUTES = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


@pytest.fixture
def loop():
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def no_enqueue(monkeypatch):
    """These tests reconcile by hand; nothing goes to the broker."""
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)


def expected_snapshot(revision) -> Snapshot:
    data = revisions.resources_of(revision)
    resources = Resources(*(tuple(data[kind]) for kind in ("listeners", "routes", "clusters")))
    return Snapshot.build(revision.content_hash, resources)


def change_route(gateway, prefix):
    services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route_spec(prefix))
    return reconcile(gateway.pk).revision


def test_every_token_names_one_node_of_one_gateway(org):
    gateway = gateway_with_route(org.tenant)
    token = issue_replica_token(gateway, 0)
    assert token.startswith("gxds_") and len(token) > 50
    assert identify(token) == Principal(KEY, f"{KEY}/0")
    assert identify(token[:-1] + ("a" if token[-1] != "a" else "b")) is None
    assert identify("gty_abcdefgh_" + token[14:]) is None
    assert identify("") is None
    rotated = issue_replica_token(gateway, 0)
    assert identify(token) is None
    assert identify(rotated) == Principal(KEY, f"{KEY}/0")
    pod = issue_pod_token(gateway, "envoy-edge-abc12", "uid-1")
    assert identify(pod) == Principal(KEY, f"{KEY}/envoy-edge-abc12")
    again = issue_pod_token(gateway, "envoy-edge-abc12", "uid-1")  # the pod enrolled again
    assert identify(pod) is None and identify(again).node_id == f"{KEY}/envoy-edge-abc12"
    stored = str(list(gateway.replica_credentials.values())) + str(
        list(gateway.pod_credentials.values())
    )
    assert token not in stored and rotated not in stored and again not in stored


@pytest.mark.django_db(transaction=True)
def test_the_source_serves_the_current_revision_and_follows_changes_by_polling(loop, no_enqueue):
    gateway = gateway_with_route(make_org("acme").tenant)
    first = reconcile(gateway.pk).revision
    source = DatabaseSnapshotSource(poll_interval=0.1, redis_url=None)
    try:
        assert loop.run(_timeout(source.watch("acme/nothing-here", None), 0.3)) is None
        snapshot = loop.run(source.watch(KEY, None))
        assert snapshot == expected_snapshot(first)
        assert loop.run(_timeout(source.watch(KEY, first.content_hash), 0.3)) is None

        waiting = asyncio.run_coroutine_threadsafe(source.watch(KEY, first.content_hash), loop.loop)
        second = change_route(gateway, "/v2")
        assert waiting.result(timeout=3) == expected_snapshot(second)

        rollback.rollback(ACTOR, gateway, 1)
        assert loop.run(source.watch(KEY, second.content_hash)).version == first.content_hash
    finally:
        loop.run(source.close())


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test provides it)")
@pytest.mark.django_db(transaction=True)
def test_a_redis_notification_wakes_the_source_at_once(loop, no_enqueue):
    gateway = gateway_with_route(make_org("acme").tenant)
    first = reconcile(gateway.pk).revision
    source = DatabaseSnapshotSource(poll_interval=60)  # only the notification can wake it
    try:
        loop.run(source.start())
        wait_for(lambda: source.subscribed.is_set(), message="the subscription")
        waiting = asyncio.run_coroutine_threadsafe(source.watch(KEY, first.content_hash), loop.loop)
        second = change_route(gateway, "/v2")  # publishes on commit
        assert waiting.result(timeout=3).version == second.content_hash

        waiting = asyncio.run_coroutine_threadsafe(
            source.watch(KEY, second.content_hash), loop.loop
        )
        rollback.rollback(ACTOR, gateway, 1)
        assert waiting.result(timeout=3).version == first.content_hash
    finally:
        loop.run(source.close())


@pytest.mark.django_db(transaction=True)
def test_a_postgres_notification_wakes_the_source_at_once(loop, no_enqueue, settings):
    """Without Redis, PostgreSQL's LISTEN/NOTIFY carries the change; a rolled-back change
    notifies nobody."""
    settings.GANTRY_XDS_NOTIFIER = "postgres"
    gateway = gateway_with_route(make_org("acme").tenant)
    first = reconcile(gateway.pk).revision
    source = DatabaseSnapshotSource(poll_interval=60)  # only the notification can wake it
    assert source.notifier == "postgres"
    try:
        loop.run(source.start())
        wait_for(lambda: source.subscribed.is_set(), message="LISTEN")
        waiting = asyncio.run_coroutine_threadsafe(source.watch(KEY, first.content_hash), loop.loop)
        second = change_route(gateway, "/v2")  # NOTIFY in the reconcile's transaction
        assert waiting.result(timeout=3).version == second.content_hash

        woken = []
        real_wake = source.wake
        source.wake = lambda key: (woken.append(key), real_wake(key))
        with pytest.raises(RuntimeError), transaction.atomic():
            notify.notify_changed(KEY)
            raise RuntimeError("rolled back")
        notify.notify_changed("acme/other")  # autocommit: delivered at once
        wait_for(lambda: woken, message="a notification")
        assert woken == ["acme/other"]
    finally:
        loop.run(source.close())


@pytest.mark.django_db(transaction=True)
def test_a_local_notification_wakes_the_source_at_once(loop, no_enqueue, settings):
    """The embedded default (no Redis, no PostgreSQL): a datagram to the server on this host,
    sent after commit."""
    settings.GANTRY_XDS_NOTIFIER = "local"
    settings.GANTRY_XDS_PORT = free_port()
    gateway = gateway_with_route(make_org("acme").tenant)
    first = reconcile(gateway.pk).revision
    source = DatabaseSnapshotSource(poll_interval=60)
    assert source.notifier == "local"
    try:
        loop.run(source.start())
        wait_for(lambda: source.subscribed.is_set(), message="the UDP socket")
        waiting = asyncio.run_coroutine_threadsafe(source.watch(KEY, first.content_hash), loop.loop)
        second = change_route(gateway, "/v2")
        assert waiting.result(timeout=3).version == second.content_hash
    finally:
        loop.run(source.close())


@pytest.mark.django_db(transaction=True)
def test_the_source_survives_a_database_error(loop, no_enqueue, monkeypatch):
    gateway = gateway_with_route(make_org("acme").tenant)
    first = reconcile(gateway.pk).revision
    real, failures = db_source._head, []

    def flaky(key, known_hash):
        if len(failures) < 2:
            failures.append(key)
            raise OperationalError("the database went away")
        return real(key, known_hash)

    monkeypatch.setattr(db_source, "_head", flaky)
    source = DatabaseSnapshotSource(poll_interval=0.1, redis_url=None)
    try:
        assert loop.run(source.watch(KEY, None)).version == first.content_hash
        assert len(failures) == 2
    finally:
        loop.run(source.close())


async def _timeout(coroutine, seconds):
    try:
        return await asyncio.wait_for(coroutine, seconds)
    except TimeoutError:
        return None


def programmed(gateway):
    gateway.refresh_from_db()
    return {c["type"]: c for c in gateway.status["conditions"]}["Programmed"]


def test_acks_and_nacks_are_recorded_per_replica(org):
    gateway = gateway_with_route(org.tenant)
    first = reconcile(gateway.pk).revision
    record_ack(KEY, "acme/edge/0", ROUTES, first.content_hash, None)
    status = gateway.replicas.get(node_id="acme/edge/0", type_url=ROUTES)
    assert (status.acked_version, status.nack_message) == (first.content_hash, "")
    gateway.refresh_from_db()
    version = gateway.resource_version

    # A NACK of an older version is recorded, but says nothing about the current revision.
    record_ack(KEY, "acme/edge/0", ROUTES, "old", "bad route")
    status.refresh_from_db()
    assert (status.acked_version, status.rejected_version, status.nack_message) == (
        first.content_hash, "old", "bad route",
    )  # fmt: skip
    assert programmed(gateway)["reason"] == "Pending"
    assert gateway.resource_version == version

    # A NACK of the current revision from a connected replica shows in the status, naming the
    # replica and Envoy's message; the revision stays valid and current.
    record_connection(KEY, "acme/edge/1", True, "tests")
    record_ack(KEY, "acme/edge/1", ROUTES, first.content_hash, "invalid perl operator")
    condition = programmed(gateway)
    assert (condition["status"], condition["reason"]) == ("False", "Rejected")
    assert "acme/edge/1 rejected revision 1" in condition["message"]
    assert "invalid perl operator" in condition["message"]
    first.refresh_from_db()
    assert (first.state, first.current) == ("valid", True)
    # It acks the revision again (say, after a port was freed): the rejection is over.
    record_ack(KEY, "acme/edge/1", ROUTES, first.content_hash, None)
    assert programmed(gateway)["reason"] != "Rejected"
    record_ack("acme/deleted", "acme/deleted/0", ROUTES, "v", None)  # no error, nothing stored
    assert Gateway.objects.count() == 1
