"""Reconciling a gateway stores a numbered revision only when the compiled output changes,
keeps the last good one when Envoy rejects a config, and never duplicates under concurrency."""

import copy
import threading

import pytest
from django.db import connection

from gateways import services
from gateways.models import Gateway, Route
from provisioning import reconcile as reconcile_module
from provisioning import revisions
from provisioning.models import ConfigRevision, GatewayOperation
from provisioning.reconcile import reconcile
from provisioning.translate import Resources
from tests.delivery.helpers import ACTOR, gateway_with_route, route_spec


def programmed(gateway: Gateway) -> dict:
    gateway.refresh_from_db()
    return {c["type"]: c for c in gateway.status["conditions"]}["Programmed"]


def test_a_new_revision_only_when_the_output_changes(org):
    gateway = gateway_with_route(org.tenant)
    first = reconcile(gateway.pk)
    assert (first.result, first.revision.number, first.revision.state) == ("created", 1, "valid")
    assert first.revision.current

    again = reconcile(gateway.pk)
    assert again.result == "unchanged"
    assert ConfigRevision.objects.filter(gateway=gateway).count() == 1
    latest_op = GatewayOperation.objects.filter(gateway=gateway).first()
    assert (latest_op.state, latest_op.message) == ("succeeded", "no change (latest revision 1)")

    services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route_spec("/v2"))
    second = reconcile(gateway.pk)
    assert (second.result, second.revision.number) == ("created", 2)
    current = ConfigRevision.objects.get(gateway=gateway, current=True)
    assert current.number == 2
    assert (
        revisions.desired_state_of(current)["routes"][0]["spec"]["rules"][0]["matches"][0]["path"][
            "value"
        ]
        == "/v2"
    )
    assert GatewayOperation.objects.filter(gateway=gateway, kind="reconcile").count() == 3


def test_the_periodic_heal_leaves_no_timeline_entry_when_nothing_changed(org):
    gateway = gateway_with_route(org.tenant)
    reconcile(gateway.pk)
    assert reconcile(gateway.pk, record_unchanged=False).result == "unchanged"
    assert GatewayOperation.objects.filter(gateway=gateway).count() == 1


def test_a_deleted_gateway_is_a_no_op(org):
    assert reconcile(987654).result == "gone"


def _with_bad_regex(compile_gateway):
    def compile_bad(state, **kwargs):
        resources = compile_gateway(state, **kwargs)
        routes = copy.deepcopy(list(resources.routes))  # compiled output is never changed
        host = routes[0]["virtual_hosts"][0]
        host["routes"][0]["match"] = {"safe_regex": {"regex": "(["}}
        return Resources(resources.listeners, tuple(routes), resources.clusters)

    return compile_bad


def test_a_rejected_revision_does_not_replace_the_last_good_one(org, monkeypatch):
    gateway = gateway_with_route(org.tenant)
    good = reconcile(gateway.pk).revision
    monkeypatch.setattr(
        reconcile_module, "compile_gateway", _with_bad_regex(reconcile_module.compile_gateway)
    )
    services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route_spec("/v2"))

    outcome = reconcile(gateway.pk)

    assert outcome.result == "rejected"
    rejected = outcome.revision
    assert (rejected.number, rejected.state, rejected.current) == (2, "rejected", False)
    assert rejected.message  # Envoy's own words
    assert ConfigRevision.objects.get(gateway=gateway, current=True).pk == good.pk
    condition = programmed(gateway)
    assert (condition["status"], condition["reason"]) == ("False", "Invalid")
    assert rejected.message[-200:] in condition["message"]
    assert GatewayOperation.objects.filter(gateway=gateway).first().state == "failed"
    # Unchanged bad output is not validated or stored again.
    assert reconcile(gateway.pk).result == "unchanged"
    assert ConfigRevision.objects.filter(gateway=gateway).count() == 2

    monkeypatch.undo()
    fixed = reconcile(gateway.pk)
    assert (fixed.result, fixed.revision.number, fixed.revision.current) == ("created", 3, True)
    assert programmed(gateway)["reason"] == "Pending"


@pytest.mark.django_db(transaction=True)
def test_two_reconciles_at_once_store_one_revision(org):
    gateway = gateway_with_route(org.tenant)
    results, errors = [], []
    start = threading.Barrier(2)

    def run():
        try:
            start.wait()
            results.append(reconcile(gateway.pk).result)
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sorted(results) == ["created", "unchanged"]
    assert list(
        ConfigRevision.objects.filter(gateway=gateway).values_list("number", flat=True)
    ) == [1]
    assert ConfigRevision.objects.filter(gateway=gateway, current=True).count() == 1


def test_the_periodic_fan_out_enqueues_one_reconcile_per_gateway(org, monkeypatch):
    from django.conf import settings

    from provisioning import tasks

    first = gateway_with_route(org.tenant)
    second = services.create_gateway(ACTOR, org.tenant, "second", {})
    sent = []
    monkeypatch.setattr(tasks, "send_reconcile", lambda pk, **kw: sent.append((pk, kw)))
    assert tasks.reconcile_all() == 2
    heal = {
        "record_unchanged": False,
        "queue": settings.GANTRY_CELERY_HEAL_QUEUE,
        "priority": tasks.HEAL_PRIORITY,  # after every other reconcile, over Redis
    }
    assert sorted(sent) == sorted([(first.pk, heal), (second.pk, heal)])
    schedule = settings.CELERY_BEAT_SCHEDULE["reconcile-all"]
    assert schedule["task"] == tasks.reconcile_all.name == "provisioning.reconcile_all"
    assert tasks.reconcile_gateway.name == "provisioning.reconcile_gateway"
    assert tasks.reconcile_gateway.acks_late


def test_writes_enqueue_a_reconcile_of_the_affected_gateways_on_commit(
    org, monkeypatch, django_capture_on_commit_callbacks
):
    from provisioning import tasks

    sent = []
    monkeypatch.setattr(tasks, "send_reconcile", lambda pk, **kw: sent.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        gateway = gateway_with_route(org.tenant)
        other = services.create_gateway(ACTOR, org.tenant, "other", {})
    # gateway create, backend create (the gateways loading it, found when the callbacks run:
    # here after the route's write too), route create, other create
    assert sent == [gateway.pk, gateway.pk, gateway.pk, other.pk]


def test_a_backend_write_reconciles_the_gateways_that_load_it_and_no_other(
    org, other_org, monkeypatch, django_capture_on_commit_callbacks
):
    from provisioning import tasks

    auth = {"endpoints": [{"ip": {"address": "10.0.0.5", "port": 9000}}]}
    sends = route_gateway = policy_gateway = unrelated = idle = None
    with django_capture_on_commit_callbacks(execute=True):
        route_gateway = gateway_with_route(org.tenant, "routes")  # a route sends to "api"
        services.create_backend(ACTOR, org.tenant, "auth", auth)
        policy_gateway = services.create_gateway(ACTOR, org.tenant, "guarded", {})
        services.create_policy(ACTOR, policy_gateway, "gate", "SecurityPolicy", {
            "targetRefs": [{"kind": "Gateway", "name": "guarded"}],
            "extAuth": {"http": {"backendRefs": [{"name": "api"}]}}})  # fmt: skip
        unrelated = services.create_gateway(ACTOR, org.tenant, "unrelated", {})
        services.create_route(ACTOR, unrelated, "login", {
            "rules": [{"backendRefs": [{"name": "auth"}]}]})  # fmt: skip
        idle = services.create_gateway(ACTOR, org.tenant, "idle", {})
        # another tenant's gateway sending to its own backend of the same name
        theirs = gateway_with_route(other_org.tenant, "theirs")
    sends = []
    monkeypatch.setattr(tasks, "send_reconcile", lambda pk, **kw: sends.append(pk))
    api = org.tenant.backends.get(name="api")

    with django_capture_on_commit_callbacks(execute=True):
        services.patch_backend_spec(ACTOR, api, {"endpoints": [{"ip": {"address": "10.0.0.9",
                                                                      "port": 80}}]})  # fmt: skip
    assert sorted(sends) == sorted([route_gateway.pk, policy_gateway.pk])
    assert idle.pk not in sends and unrelated.pk not in sends and theirs.pk not in sends

    sends.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_backend(ACTOR, api)
    assert sorted(sends) == sorted([route_gateway.pk, policy_gateway.pk])

    # A route naming a backend that does not exist yet: its creation reconciles that gateway.
    with django_capture_on_commit_callbacks(execute=True):
        services.create_route(ACTOR, idle, "later", {"rules": [{"backendRefs": [{"name": "new"}]}]})
    sends.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.create_backend(ACTOR, org.tenant, "new", auth)
    assert sends == [idle.pk]


@pytest.mark.django_db(transaction=True)
def test_the_work_after_the_commit_runs_at_a_lower_cpu_priority_and_is_done_on_return(
    org, monkeypatch
):
    import os

    gateway = gateway_with_route(org.tenant)
    seen = []
    real = reconcile_module._after_commit

    def observed(gateway_id, outcome):
        seen.append((threading.current_thread() is threading.main_thread(),
                     os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))  # fmt: skip
        real(gateway_id, outcome)

    monkeypatch.setattr(reconcile_module, "_after_commit", observed)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    outcome = reconcile(gateway.pk)
    # Off this thread, niced below it (the replicas' xDS server and Envoy come first)…
    assert seen == [(False, min(mine + reconcile_module.HOUSEKEEPING_NICE, 19))]
    # …and done when reconcile returns: no replica has the new revision yet.
    assert programmed(gateway)["status"] == "False"
    assert outcome.timings.get("status") is not None

    # Its failure is the reconcile's (the timeline entry says so).
    def failing(gateway_id, outcome):
        raise RuntimeError("status store failed")

    monkeypatch.setattr(reconcile_module, "_after_commit", failing)
    services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route_spec("/v2"))
    with pytest.raises(RuntimeError, match="status store failed"):
        reconcile(gateway.pk)
    entry = GatewayOperation.objects.filter(gateway=gateway).order_by("-id").first()
    assert (entry.state, entry.message) == ("failed", "RuntimeError: status store failed")
