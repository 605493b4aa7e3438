"""Incremental ADS (``DeltaAggregatedResources``) for one Envoy stream, without I/O.

Only resources whose content version differs from what the Envoy holds are sent. On a new
snapshot, additions and changes go out in ADS order (clusters, endpoints, listeners, routes) and
clusters that disappeared, and their endpoints, are removed last, so a route never points at a
cluster that is already gone or emptied ("make before break"). A reconnecting Envoy names what
it holds (``initial_resource_versions``); since versions are content hashes, an Envoy that is up
to date is sent nothing.
"""

import itertools
from dataclasses import dataclass, field

from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    Resource,
)

from provisioning.translate.types import (
    CLUSTER,
    CLUSTER_LOAD_ASSIGNMENT,
    ROUTE_CONFIGURATION,
    SECRET,
    VIRTUAL_HOST,
)
from provisioning.xds.acks import Ack, rejection
from provisioning.xds.resources import TYPE_ORDER, WILDCARD_TYPES, vhds_namespace
from provisioning.xds.snapshots import Snapshot


@dataclass
class _TypeState:
    wildcard: bool = False
    names: set[str] = field(default_factory=set)  # explicitly subscribed
    sent: dict[str, str] = field(default_factory=dict)  # name → version the Envoy was given
    latest_nonce: str | None = None
    outstanding: dict[str, str] = field(default_factory=dict)  # nonce → snapshot version
    status: Ack | None = None  # the last ACK/NACK reported
    answered: bool = False  # a response of this type was sent on this stream


LAST_REMOVED = (CLUSTER, CLUSTER_LOAD_ASSIGNMENT, SECRET)
# Types whose subscriptions name namespaces, not resources (VHDS: a route configuration's name
# stands for all of its virtual hosts, ``<route configuration>/<domain>``).
NAMESPACED = (VIRTUAL_HOST,)


class DeltaSession:
    """Feed it requests and snapshots; it returns the responses to send and the ACKs seen."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self._types: dict[str, _TypeState] = {}
        self._nonces = itertools.count(1)
        self._held: list[Ack] = []  # ACKs waiting for the stream's answers (``_reported``)
        # Route configurations whose VHDS watch exists on the Envoy: only their virtual hosts
        # are sent (Envoy drops virtual hosts nobody watches, and would not ask again).
        self._watched: set[str] = set()

    def on_request(
        self, request: DeltaDiscoveryRequest
    ) -> tuple[list[DeltaDiscoveryResponse], list[Ack]]:
        responses, acks = self._on_request(request)
        return responses, self._reported(acks)

    def on_snapshot(self, snapshot: Snapshot) -> tuple[list[DeltaDiscoveryResponse], list[Ack]]:
        responses, acks = self._on_snapshot(snapshot)
        return responses, self._reported(acks)

    def _reported(self, acks: list[Ack]) -> list[Ack]:
        """The ACKs to report now. While a response is still unanswered they are held: an
        Envoy ACKs a listener before the route configuration and virtual hosts it waits for
        (it asks for those first), so an ACK reported at once would say "applied" while the
        listener is still warming. Held ones go out together once every response is answered,
        the types the others depend on last (virtual hosts … clusters): the last one reported
        completes the replica's set (``provisioning.receipts``) only when all of it is in."""
        self._held += acks
        if any(state.outstanding for state in self._types.values()) or not self._held:
            return []
        order = {type_url: index for index, type_url in enumerate(TYPE_ORDER)}
        held, self._held = self._held, []
        return sorted(held, key=lambda ack: -order.get(ack.type_url, len(order)))

    def _on_request(
        self, request: DeltaDiscoveryRequest
    ) -> tuple[list[DeltaDiscoveryResponse], list[Ack]]:
        type_url = request.type_url
        first = type_url not in self._types
        state = self._types.setdefault(type_url, _TypeState())
        acks = []
        version = state.outstanding.pop(request.response_nonce, None)
        if version is not None:
            acks.append(self._record(state, Ack(type_url, version, rejection(request))))
        if first:
            state.sent.update(request.initial_resource_versions)
            legacy_wildcard = type_url in WILDCARD_TYPES and not request.resource_names_subscribe
            state.wildcard = legacy_wildcard
        changed = _apply_subscription(state, request, type_url in NAMESPACED)
        if type_url == VIRTUAL_HOST and first:
            changed |= self._watch_routes()  # VHDS starts with the configurations Envoy has
        elif (
            type_url == ROUTE_CONFIGURATION and version is not None and not rejection(request)
            and VIRTUAL_HOST in self._types and self._watch_routes()
        ):  # fmt: skip
            # Envoy took new route configurations: a VHDS watch now waits for each one's
            # virtual hosts (a later one adds no request of its own: the type is subscribed).
            # Empty too: a configuration without virtual hosts still ends the wait.
            return [self._response(VIRTUAL_HOST, *self._diff(VIRTUAL_HOST))], acks
        if not (first or changed):
            return [], acks
        upserts, removals = self._diff(type_url)
        if upserts or removals:
            return [self._response(type_url, upserts, removals)], acks
        if first and request.initial_resource_versions:
            acks += self._unchanged(type_url)  # reconnected, and already up to date
        elif self.snapshot is not None and (
            (first and state.wildcard) or (changed and type_url in NAMESPACED)
        ):
            # Nothing of this type (a gateway without backends has no clusters; a route
            # configuration without virtual hosts): an empty answer still ends Envoy's fetch,
            # which would otherwise wait 15 s (VHDS: hold the listener warming).
            return [self._response(type_url, [], [])], acks
        return [], acks

    def _on_snapshot(self, snapshot: Snapshot) -> tuple[list[DeltaDiscoveryResponse], list[Ack]]:
        self.snapshot = snapshot
        responses, acks = [], []
        # Removed clusters, the endpoints of removed EDS clusters and removed secrets go last:
        # the routes and listeners that stop using them are sent first (make before break).
        deferred: dict[str, list[str]] = {}
        for type_url in TYPE_ORDER:
            if type_url not in self._types:
                continue
            upserts, removals = self._diff(type_url)
            if type_url in LAST_REMOVED and removals:
                deferred[type_url], removals = removals, []
            state = self._types[type_url]
            if upserts or removals or (state.wildcard and not state.answered):
                responses.append(self._response(type_url, upserts, removals))
            elif type_url not in deferred:
                acks += self._unchanged(type_url)
        for type_url in (SECRET, CLUSTER_LOAD_ASSIGNMENT, CLUSTER):
            if type_url in deferred:
                responses.append(self._response(type_url, [], deferred[type_url]))
        return responses, acks

    def _watch_routes(self) -> bool:
        """Every route configuration sent so far is watched; True if one was not."""
        routes = self._types.get(ROUTE_CONFIGURATION)
        names = set(routes.sent) if routes else set()
        new = bool(names - self._watched)
        self._watched = names
        return new

    def _diff(self, type_url: str) -> tuple[list, list[str]]:
        """What to send (changed or new resources) and which names to remove."""
        state = self._types[type_url]
        if self.snapshot is None or type_url not in self.snapshot.resources:
            return [], []
        available = self.snapshot.resources[type_url]
        if type_url == VIRTUAL_HOST:
            wanted = {n: r for n, r in available.items() if vhds_namespace(n) in self._watched}
        elif state.wildcard:
            wanted = available
        else:
            wanted = {name: available[name] for name in state.names if name in available}
        upserts = [r for name, r in sorted(wanted.items()) if state.sent.get(name) != r.version]
        removals = sorted(name for name in state.sent if name not in wanted)
        return upserts, removals

    def _response(self, type_url: str, upserts: list, removals: list[str]):
        state = self._types[type_url]
        nonce = str(next(self._nonces))
        for resource in upserts:
            state.sent[resource.name] = resource.version
        for name in removals:
            state.sent.pop(name, None)
        state.latest_nonce = nonce
        state.answered = True
        state.outstanding[nonce] = self.snapshot.version
        return DeltaDiscoveryResponse(
            system_version_info=self.snapshot.version,
            type_url=type_url,
            nonce=nonce,
            resources=[Resource(name=r.name, version=r.version, resource=r.body) for r in upserts],
            removed_resources=removals,
        )

    def _unchanged(self, type_url: str) -> list[Ack]:
        """A new snapshot that changes nothing of this type: the Envoy's standing answer (ACK,
        or NACK of the same content) now holds for the new version too."""
        state = self._types[type_url]
        version = self.snapshot.version if self.snapshot else None
        if version is None:
            return []
        if state.latest_nonce in state.outstanding:
            # The answer still to come covers this version as well.
            state.outstanding[state.latest_nonce] = version
            return []
        if state.status is not None and state.status.version == version:
            return []
        error = state.status.error if state.status else None
        return [self._record(state, Ack(type_url, version, error))]

    @staticmethod
    def _record(state: _TypeState, ack: Ack) -> Ack:
        state.status = ack
        return ack


def _apply_subscription(
    state: _TypeState, request: DeltaDiscoveryRequest, namespaced: bool = False
) -> bool:
    """Applies (un)subscriptions; True if the Envoy now wants something it did not.
    ``namespaced``: a name stands for every resource under it (what Envoy drops with it)."""
    wanted_more = False
    for name in request.resource_names_subscribe:
        if name == "*":
            wanted_more |= not state.wildcard
            state.wildcard = True
        elif name not in state.names:
            state.names.add(name)
            wanted_more = True
    for name in request.resource_names_unsubscribe:
        if name == "*":
            state.wildcard = False
        else:
            state.names.discard(name)
            if not state.wildcard:
                state.sent.pop(name, None)
                if namespaced:
                    for held in [n for n in state.sent if vhds_namespace(n) == name]:
                        del state.sent[held]
    return wanted_more
