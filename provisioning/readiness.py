"""A gateway's ``status.phase``, ``status.replicas`` and ``Programmed`` condition, from what its
Envoy replicas report to the xDS servers.

A replica *runs* a revision when it has a stream open (``ReplicaConnection``) and has ACKed
that revision's version for every resource type it holds (``ReplicaStatus``). Then:

- ``Programmed`` is ``True`` when every desired replica runs the current revision and that
  revision was compiled from the gateway's current ``generation`` (``status.observedGeneration``,
  which reconcile stores with the revision: a change whose reconcile has not run yet, or
  whose worker died, is not programmed); ``False``/``Invalid`` while the newest revision is
  rejected by validation (the last good one keeps being served); ``False``/``Rejected`` while
  a connected replica NACKs the current revision (naming the replica and Envoy's message: that
  replica keeps serving what it had, and nothing is rolled back on its word); otherwise
  ``False``/``Pending``.
- ``phase`` says how the gateway serves: ``Ready`` (every desired replica runs the current
  revision — and, on Kubernetes, the cluster reports the Deployment available and the Service
  addressed: its ``Ready`` condition), ``Degraded`` (fewer do, after the gateway had been
  serving), ``Pending`` (it has not served yet).

This module is the only writer of those fields; reconcile, the xDS servers and the runtime
agent call ``refresh`` after anything that can change them.
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from gateways.conditions import set_condition
from gateways.models import Gateway
from provisioning.models import ConfigRevision, ReplicaConnection, ReplicaStatus

SERVING = ("Ready", "Degraded")


@dataclass(frozen=True)
class Assessment:
    phase: str
    ready: int
    desired: int
    programmed: tuple[str, str, str]  # status, reason, message


def replicas_running(version: str, nodes: dict[str, list[tuple[str, str]]]) -> int:
    """``nodes``: connected node id → [(acked version, rejected version)] per resource type."""
    return sum(
        1
        for types in nodes.values()
        if types and all(acked == version and rejected != version for acked, rejected in types)
    )


def assess(
    desired: int,
    current: tuple[int, str] | None,
    rejected: tuple[int, str] | None,
    nodes: dict[str, list[tuple[str, str]]],
    previous_phase: str,
    cluster_available: bool = True,
    nacked: tuple[str, str] | None = None,
    uncompiled: int | None = None,
) -> Assessment:
    """``current``: (number, hash) of the served revision; ``rejected``: (number, message) when
    the newest revision is rejected; ``cluster_available``: for Kubernetes gateways, whether the
    cluster reports the Deployment available and the Service addressed; ``nacked``: (node id,
    Envoy's message) of a connected replica that rejected the current revision; ``uncompiled``:
    the gateway's generation when no revision was compiled from it yet."""
    ready = replicas_running(current[1], nodes) if current else 0
    if ready >= desired and cluster_available:
        phase = "Ready"
    elif ready > 0 or previous_phase in SERVING:
        phase = "Degraded"
    else:
        phase = "Pending"
    if rejected is not None:
        programmed = ("False", "Invalid", f"revision {rejected[0]} was rejected: {rejected[1]}")
    elif current is None:
        programmed = ("False", "Pending", "waiting for a valid config revision")
    elif nacked is not None:
        programmed = ("False", "Rejected", f"replica {nacked[0]} rejected revision {current[0]} "
                      f"and keeps serving what it had: {nacked[1]}")  # fmt: skip
    elif uncompiled is not None:
        programmed = ("False", "Pending", f"generation {uncompiled} is not compiled yet; "
                      f"{_running(ready, desired, current[0])}")  # fmt: skip
    elif ready >= desired:
        programmed = ("True", "Programmed", _running(ready, desired, current[0]))
    else:
        programmed = ("False", "Pending", _running(ready, desired, current[0]))
    return Assessment(phase, ready, desired, programmed)


def _running(ready: int, desired: int, revision: int) -> str:
    """``2 of 2 replicas run revision 7``; ``3 replicas run revision 7 (2 desired)`` while one
    more than the gateway wants is still connected (a scale-down or a pod being replaced)."""
    if ready > desired:
        return f"{ready} replicas run revision {revision} ({desired} desired)"
    return f"{ready} of {desired} replicas run revision {revision}"


def _nodes(gateway_id: int) -> dict[str, list[tuple[str, str]]]:
    connected = set(
        ReplicaConnection.objects.filter(gateway_id=gateway_id, connected=True).values_list(
            "node_id", flat=True
        )
    )
    nodes: dict[str, list[tuple[str, str]]] = {node: [] for node in connected}
    rows = ReplicaStatus.objects.filter(gateway_id=gateway_id, node_id__in=connected)
    for node_id, acked, rejected in rows.values_list(
        "node_id", "acked_version", "rejected_version"
    ):
        nodes[node_id].append((acked, rejected))
    return nodes


def _nacked(gateway_id: int, nodes, version: str) -> tuple[str, str] | None:
    """A connected replica's NACK of ``version`` (the current revision), if any."""
    return (
        ReplicaStatus.objects.filter(
            gateway_id=gateway_id, node_id__in=list(nodes), rejected_version=version
        )
        .order_by("node_id", "type_url")
        .values_list("node_id", "nack_message")
        .first()
    )


def desired_replicas(spec: dict) -> int:
    """How many replicas a gateway's spec asks for (the autoscaling minimum when it scales)."""
    scaling = spec.get("autoscaling")
    return int(scaling["minReplicas"] if scaling else spec.get("replicas", 1))


def refresh(gateway_id: int) -> Assessment | None:
    """Recomputes and stores the gateway's phase, replica counts and ``Programmed``."""
    with transaction.atomic():
        gateway = Gateway.objects.select_for_update().filter(pk=gateway_id).first()
        if gateway is None:
            return None
        revisions = ConfigRevision.objects.filter(gateway_id=gateway_id)
        current = revisions.filter(current=True).values_list("number", "content_hash").first()
        latest = revisions.order_by("-number").values_list("number", "state", "message").first()
        rejected = None
        if latest and latest[1] == ConfigRevision.State.REJECTED:
            rejected = (latest[0], latest[2])
        compiled = gateway.status.get("observedGeneration", 0) >= gateway.generation
        cluster_available = True
        if gateway.spec.get("runtime") == "kubernetes":
            ready_condition = next(
                (c for c in gateway.status.get("conditions", []) if c.get("type") == "Ready"), {}
            )
            cluster_available = ready_condition.get("status") == "True"
        nodes = _nodes(gateway_id)
        result = assess(
            desired_replicas(gateway.spec),
            current,
            rejected,
            nodes,
            gateway.status.get("phase", "Pending"),
            cluster_available,
            _nacked(gateway_id, nodes, current[1]) if current and nodes else None,
            None if compiled else gateway.generation,
        )
        status = dict(gateway.status)
        status["phase"] = result.phase
        status["replicas"] = {"desired": result.desired, "ready": result.ready}
        status["conditions"] = set_condition(
            status.get("conditions", []), "Programmed", *result.programmed, gateway.generation
        )
        if status != gateway.status:
            Gateway.objects.filter(pk=gateway_id).update(
                status=status, resource_version=F("resource_version") + 1
            )
        if current and result.ready >= result.desired:
            revisions.filter(current=True, programmed_at__isnull=True).update(
                programmed_at=timezone.now()
            )
        return result
