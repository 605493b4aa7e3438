"""Metering at the source: replica lifecycles and Envoy's own counters, as the runtimes see them.

The local runtime agent opens a ``ReplicaIncarnation`` when it starts an Envoy, reads the
replica's counters over its private admin socket every ``GANTRY_METERING_SECONDS`` (and once
more after a drain, just before a graceful stop) and closes the incarnation when the process
stops. Billing (``billing.rollups``) turns samples into hourly usage; nothing here prices.

What a sample holds, per gateway listener port (the HTTP connection manager's stat prefix is
``<tenant>.<gateway>.port.<port>``): responses by status class (``downstream_rq_1xx`` …
``5xx``: every answered request counted once, whatever its status), bytes received and sent
on its connections, and the request-time histogram's cumulative buckets. Replicas are started
with ``stats_flush_on_admin`` so the histogram is current at every read.
"""

import json
import logging
import math
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from gateways.models import Gateway
from provisioning.models import ReplicaIncarnation, UsageSample

log = logging.getLogger(__name__)

_STATS = r"^http\..+\.port\.[0-9]+\.(downstream_rq_[1-5]xx|downstream_cx_[rt]x_bytes_total|downstream_rq_time)$"  # noqa: E501
STATS_URL = "/stats?format=json&usedonly&histogram_buckets=detailed&filter=" + quote(_STATS)
_NAME = re.compile(r"^http\.(?P<prefix>.+)\.port\.(?P<port>[0-9]+)\.(?P<stat>[a-z0-9_]+)$")
_FIELDS = {
    "downstream_rq_1xx": "responses_1xx",
    "downstream_rq_2xx": "responses_2xx",
    "downstream_rq_3xx": "responses_3xx",
    "downstream_rq_4xx": "responses_4xx",
    "downstream_rq_5xx": "responses_5xx",
    "downstream_cx_rx_bytes_total": "bytes_received",
    "downstream_cx_tx_bytes_total": "bytes_sent",
}
COUNTERS = tuple(_FIELDS.values())
# A read of the stats merges the worker threads' histograms in the background: the read shows
# the merge before it. A last read (before a stop) is made this long after a first one.
MERGE_SECONDS = 0.2


@dataclass
class PortCounters:
    """One listener port's cumulative counters (zero until Envoy has counted something)."""

    values: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    latency: dict[str, int] = field(default_factory=dict)  # lower bound (ms) → count


def parse_stats(body: str, prefix: str) -> dict[int, PortCounters]:
    """Port → counters, from the admin's ``/stats?format=json`` answer to ``STATS_URL``, for
    the gateway whose stat prefix is ``prefix`` (``<tenant>.<gateway>``) only."""
    found: dict[int, PortCounters] = {}
    for stat in json.loads(body).get("stats", []):
        if "histograms" in stat:
            for detail in stat["histograms"].get("details", []):
                match = _NAME.match(detail.get("name", ""))
                if match and match["prefix"] == prefix and match["stat"] == "downstream_rq_time":
                    counters = found.setdefault(int(match["port"]), PortCounters())
                    for bucket in detail.get("totals", []):
                        key = f"{bucket['lower_bound']:g}"
                        counters.latency[key] = counters.latency.get(key, 0) + bucket["count"]
            continue
        match = _NAME.match(stat.get("name", ""))
        if match and match["prefix"] == prefix and match["stat"] in _FIELDS:
            counters = found.setdefault(int(match["port"]), PortCounters())
            counters.values[_FIELDS[match["stat"]]] = int(stat.get("value", 0))
    return found


def parse_otlp(request, prefix: str) -> dict[int, PortCounters]:
    """Port → counters, from what a Kubernetes pod's stats sink pushed (an OpenTelemetry
    ``ExportMetricsServiceRequest``: cumulative sums and histograms under full stat names), for
    the gateway whose stat prefix is ``prefix`` only: any other name is ignored. The histogram's
    buckets are Envoy's default ones, each stored under its lower bound (0 for the first).
    The installed OpenTelemetry messages are an older release than Envoy's: its ``scope_metrics``
    arrive as ``instrumentation_library_metrics`` (the same field, the same wire format)."""
    found: dict[int, PortCounters] = {}
    for resource in request.resource_metrics:
        for scope in resource.instrumentation_library_metrics:
            for metric in scope.metrics:
                match = _NAME.match(metric.name)
                if not match or match["prefix"] != prefix:
                    continue
                kind, stat = metric.WhichOneof("data"), match["stat"]
                if kind == "sum" and stat in _FIELDS:
                    counters = found.setdefault(int(match["port"]), PortCounters())
                    value = sum(max(0, point.as_int) for point in metric.sum.data_points)
                    counters.values[_FIELDS[stat]] = value
                elif kind == "histogram" and stat == "downstream_rq_time":
                    counters = found.setdefault(int(match["port"]), PortCounters())
                    for point in metric.histogram.data_points:
                        lowers = [0.0, *point.explicit_bounds]
                        for lower, count in zip(lowers, point.bucket_counts, strict=False):
                            if count:
                                key = f"{lower:g}"
                                counters.latency[key] = counters.latency.get(key, 0) + count
    return found


def stat_prefix(gateway_key: str) -> str:
    """``tenant/gateway`` → the stat prefix its listeners' counters carry (before ``.port.``)."""
    return gateway_key.replace("/", ".")


# -- percentiles of Envoy's log-linear histogram buckets --------------------------------------


def bucket_width(lower: float) -> float:
    """Envoy's histograms keep two significant digits: [1.2, 1.3), [35, 36), [120, 130)."""
    if lower <= 0:
        return 0.0
    return 10 ** (math.floor(math.log10(lower)) - 1)


def percentile(buckets: dict[str, int], q: float) -> float | None:
    """The ``q`` quantile (0–1) of {lower bound: count}, interpolated within its bucket."""
    ordered = sorted((float(lower), count) for lower, count in buckets.items() if count > 0)
    total = sum(count for _, count in ordered)
    if not total:
        return None
    rank, seen = q * total, 0
    for lower, count in ordered:
        if seen + count >= rank:
            return lower + bucket_width(lower) * max(0.0, rank - seen) / count
        seen += count
    lower = ordered[-1][0]
    return lower + bucket_width(lower)


def bucket_delta(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Cumulative buckets → what was added between two samples (a reset: all of ``now``)."""
    if any(now.get(key, 0) < count for key, count in before.items()):
        return dict(now)
    added = {key: count - before.get(key, 0) for key, count in now.items()}
    return {key: count for key, count in added.items() if count > 0}


# -- the lifecycle record ---------------------------------------------------------------------


def open_incarnation(
    incarnation: uuid.UUID, gateway_id: int, node_id: str, size: str, pid: int | None,
    location: str, runtime: str = "local",
) -> None:  # fmt: skip
    gateway = Gateway.objects.select_related("tenant").filter(pk=gateway_id).first()
    if gateway is None:
        return
    now = timezone.now()
    ReplicaIncarnation.objects.get_or_create(
        id=incarnation,
        defaults={
            "tenant": gateway.tenant, "gateway": gateway, "tenant_slug": gateway.tenant.slug,
            "gateway_name": gateway.name, "runtime": runtime, "location": location,
            "node_id": node_id, "size": size, "pid": pid, "started_at": now,
            "last_seen_at": now,
        },
    )  # fmt: skip


def mark_ready(incarnation: uuid.UUID) -> None:
    ReplicaIncarnation.objects.filter(id=incarnation, ready_at__isnull=True).update(
        ready_at=timezone.now()
    )


def next_seq(incarnation: uuid.UUID) -> int:
    found = UsageSample.objects.filter(incarnation_id=incarnation).aggregate(last=Max("seq"))
    return 0 if found["last"] is None else found["last"] + 1


def added(
    values: dict[str, int], latency: dict[str, int], before: tuple[dict, dict] | None
) -> tuple[dict[str, int], dict[str, int]]:
    """What a sample (cumulative ``values`` and ``latency`` buckets) adds to ``before``, the
    sample before it in its run and port: the difference, or all of itself when it is the
    first or any counter went down (a reset). Latency buckets: the differences, or all of them
    when any bucket went down; only what is positive."""
    if before is None or any(values[name] < before[0][name] for name in COUNTERS):
        return dict(values), {key: count for key, count in latency.items() if count > 0}
    counters = {name: values[name] - before[0][name] for name in COUNTERS}
    return counters, {k: c for k, c in bucket_delta(latency, before[1]).items() if c > 0}


def _cumulative(sample: UsageSample) -> tuple[dict, dict]:
    return {name: getattr(sample, name) for name in COUNTERS}, sample.latency


def _set_added(sample: UsageSample, before: UsageSample | None) -> None:
    counters, latency = added(
        *_cumulative(sample), None if before is None else _cumulative(before)
    )  # fmt: skip
    for name, value in counters.items():
        setattr(sample, f"added_{name}", value)
    sample.added_latency = latency


ADDED_FIELDS = [f"added_{name}" for name in COUNTERS] + ["added_latency"]


@transaction.atomic
def record_sample(
    incarnation: uuid.UUID, seq: int, taken_at: datetime, by_port: dict[int, PortCounters],
    final: bool = False,
) -> None:  # fmt: skip
    """Stores one read of a replica's counters (a repeat of the same sequence number changes
    nothing) and notes the replica was seen then. A sample that arrives late is kept when it
    was taken while the run was open; ``last_seen_at`` only ever moves forward."""
    open_then = Q(stopped_at__isnull=True) | Q(stopped_at__gte=taken_at)
    # Locked: one writer at a time per run, so each sample's difference is from its neighbour.
    runs = ReplicaIncarnation.objects.select_for_update().filter(open_then, id=incarnation)
    if not runs.values_list("id", flat=True):
        return  # taken after the run was closed (e.g. as lost): its samples end there
    stored = set(
        UsageSample.objects.filter(incarnation_id=incarnation, seq=seq).values_list(
            "port", flat=True
        )
    )  # fmt: skip
    new = []
    for port, counters in sorted(by_port.items()):
        if port in stored:
            continue  # the same read again: stored once
        sample = UsageSample(
            incarnation_id=incarnation, seq=seq, port=port, taken_at=taken_at, final=final,
            latency=counters.latency, **counters.values,
        )  # fmt: skip
        stream = UsageSample.objects.filter(incarnation_id=incarnation, port=port)
        _set_added(sample, stream.filter(seq__lt=seq).order_by("-seq").first())
        new.append(sample)
        after = stream.filter(seq__gt=seq).order_by("seq").first()
        if after is not None:  # this one arrived late: the next one now adds to it
            _set_added(after, sample)
            after.changed_at = timezone.now()
            after.save(update_fields=[*ADDED_FIELDS, "changed_at"])
    UsageSample.objects.bulk_create(new, ignore_conflicts=True)
    ReplicaIncarnation.objects.filter(
        id=incarnation, stopped_at__isnull=True, last_seen_at__lt=taken_at
    ).update(last_seen_at=taken_at)


def close_incarnation(incarnation: uuid.UUID, reason: str, at: datetime | None = None) -> None:
    ReplicaIncarnation.objects.filter(id=incarnation, stopped_at__isnull=True).update(
        stopped_at=at or timezone.now(), stop_reason=reason
    )


def close_lost(location: str, keep: set[uuid.UUID]) -> int:
    """Closes the open incarnations of runtime directory ``location`` that no process carries
    on (the platform went down with them) at the last time they were seen: replica-seconds
    never run on while nobody watched."""
    lost = ReplicaIncarnation.objects.filter(location=location, stopped_at__isnull=True).exclude(
        id__in=keep
    )
    count = 0
    for row in lost.only("id", "last_seen_at"):
        count += ReplicaIncarnation.objects.filter(id=row.id, stopped_at__isnull=True).update(
            stopped_at=row.last_seen_at, stop_reason=ReplicaIncarnation.Stop.LOST
        )
    if count:
        log.warning("metering: %d replica run(s) closed as lost (at their last sighting)", count)
    return count


# -- Kubernetes pods ---------------------------------------------------------------------------

# Incarnation ids of pods derive from their uid: the same pod is the same run whichever xDS
# server it talks to, before and after any of them restarts.
POD_RUNS = uuid.UUID("5f0b9a64-2f4e-4d0c-9a53-0c2f7b1e6a10")
POD_LOCATION = "kubernetes"


def pod_incarnation(pod_uid: str) -> uuid.UUID:
    return uuid.uuid5(POD_RUNS, pod_uid)


def open_pod(credential) -> uuid.UUID:
    """The run of the pod a ``PodCredential`` was issued to, opened (ready) if it was not."""
    from gateways.sizes import SIZES

    incarnation = pod_incarnation(credential.pod_uid)
    size = credential.gateway.spec.get("size", "small")
    size = size if size in SIZES else "small"
    open_incarnation(
        incarnation, credential.gateway_id, credential.node_id, size, None, POD_LOCATION,
        runtime="kubernetes",
    )  # fmt: skip
    mark_ready(incarnation)
    return incarnation


def open_pods_of(node_ids: Collection[str]) -> None:
    """At pods' first xDS streams (their Envoys are about to be ready): opens their runs. Node
    ids that name no pod (local replicas) open nothing."""
    from provisioning.models import PodCredential

    if not node_ids:
        return
    for credential in PodCredential.objects.select_related("gateway").filter(node_id__in=node_ids):
        open_pod(credential)


def record_pod_push(credential, request, taken_at: datetime) -> uuid.UUID:
    """One flush of a pod's stats sink (``request``: an OpenTelemetry metrics export) as the
    next sample of the pod's own run. Only the counters under its own gateway's stat prefix
    are read, whatever else the message holds."""
    from provisioning.xds.credentials import gateway_key

    incarnation = open_pod(credential)
    by_port = parse_otlp(request, stat_prefix(gateway_key(credential.gateway)))
    with transaction.atomic():
        # One flush at a time per run (an Envoy sends them in order; a second server or a
        # retried export must not take the same sequence number for different counters).
        ReplicaIncarnation.objects.select_for_update().filter(id=incarnation).first()
        record_sample(incarnation, next_seq(incarnation), taken_at, by_port)
    return incarnation


def close_pods(
    node_ids, keep: set[str] = frozenset(), reason: str = ReplicaIncarnation.Stop.EXITED
) -> int:
    """Closes the open runs of the pods ``node_ids`` (gone: their tokens were just revoked),
    except those of the live pod uids ``keep``, at the last time each was seen: a pod that
    stopped reporting is never billed past its last flush."""
    if not node_ids:
        return 0
    gone = ReplicaIncarnation.objects.filter(
        runtime="kubernetes", node_id__in=list(node_ids), stopped_at__isnull=True
    ).exclude(id__in=[pod_incarnation(uid) for uid in keep])
    return _close_at_last_sighting(gone, reason)


def close_gateway_pods(tenant_slug: str, gateway_name: str) -> int:
    """The gateway left its cluster (deleted, moved, or back to the local runtime): every run
    of its pods ends at its last flush (takes names: the row may be gone)."""
    runs = ReplicaIncarnation.objects.filter(
        runtime="kubernetes", tenant_slug=tenant_slug, gateway_name=gateway_name,
        stopped_at__isnull=True,
    )  # fmt: skip
    return _close_at_last_sighting(runs, ReplicaIncarnation.Stop.DELETED)


def _close_at_last_sighting(runs, reason: str) -> int:
    count = 0
    for row in runs.only("id", "last_seen_at"):
        count += ReplicaIncarnation.objects.filter(id=row.id, stopped_at__isnull=True).update(
            stopped_at=row.last_seen_at, stop_reason=reason
        )
    return count
