"""State-of-the-world ADS (``StreamAggregatedResources``) for one Envoy stream, without I/O.

Every response for a type carries all of that type's resources the Envoy asked for (all
clusters and listeners; the route configurations its listeners named) at the snapshot's version.
A type is answered again only when the snapshot or the requested names change, so a NACK does
not make the server resend the same rejected config in a loop.
"""

import itertools
from dataclasses import dataclass, field

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse

from provisioning.xds.acks import Ack, rejection
from provisioning.xds.resources import TYPE_ORDER, WILDCARD_TYPES
from provisioning.xds.snapshots import Snapshot


@dataclass
class _TypeState:
    names: frozenset[str] = frozenset()
    sent: tuple[str, frozenset[str]] | None = None  # (snapshot version, names requested)
    latest_nonce: str | None = None
    outstanding: dict[str, str] = field(default_factory=dict)  # nonce → snapshot version


class SotwSession:
    """Feed it requests and snapshots; it returns the responses to send and the ACKs seen."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self._types: dict[str, _TypeState] = {}
        self._nonces = itertools.count(1)

    def on_request(self, request: DiscoveryRequest) -> tuple[list[DiscoveryResponse], list[Ack]]:
        state = self._types.setdefault(request.type_url, _TypeState())
        acks = []
        nonce = request.response_nonce
        if nonce:
            version = state.outstanding.pop(nonce, None)
            if version is not None:
                acks.append(Ack(request.type_url, version, rejection(request)))
            if state.latest_nonce is not None and nonce != state.latest_nonce:
                # Stale: answers an older response; the newer one is already on its way.
                return [], acks
        state.names = frozenset(request.resource_names)
        response = self._respond(request.type_url)
        return ([response] if response else []), acks

    def on_snapshot(self, snapshot: Snapshot) -> tuple[list[DiscoveryResponse], list[Ack]]:
        """Responses for every type the Envoy asked for, clusters first (ADS ordering); the
        ACKs come later, with the Envoy's requests."""
        self.snapshot = snapshot
        responses = [self._respond(type_url) for type_url in TYPE_ORDER if type_url in self._types]
        return [response for response in responses if response], []

    def _respond(self, type_url: str) -> DiscoveryResponse | None:
        state = self._types[type_url]
        if self.snapshot is None or type_url not in self.snapshot.resources:
            return None
        if state.sent == (self.snapshot.version, state.names):
            return None
        available = self.snapshot.resources[type_url]
        if type_url in WILDCARD_TYPES and state.names <= {"", "*"}:
            chosen = list(available.values())
        else:
            chosen = [available[name] for name in sorted(state.names) if name in available]
        nonce = str(next(self._nonces))
        state.sent = (self.snapshot.version, state.names)
        state.latest_nonce = nonce
        state.outstanding[nonce] = self.snapshot.version
        return DiscoveryResponse(
            version_info=self.snapshot.version,
            type_url=type_url,
            nonce=nonce,
            resources=[resource.body for resource in chosen],
        )
