"""Reconciling one gateway: desired state → compiled resources → Envoy's verdict → revision.

One reconcile at a time per gateway: the gateway row is locked (``SELECT … FOR UPDATE``) for
the whole compute-and-store, so a second reconcile waits, then finds the revision the first
stored and creates nothing. Unchanged output (compared with the newest revision compiled from
the desired state, so a rollback sticks until the desired state changes) is not a new revision
and is not re-validated. Output over ``GANTRY_MAX_COMPILED_BYTES`` fails, storing nothing.
"""

import contextlib
import logging
import os
import threading
import time
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from config.errors import NotFound
from gateways.models import Gateway
from gateways.services import common
from provisioning import envoy, pending, readiness, revisions
from provisioning.compile import compile_gateway, gc_paused
from provisioning.compile_memo import memos
from provisioning.desired import load_desired_state
from provisioning.egress_status import refresh_refusals
from provisioning.models import ConfigRevision, GatewayOperation, KubernetesPlacement
from provisioning.runtimes.local import ports
from provisioning.translate import access_log
from provisioning.xds.db import guarded

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system:reconcile"
# A reconcile still "running" after this long was interrupted (its worker died).
INTERRUPTED_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Outcome:
    result: str  # created | unchanged | rejected | failed | gone
    revision: ConfigRevision | None = None
    message: str = ""
    timings: dict = field(default_factory=dict)  # stage → milliseconds


class Stopwatch:
    """Milliseconds per stage, in the order they ran."""

    def __init__(self, requested_at=None):
        self.stages: dict[str, float] = {}
        self._last = time.perf_counter()
        self.requested_at = requested_at  # when the change was accepted (for receipts)

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = round((now - self._last) * 1000, 1)
        self._last = now


def _failure(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


def _record_failure(gateway_id: int, actor: str, started_at, error: Exception) -> None:
    """A reconcile that raised stored nothing (its transaction rolled back): its timeline entry
    says what went wrong, unless the gateway is gone or the database cannot take it either."""
    with contextlib.suppress(Exception), transaction.atomic():
        GatewayOperation.objects.create(
            gateway_id=gateway_id, kind=GatewayOperation.Kind.RECONCILE, created_by=actor,
            started_at=started_at, state=GatewayOperation.State.FAILED,
            message=_failure(error), finished_at=timezone.now(),
        )  # fmt: skip


def _finish(operation: GatewayOperation, outcome: Outcome) -> None:
    failed = outcome.result in ("rejected", "failed")
    operation.state = GatewayOperation.State.FAILED if failed else GatewayOperation.State.SUCCEEDED
    operation.message = outcome.message
    operation.revision = outcome.revision
    operation.finished_at = timezone.now()
    operation.timings = outcome.timings
    operation.save(update_fields=["state", "message", "revision", "finished_at", "timings"])


def _listener_urls(gateway: Gateway, spec: dict, port_map: dict[int, int]) -> None:
    """``status.listeners[].url``: where each listener of the compiled ``spec`` answers."""
    ports = {item["name"]: item for item in spec.get("listeners", [])}
    listeners = []
    for entry in gateway.status.get("listeners", []):
        spec = ports.get(entry.get("name"))
        entry = {k: v for k, v in entry.items() if k != "url"}
        if spec is not None and spec["port"] in port_map:
            scheme = spec["protocol"].lower()  # http, https, tcp, tls
            host = settings.GANTRY_LOCAL_PUBLIC_HOST
            path = "/" if scheme in ("http", "https") else ""
            entry["url"] = f"{scheme}://{host}:{port_map[spec['port']]}{path}"
        listeners.append(entry)
    common.store_status(gateway, {**gateway.status, "listeners": listeners})


def compile_for(gateway: Gateway, state):
    """Compiles ``state`` for where the gateway runs (under its lock): on the local runtime,
    the listener ports of ``state.spec`` get host ports and the listener URLs are updated."""
    if gateway.spec.get("runtime", "local") != "local":
        ports.release(gateway)
        return compile_gateway(state, key=gateway.pk)
    listeners = state.spec.get("listeners", [])
    port_map = ports.allocate(gateway, {item["port"] for item in listeners})
    _listener_urls(gateway, state.spec, port_map)
    return compile_gateway(state, address=settings.GANTRY_LOCAL_LISTEN_ADDRESS, port_map=port_map,
                           access_log_path=access_log.LOCAL_PATH,
                           rate_limit_host=settings.GANTRY_RATELIMIT_ADDRESS,
                           key=gateway.pk)  # fmt: skip


_threads: dict[str, tuple[int, ThreadPoolExecutor]] = {}  # name → (pid, executor)
HOUSEKEEPING_NICE = 10  # how much lower than the worker's the housekeeping's CPU priority is


def _thread(name: str, initializer=None) -> ThreadPoolExecutor:
    """This process's one thread of that name (made on first use, and anew in a forked child:
    threads do not survive a fork)."""
    made = _threads.get(name)
    if made is None or made[0] != os.getpid():
        made = (os.getpid(), ThreadPoolExecutor(1, name, initializer=initializer))
        _threads[name] = made
    return made[1]


def close_threads() -> None:
    """Stops this process's reconcile threads, closing their database connections (at the end
    of a test, whose database may be dropped next: an open connection would hold it)."""
    for pid, executor in _threads.values():
        if pid == os.getpid():
            executor.submit(connections.close_all).result()
            executor.shutdown()
    _threads.clear()


def _validate_meanwhile(resources, key) -> Future:
    """Envoy's verdict (``envoy.validate``) from a thread of this process's, so the caller can
    write what does not depend on it meanwhile. The validator talks to its Envoy only; the
    caller's database connection stays the caller's."""
    return _thread("validate").submit(envoy.validate, resources, key=key)


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: as it is
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HOUSEKEEPING_NICE)


def _after_commit_niced(gateway_id: int, outcome: Outcome) -> None:
    """``_after_commit`` on a thread of lower CPU priority, waited for: the new revision is on
    its way to the replicas (the xDS server reads and encodes it, Envoy applies it), and on a
    small machine this work would take a core from them; on an idle one it runs at once. The
    thread has a database connection of its own (``guarded``: checked after a pause, dropped
    after an error). Inside a caller's transaction (tests), inline: another connection would
    not see it."""
    if connection.in_atomic_block:
        _after_commit(gateway_id, outcome)
        return
    housekeeping = _thread("housekeeping", initializer=_lower_priority)
    housekeeping.submit(guarded, _after_commit, gateway_id, outcome).result()


def _store(gateway: Gateway, resources, made, state, actor: str, watch, latest, memo):
    verdict = _validate_meanwhile(resources, gateway.pk)
    known = memo.parts_of(latest.pk) if memo is not None and latest is not None else None
    try:
        prepared = revisions.prepare(gateway, made, state, known_parts=known)
    except BaseException:
        futures.wait([verdict])  # never left running past this reconcile
        raise
    validation = verdict.result()
    watch.lap("validate")  # Envoy's verdict, the revision's new parts written meanwhile
    revision = revisions.store(
        gateway, made, state, valid=validation.ok,
        message="" if validation.ok else validation.message, actor=actor,
        requested_at=watch.requested_at, prepared=prepared,
    )  # fmt: skip
    if memo is not None:
        memo.stored = (revision.pk, frozenset(revisions.parts_named(revision.manifest)))
    return revision


@transaction.atomic
def _reconcile_locked(
    gateway_id: int, actor: str, watch: Stopwatch, started_at, record_unchanged: bool
) -> tuple[Outcome, GatewayOperation | None]:
    """The outcome, and the timeline entry committed with it (``running`` until ``_finish``;
    none for an unchanged heal). A worker killed before the commit leaves neither."""
    try:
        gateway = common.lock(Gateway, gateway_id, "tenant")
    except NotFound:
        return Outcome("gone", message="the gateway was deleted"), None
    watch.lap("lock")  # waiting for another writer of the gateway shows here
    with gc_paused():  # a worker holding big memos: no full collections mid-change
        outcome = _compile_and_store(gateway, actor, watch)
    operation = None
    if record_unchanged or outcome.result != "unchanged":
        operation = GatewayOperation.objects.create(
            gateway=gateway, kind=GatewayOperation.Kind.RECONCILE, created_by=actor,
            started_at=started_at, revision=outcome.revision, message=outcome.message,
        )  # fmt: skip
    return outcome, operation


def _compile_and_store(gateway: Gateway, actor: str, watch: Stopwatch) -> Outcome:
    gateway_id = gateway.pk
    rows: dict = {}
    state = load_desired_state(gateway_id, gateway, rows)
    refresh_refusals(gateway, state, rows)
    try:
        resources = compile_for(gateway, state)
    except ports.NoFreePort as error:
        return Outcome("failed", message=str(error))
    if gateway.status.get("observedGeneration") != gateway.generation:
        common.store_status(gateway, {**gateway.status, "observedGeneration": gateway.generation})
    memo = memos.get(gateway.pk)
    text = revisions.canonical_json
    if memo is not None:
        memo.keep_texts(resources)  # unchanged virtual hosts' text reused
        text = memo.text
    made = revisions.compiled(resources.as_dict(), text, gateway.pk)
    watch.lap("compile")
    latest = revisions.latest_compiled(gateway)
    if latest is not None and latest.content_hash == made.content_hash:
        return Outcome("unchanged", latest, f"no change (latest revision {latest.number})")
    try:
        revisions.check_size(gateway, made.size)
    except revisions.TooLarge as error:
        return Outcome("failed", message=error.message)
    revision = _store(gateway, resources, made, state, actor, watch, latest, memo)
    if revision.state == ConfigRevision.State.VALID:
        return Outcome("created", revision, f"revision {revision.number} is valid")
    return Outcome("rejected", revision, f"Envoy rejected revision {revision.number}")


@transaction.atomic
def _after_commit(gateway_id: int, outcome: Outcome) -> None:
    """What need not hold up the change on its way to the replicas (the new revision is
    committed and announced): timeline entries of dead reconciles, revisions past retention,
    and the gateway's status (Programmed waits for the replicas). Under the gateway's lock,
    as each of them is done elsewhere."""
    try:
        gateway = common.lock(Gateway, gateway_id, "tenant")
    except NotFound:
        return
    GatewayOperation.objects.filter(
        gateway=gateway,
        state=GatewayOperation.State.RUNNING,
        started_at__lt=timezone.now() - INTERRUPTED_AFTER,
    ).update(state=GatewayOperation.State.FAILED, message="interrupted", finished_at=timezone.now())
    if outcome.result in ("created", "rejected"):
        revisions.prune(gateway)
    readiness.refresh(gateway_id)


@transaction.atomic
def _drop_condition(gateway_id: int, kind: str) -> None:
    gateway = Gateway.objects.select_for_update().get(pk=gateway_id)
    conditions = [c for c in gateway.status.get("conditions", []) if c.get("type") != kind]
    common.store_status(gateway, {**gateway.status, "conditions": conditions})


def _converge_runtime(gateway_id: int) -> str:
    """Kubernetes gateways: apply their objects and read the cluster's view back (outside the
    gateway lock: this talks to an API server). Local replicas are the agent's business."""
    gateway = Gateway.objects.select_related("tenant").filter(pk=gateway_id).first()
    if gateway is None:
        return ""
    if gateway.spec.get("runtime") != "kubernetes":
        if not KubernetesPlacement.objects.filter(gateway=gateway).exists():
            return ""
        from provisioning.runtimes.kubernetes import driver

        removed = driver.leave(gateway)  # it moved to the local runtime
        _drop_condition(gateway_id, "Ready")
        return f"removed {len(removed)} objects from its Kubernetes cluster"
    from provisioning.runtimes.kubernetes import driver
    from provisioning.runtimes.kubernetes.gateway_status import store_runtime_status

    runtime = driver.converge(gateway)  # transient API errors raise: the task retries
    with transaction.atomic():
        store_runtime_status(gateway, runtime)
    readiness.refresh(gateway_id)  # the cluster's view is part of the phase
    ready = runtime.conditions[0]
    return f"cluster: {ready['reason']} ({ready['message']})"


def reconcile(
    gateway_id: int,
    actor: str = SYSTEM_ACTOR,
    record_unchanged: bool = True,
    enqueued_at: float | None = None,
) -> Outcome:
    """Brings the gateway's revisions up to date with its desired state. Idempotent.

    ``record_unchanged=False`` (the periodic heal) leaves no timeline entry when nothing changed.
    ``enqueued_at`` (epoch seconds) is when the task was sent: the timeline shows the wait.
    """
    envoy.prepare_validator()  # before any lock: a first start takes a moment
    started_at = timezone.now()
    requested = started_at
    if enqueued_at is not None:
        requested = min(started_at, datetime.fromtimestamp(enqueued_at, tz=UTC))
    watch = Stopwatch(requested)
    queued = {} if enqueued_at is None else {"queue": round((time.time() - enqueued_at) * 1000, 1)}
    operation = None
    # Before anything is read: a write committed from now on sends a reconcile of its own.
    pending.release(gateway_id)
    try:
        outcome, operation = _reconcile_locked(
            gateway_id, actor, watch, started_at, record_unchanged
        )
        watch.lap("store")  # the writes and the commit (which announces a new revision)
        if outcome.result == "gone":
            return outcome
        _after_commit_niced(gateway_id, outcome)
        watch.lap("status")
        runtime = ""
        if outcome.result != "failed":
            runtime = _converge_runtime(gateway_id)
        if runtime:
            watch.lap("runtime")
            outcome = Outcome(outcome.result, outcome.revision, f"{outcome.message}; {runtime}")
    except Exception as error:
        if operation is None:
            _record_failure(gateway_id, actor, started_at, error)
        else:
            GatewayOperation.objects.filter(pk=operation.pk).update(
                state=GatewayOperation.State.FAILED,
                message=_failure(error),
                finished_at=timezone.now(),
            )
        raise
    outcome = Outcome(outcome.result, outcome.revision, outcome.message, {**queued, **watch.stages})
    if operation is not None:
        _finish(operation, outcome)
    log.info("reconciled gateway %s: %s", gateway_id, outcome.message)
    return outcome
