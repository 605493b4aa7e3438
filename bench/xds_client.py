"""A simulated Envoy for load tests: one Delta ADS stream that subscribes as an Envoy replica
does (clusters and listeners by wildcard, its gateway's route configurations by name, then
their virtual hosts as VHDS does, naming nothing), ACKs every response with its nonce, and
records what it received and when.

It speaks the real protocol to the real server (``provisioning.xds.server``) with a real
replica token; it does not apply anything, so it is cheap enough to run thousands of in one
process (``bench/many_gateways.py``)."""

import asyncio
import time
from dataclasses import dataclass, field

from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTES = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
VHOSTS = "type.googleapis.com/envoy.config.route.v3.VirtualHost"


@dataclass
class Replica:
    """One simulated replica: node id ``<gateway key>/<index>`` and its token."""

    gateway_key: str
    index: int
    token: str
    route_names: tuple[str, ...] = ()
    received: dict[str, str] = field(default_factory=dict)  # type URL → latest system version
    names: dict[str, set[str]] = field(default_factory=dict)  # type URL → resource names held
    updated_at: float = 0.0  # monotonic time of the latest response
    responses: int = 0
    error: str = ""
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def node_id(self) -> str:
        return f"{self.gateway_key}/{self.index}"

    def version(self, type_url: str = ROUTES) -> str:
        return self.received.get(type_url, "")


async def run(channel, replica: Replica, stop: asyncio.Event) -> None:
    """Holds the replica's stream until ``stop`` is set (or the server ends it)."""
    outgoing: asyncio.Queue = asyncio.Queue()
    node = Node(id=replica.node_id, cluster=replica.gateway_key)
    await outgoing.put(DeltaDiscoveryRequest(node=node, type_url=CLUSTER))
    await outgoing.put(DeltaDiscoveryRequest(type_url=LISTENER))
    if replica.route_names:
        await outgoing.put(DeltaDiscoveryRequest(
            type_url=ROUTES, resource_names_subscribe=list(replica.route_names)))  # fmt: skip

    async def requests():
        while True:
            item = await outgoing.get()
            if item is None:
                return
            yield item

    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    call = stub.DeltaAggregatedResources(
        requests(), metadata=(("authorization", f"Bearer {replica.token}"),)
    )
    waiter = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            reading = asyncio.ensure_future(call.read())
            done, _ = await asyncio.wait({reading, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if reading not in done:
                reading.cancel()
                break
            response = reading.result()
            if response is None or not hasattr(response, "type_url"):
                break
            held = replica.names.setdefault(response.type_url, set())
            held.update(resource.name for resource in response.resources)
            held.difference_update(response.removed_resources)
            replica.received[response.type_url] = response.system_version_info
            replica.updated_at = time.monotonic()
            replica.responses += 1
            replica.connected.set()
            await outgoing.put(DeltaDiscoveryRequest(
                type_url=response.type_url, response_nonce=response.nonce))  # fmt: skip
            if response.type_url == ROUTES and VHOSTS not in replica.names:
                replica.names[VHOSTS] = set()  # the route configurations' VHDS subscription
                await outgoing.put(DeltaDiscoveryRequest(type_url=VHOSTS))
    except Exception as error:  # noqa: BLE001 (a stream's end is what is recorded)
        replica.error = f"{type(error).__name__}: {error}"
    finally:
        waiter.cancel()
        await outgoing.put(None)
        call.cancel()
