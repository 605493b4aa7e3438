"""State-of-the-world ADS (``StreamAggregatedResources``) for one Envoy stream, without I/O.

Every response for a type carries all of that type's resources the Envoy asked for (all
clusters and listeners; the route configurations its listeners named) at the snapshot's version.
A type is answered again only when the snapshot or the requested names change, so a NACK does
not make the server resend the same rejected config in a loop.

Clusters a new snapshot drops are kept in its cluster response and removed by a second one
once the Envoy has ACKed the new routes (or listeners): otherwise, for a moment, the old routes
would point at clusters already gone, and requests would get 503 ``no_cluster``.
"""

import itertools
from dataclasses import dataclass, field

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from provisioning.translate.types import (
    CLUSTER,
    CLUSTER_LOAD_ASSIGNMENT,
    LISTENER,
    ROUTE_CONFIGURATION,
)
from provisioning.xds.acks import Ack, rejection
from provisioning.xds.resources import TYPE_ORDER, WILDCARD_TYPES, EncodedResource
from provisioning.xds.snapshots import Snapshot


@dataclass
class _TypeState:
    names: frozenset[str] = frozenset()
    # (snapshot version, endpoints version for ClusterLoadAssignments, names requested)
    sent: tuple[str, str, frozenset[str]] | None = None
    latest_nonce: str | None = None
    outstanding: dict[str, str] = field(default_factory=dict)  # nonce → snapshot version
    content: tuple | None = None  # (name, version) of every resource last sent
    status: Ack | None = None  # the Envoy's last answer for this type


class SotwSession:
    """Feed it requests and snapshots; it returns the responses to send and the ACKs seen."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self._types: dict[str, _TypeState] = {}
        self._nonces = itertools.count(1)
        self._held: dict[str, EncodedResource] = {}  # the clusters the Envoy has now
        self._removal_due: str | None = None  # version whose ACKed routes allow the removal

    def on_request(self, request: DiscoveryRequest) -> tuple[list[DiscoveryResponse], list[Ack]]:
        state = self._types.setdefault(request.type_url, _TypeState())
        acks = []
        nonce = request.response_nonce
        if nonce:
            version = state.outstanding.pop(nonce, None)
            if version is not None:
                state.status = Ack(request.type_url, version, rejection(request))
                acks.append(state.status)
            if state.latest_nonce is not None and nonce != state.latest_nonce:
                # Stale: answers an older response; the newer one is already on its way.
                return [], acks
        state.names = frozenset(request.resource_names)
        response = self._respond(request.type_url)
        responses = [response] if response else []
        removal = self._remove_dropped_clusters(request.type_url, acks)
        return responses + ([removal] if removal else []), acks

    def on_snapshot(self, snapshot: Snapshot) -> tuple[list[DiscoveryResponse], list[Ack]]:
        """Responses for every type the Envoy asked for whose resources changed, clusters first
        (ADS ordering); the ACKs come later, with the Envoy's requests. A type whose resources
        are all as sent before is not pushed again: the Envoy's standing answer for it holds
        for the new version too (returned as an ACK of it, as Delta sessions do)."""
        self.snapshot = snapshot
        responses, acks = [], []
        for type_url in TYPE_ORDER:
            if type_url not in self._types:
                continue
            response = self._respond(type_url, skip_unchanged=True)
            if response is not None:
                responses.append(response)
            else:
                acks += self._unchanged(type_url)
        return responses, acks

    def _unchanged(self, type_url: str) -> list[Ack]:
        state = self._types[type_url]
        version = self.snapshot.version
        if state.latest_nonce in state.outstanding:
            # The answer still to come covers this version as well.
            state.outstanding[state.latest_nonce] = version
            return []
        if state.status is None or state.status.version == version:
            return []
        state.status = Ack(type_url, version, state.status.error)
        return [state.status]

    def _remove_dropped_clusters(self, type_url: str, acks: list[Ack]) -> DiscoveryResponse | None:
        """The second cluster response, once the routes that no longer use them are ACKed."""
        gate = ROUTE_CONFIGURATION if ROUTE_CONFIGURATION in self._types else LISTENER
        accepted = any(ack.error is None and ack.version == self._removal_due for ack in acks)
        if self._removal_due is None or type_url != gate or not accepted:
            return None
        self._removal_due = None
        return self._respond(CLUSTER, keep_dropped=False)

    def _respond(
        self, type_url: str, keep_dropped: bool = True, skip_unchanged: bool = False
    ) -> DiscoveryResponse | None:
        state = self._types[type_url]
        if self.snapshot is None or type_url not in self.snapshot.sotw_resources:
            return None
        # Endpoints change without a new revision: only their type is answered again then.
        endpoints = self.snapshot.endpoints_version if type_url == CLUSTER_LOAD_ASSIGNMENT else ""
        sent = (self.snapshot.version, endpoints, state.names)
        if keep_dropped and state.sent == sent:
            return None
        available = self.snapshot.sotw_resources[type_url]
        if type_url in WILDCARD_TYPES and state.names <= {"", "*"}:
            chosen = list(available.values())
        else:
            chosen = [available[name] for name in sorted(state.names) if name in available]
        content = tuple((resource.name, resource.version) for resource in chosen)
        held_extra = type_url == CLUSTER and self._held.keys() != {r.name for r in chosen}
        if skip_unchanged and content == state.content and not held_extra:
            state.sent = sent  # nothing new for this Envoy: no push
            return None
        if type_url == CLUSTER:
            chosen = self._with_held_clusters(chosen, keep_dropped)
        nonce = str(next(self._nonces))
        state.content = content
        state.sent = sent
        state.latest_nonce = nonce
        state.outstanding[nonce] = self.snapshot.version
        return DiscoveryResponse(
            version_info=self.snapshot.version,
            type_url=type_url,
            nonce=nonce,
            resources=[resource.body for resource in chosen],
        )

    def _with_held_clusters(
        self, chosen: list[EncodedResource], keep_dropped: bool
    ) -> list[EncodedResource]:
        names = {resource.name for resource in chosen}
        dropped = [r for name, r in self._held.items() if name not in names] if keep_dropped else []
        self._removal_due = self.snapshot.version if dropped else None
        result = chosen + dropped
        self._held = {resource.name: resource for resource in result}
        return result
