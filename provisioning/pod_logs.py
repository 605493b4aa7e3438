"""Access logs of Kubernetes gateways, read from their pods' logs with the platform's own
cluster credentials (``GET /api/v1/namespaces/{ns}/pods/{pod}/log``).

Each pod's Envoy writes one JSON line per request to its container's ``/dev/stdout``; its own
diagnostics go to stderr, and the kubelet merges both into the pod's log, each line after the
time it was written (``timestamps=true``, RFC 3339 with up to nine fraction digits). Every
``GANTRY_POD_ACCESS_LOG_SECONDS`` ``collect()`` lists each Kubernetes gateway's pods (in the
tenant's namespace, by the gateway's labels) and reads each pod's new lines since its
``PodLogCursor``. A line is an access log entry only when it is a JSON object with exactly the
keys of the configured format (``translate.access_log.FIELDS``); anything else (Envoy's own
log lines, a line torn by a size limit, a partial last line) is skipped.

Whose entries they are comes only from where they were read: the pod listed in the gateway's
namespace with the gateway's labels. Nothing in a line (a ``tenant`` key, a route of another
gateway) can move it to another gateway or tenant.

Each entry is unique on (the pod's run, the container instance, the line's place):
``incarnation`` is the pod's run (``metering.pod_incarnation`` of its uid, as for usage),
``segment`` the container's restart count when it wrote the line, and ``offset`` the line's
kubelet timestamp in microseconds × 1000 + its index among the lines of the same microsecond.
A read always starts at a whole second (``sinceTime`` has no fraction), so a line gets the same
offset on every read: a line read twice is stored once.
"""

import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction

from gateways.models import Gateway
from provisioning import access_logs
from provisioning.metering import pod_incarnation
from provisioning.models import AccessLogEntry, KubernetesPlacement, PodLogCursor
from provisioning.runtimes.kubernetes import names
from provisioning.runtimes.kubernetes.client import KubeApi, KubernetesError
from provisioning.translate.access_log import FIELDS

log = logging.getLogger(__name__)

CONTAINER = "envoy"  # the gateway container of each pod (``runtimes.kubernetes.workload``)
MAX_READ = 4 * 1024 * 1024  # bytes asked of one container's log per read (``limitBytes``)
PER_MICROSECOND = 1000  # lines one container may write in one microsecond that are told apart
ACCESS_KEYS = frozenset(FIELDS)
LOCK_KEY = 0x6761_6E74_7279_6C67  # PostgreSQL advisory lock of the collection ("gantrylg")
TIMESTAMP = re.compile(
    rb"(?P<whole>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d{1,9}))?"
    rb"(?P<zone>Z|[+-]\d\d:\d\d)"
)


def timestamp_us(text: bytes) -> int | None:
    """A kubelet timestamp (RFC 3339: ``2026-12-04T19:15:00.123456789Z``, the fraction of up
    to nine digits or none, ``Z`` or an offset) → microseconds since the epoch; None when it
    is not one."""
    match = TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    try:
        moment = datetime.fromisoformat(
            (match["whole"] + match["zone"]).decode().replace("Z", "+00:00")
        )
    except ValueError:
        return None
    micro = int((match["fraction"] or b"").ljust(6, b"0")[:6])
    return int(moment.timestamp()) * 1_000_000 + micro


def since_time(us: int) -> str:
    """The whole second a read starts at (``sinceTime`` takes no fraction)."""
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def access_line(content: bytes, route_prefix: str) -> dict | None:
    """The entry's fields when ``content`` is an access log line, else None. A route is only
    taken when its Envoy name is one of the gateway's own (``route_prefix``, ``tenant/gw/``)."""
    if not content.startswith(b"{"):
        return None
    try:
        record = json.loads(content)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.keys() != ACCESS_KEYS:
        return None
    fields = access_logs.parse_record(record)
    if fields is not None and not str(record["route"] or "").startswith(route_prefix):
        fields["route"] = ""
    return fields


@dataclass
class Line:
    us: int
    index: int  # among the lines of the same microsecond in this read
    content: bytes

    @property
    def offset(self) -> int:
        return self.us * PER_MICROSECOND + self.index


def split(data: bytes) -> list[Line]:
    """The whole lines of a log read (a last line without its newline is left for the next
    read), each with its timestamp."""
    found: list[Line] = []
    pieces = data.split(b"\n")
    for piece in pieces[:-1]:  # the last piece: after the last newline (partial or empty)
        stamp, _, content = piece.partition(b" ")
        us = timestamp_us(stamp)
        if us is None:
            continue
        index = found[-1].index + 1 if found and found[-1].us == us else 0
        found.append(Line(us, index, content.rstrip(b"\r")))
    return found


@dataclass
class Collected:
    pods: int = 0
    reads: int = 0
    entries: int = 0
    skipped: int = 0  # lines that were not access log entries


def _store(gateway: Gateway, pod_uid: str, segment: int, lines: list[Line]) -> int:
    incarnation = pod_incarnation(pod_uid)
    prefix = f"{gateway.tenant.slug}/{gateway.name}/"
    entries = []
    for line in lines:
        fields = access_line(line.content, prefix)
        if fields is None or line.index >= PER_MICROSECOND:
            continue
        entries.append(AccessLogEntry(
            tenant_id=gateway.tenant_id, gateway_name=gateway.name, replica=0,
            incarnation=incarnation, segment=segment, offset=line.offset, **fields,
        ))  # fmt: skip
    AccessLogEntry.objects.bulk_create(entries, batch_size=1000, ignore_conflicts=True)
    return len(entries)


def _read(api: KubeApi, namespace: str, pod: str, cursor: PodLogCursor | None,
          previous: bool = False) -> list[Line] | None:  # fmt: skip
    """New whole lines after ``cursor`` (from the start without one); None when the log cannot
    be read now (the container not started, no previous instance, the pod gone)."""
    last = cursor.last_line_us if cursor else None
    try:
        data = api.pod_log(namespace, pod, CONTAINER, since=None if last is None else
                           since_time(last), previous=previous, limit_bytes=MAX_READ)  # fmt: skip
    except KubernetesError as error:
        if error.status in (400, 404):
            return None
        raise
    lines = split(data)
    if last is not None:
        done = cursor.lines_at_last
        lines = [x for x in lines if x.us > last or (x.us == last and x.index >= done)]
    if not lines and last is not None and len(data) >= MAX_READ:
        # One second held more than a whole read: the rest of it is skipped (never stuck).
        log.warning("access logs: pod %s/%s wrote more than %d bytes in one second; skipped",
                    namespace, pod, MAX_READ)  # fmt: skip
        cursor.last_line_us = (last // 1_000_000 + 1) * 1_000_000 - 1
        cursor.lines_at_last = PER_MICROSECOND
    return lines


def _advance(cursor: PodLogCursor, lines: list[Line]) -> None:
    if lines:
        cursor.last_line_us, cursor.lines_at_last = lines[-1].us, lines[-1].index + 1


def restart_count(pod: dict) -> int:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return int(status.get("restartCount") or 0)
    return 0


def collect_pod(api: KubeApi, gateway: Gateway, pod: dict, result: Collected) -> None:
    """Reads one pod's new lines: after a restart, the rest of the instance before it (the
    only earlier one the kubelet keeps) first, then the current one."""
    meta = pod["metadata"]
    namespace, name, uid = meta.get("namespace") or "", meta["name"], meta.get("uid") or ""
    if not uid:
        return
    restarts = restart_count(pod)
    cursor = PodLogCursor.objects.filter(pod_uid=uid, gateway=gateway).first()
    if cursor is None:
        cursor = PodLogCursor(gateway=gateway, pod_name=name, pod_uid=uid, restarts=restarts)
        if restarts:  # already restarted when first seen: its previous instance too
            cursor.restarts = restarts - 1
    if cursor.restarts < restarts:
        # Instances between the one read last and the previous one are gone (the kubelet keeps
        # one): the previous instance is read from its start then.
        start = cursor if cursor.restarts == restarts - 1 else None
        lines = _read(api, namespace, name, start, previous=True)
        result.reads += 1
        if lines:
            result.entries += _store(gateway, uid, restarts - 1, lines)
        cursor.restarts, cursor.last_line_us, cursor.lines_at_last = restarts, None, 0
    lines = _read(api, namespace, name, cursor)
    result.reads += 1
    if lines is None:  # not started yet, or gone (its cursor goes with it)
        cursor.save()
        return
    with transaction.atomic():
        stored = _store(gateway, uid, restarts, lines)
        _advance(cursor, lines)
        cursor.save()
    result.entries += stored
    result.skipped += len(lines) - stored


def collect_gateway(api: KubeApi, gateway: Gateway, result: Collected | None = None) -> Collected:
    """Reads the new lines of the gateway's pods; forgets the cursors of pods gone."""
    result = result or Collected()
    tenant = gateway.tenant.slug
    namespace = names.namespace(tenant)
    pods = api.list("Pod", namespace, names.gateway_selector(tenant, gateway.name))
    pods = [p for p in pods if (p["metadata"].get("namespace") or namespace) == namespace]
    for pod in pods:
        pod["metadata"].setdefault("namespace", namespace)
        result.pods += 1
        collect_pod(api, gateway, pod, result)
    live = [p["metadata"].get("uid") for p in pods]
    PodLogCursor.objects.filter(gateway=gateway).exclude(pod_uid__in=live).delete()
    return result


@contextmanager
def one_pass_at_a_time():
    """Whether this is the only pass running (a PostgreSQL advisory lock, held by this
    session until the pass ends): a pass that finds another one running skips its turn."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        alone = cursor.fetchone()[0]
    try:
        yield alone
    finally:
        if alone:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


def collect(api_for=None) -> Collected:
    """One pass over every Kubernetes gateway placed on a cluster. A cluster or gateway that
    fails is logged and left for the next pass; the others go on. A pass started while
    another runs does nothing."""
    with one_pass_at_a_time() as alone:
        if not alone:
            log.info("access logs: a collection is already running; this one skips its turn")
            return Collected()
        return _collect(api_for)


def _collect(api_for) -> Collected:
    from provisioning.runtimes.kubernetes import driver

    api_for = api_for or driver.api_for
    result = Collected()
    apis: dict[int, KubeApi | None] = {}
    placements = KubernetesPlacement.objects.select_related("gateway__tenant", "cluster")
    for placement in placements.order_by("cluster_id", "gateway_id"):
        gateway = placement.gateway
        if gateway.spec.get("runtime") != "kubernetes":
            continue
        if placement.cluster_id not in apis:
            try:
                apis[placement.cluster_id] = api_for(placement.cluster)
            except driver.UnusableCluster as error:
                log.warning("access logs: %s", error)
                apis[placement.cluster_id] = None
        api = apis[placement.cluster_id]
        if api is None:
            continue
        try:
            collect_gateway(api, gateway, result)
        except KubernetesError as error:
            log.warning("access logs of %s/%s: %s", gateway.tenant.slug, gateway.name, error)
    PodLogCursor.objects.exclude(gateway__kubernetes_placement__isnull=False).delete()
    return result
