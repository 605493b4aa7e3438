"""The ADS gRPC server (grpc.aio): authenticates each Envoy, streams its gateway's snapshots and
reports what the Envoy accepted or rejected.

An Envoy proves who it is with a token (``authorization: Bearer <token>`` in the stream's
initial metadata, from its bootstrap) and names itself with node id ``<gateway key>/<replica>``.
The token stands for a ``Principal``: one replica of one gateway (a local replica or a
Kubernetes pod), and the node id must be exactly the principal's. A stream whose token is
unknown, or whose node id is not the token's, is refused with UNAUTHENTICATED before it is sent
anything: a proxy only ever gets its own gateway's config, as itself. Other gRPC services can
share the port (``XdsServer(handlers=...)``: the Kubernetes pods' enrollment). The server
keeps no config of its own (it reads a ``SnapshotSource``), so several can run side by side and
a restarted one picks up where the last one left off.
"""

import asyncio
import inspect
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from grpc import aio

from provisioning.xds.acks import Ack
from provisioning.xds.delta import DeltaSession
from provisioning.xds.snapshots import SnapshotSource
from provisioning.xds.sotw import SotwSession

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """What a token lets stream: the gateway ``gateway_key``, as the one node ``node_id``."""

    gateway_key: str
    node_id: str

    def admits(self, node_id: str) -> bool:
        return node_id == self.node_id


# token → Principal or None; may be a coroutine function (a database lookup).
Authenticate = Callable[[str], "Principal | None | Awaitable[Principal | None]"]
# (gateway key, node id, type URL, version, Envoy's error or None); may be async. It runs in
# the stream's task, before the next push to that replica: keep it quick or hand the work off.
OnAck = Callable[[str, str, str, str, "str | None"], "None | Awaitable[None]"]
# (gateway key, node id, connected): a node's first stream opened (before its first request is
# answered) or its last stream closed; may be async.
OnConnection = Callable[[str, str, bool], "None | Awaitable[None]"]

SERVER_OPTIONS = (
    # Two servers must not share a port by accident (gRPC sets SO_REUSEPORT by default).
    ("grpc.so_reuseport", 0),
    # Find Envoys that vanished without closing their connection.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Envoy pings an idle ADS connection (bootstrap keepalive, 15 s); gRPC's default policy
    # would answer pings more frequent than every 5 minutes with GOAWAY "too_many_pings".
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.keepalive_permit_without_calls", 1),
)


def bearer_token(metadata) -> str | None:
    """The token of an ``authorization: Bearer <token>`` metadata entry."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def gateway_of(node_id: str) -> str | None:
    """``acme/edge/0`` → ``acme/edge`` (gateway keys may themselves contain slashes)."""
    gateway_key, _, replica = node_id.rpartition("/")
    return gateway_key if gateway_key and replica else None


async def _maybe_await(value):
    return await value if inspect.isawaitable(value) else value


class AggregatedDiscoveryService(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """Both ADS flavours: state of the world and incremental (Delta, preferred)."""

    def __init__(
        self,
        source: SnapshotSource,
        authenticate: Authenticate,
        on_ack: OnAck | None = None,
        on_connection: OnConnection | None = None,
    ):
        self._source = source
        self._authenticate_token = authenticate
        self._on_ack = on_ack
        self._on_connection = on_connection
        self._reports: set[asyncio.Task] = set()  # disconnections still being recorded
        # gateway key → node id → open streams (a replica reconnecting may briefly have two)
        self._streams: dict[str, Counter] = {}

    async def StreamAggregatedResources(self, request_iterator, context):  # noqa: N802
        async for response in self._serve(SotwSession(), request_iterator, context):
            yield response

    async def DeltaAggregatedResources(self, request_iterator, context):  # noqa: N802
        async for response in self._serve(DeltaSession(), request_iterator, context):
            yield response

    def connected(self, gateway_key: str) -> set[str]:
        """Node ids of the gateway's replicas that have a stream open now."""
        return set(self._streams.get(gateway_key, ()))

    async def _serve(self, session, requests: AsyncIterator, context) -> AsyncIterator:
        # The first request is read before the token is checked (nothing is answered before
        # it is): refusing a stream whose first message is still on its way could end it
        # with a transport error (INTERNAL) instead of UNAUTHENTICATED.
        first = await anext(requests, None)
        principal = await self._authenticate(context)
        if first is None:
            return
        node_id = first.node.id
        if not principal.admits(node_id):
            await _refuse(context, f"node id {node_id!r} is not the one this token names")
        gateway_key = principal.gateway_key
        streams = self._streams.setdefault(gateway_key, Counter())
        streams[node_id] += 1
        logger.info("xds: %s connected (%s)", node_id, type(session).__name__)
        try:
            if streams[node_id] == 1:
                await self._report_connection(gateway_key, node_id, True)
            exchange = self._exchange(session, gateway_key, node_id, first, requests, context)
            async for response in exchange:
                yield response
        finally:
            streams[node_id] -= 1
            if streams[node_id] <= 0:
                del streams[node_id]
                # The stream's task may be cancelled: record from a task of its own.
                task = asyncio.ensure_future(self._report_connection(gateway_key, node_id, False))
                self._reports.add(task)
                task.add_done_callback(self._reports.discard)
            logger.info("xds: %s disconnected", node_id)

    async def _report_connection(self, gateway_key: str, node_id: str, connected: bool) -> None:
        if self._on_connection is None:
            return
        try:
            await _maybe_await(self._on_connection(gateway_key, node_id, connected))
        except Exception:
            logger.exception("xds: recording the connection of %s failed", node_id)

    async def drain_reports(self) -> None:
        """Waits for the disconnections still being recorded (at shutdown)."""
        if self._reports:
            await asyncio.gather(*self._reports, return_exceptions=True)

    async def _authenticate(self, context) -> Principal:
        token = bearer_token(context.invocation_metadata())
        if token is None:
            await _refuse(context, "no bearer token")
        try:
            principal = await _maybe_await(self._authenticate_token(token))
        except Exception:
            logger.exception("xds: authentication failed")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "cannot check the token now")
        if not isinstance(principal, Principal):
            await _refuse(context, "unknown token")
        return principal

    async def _exchange(self, session, gateway_key, node_id, first, requests, context):
        """Answers requests and pushes new snapshots as they come, whichever is first.

        Responses go out before the ACKs that came with them are recorded: recording writes to
        the database, and a push waiting behind those writes would reach Envoy tens of
        milliseconds late (the snapshot's unchanged types are ACKed in the same step)."""
        reading: asyncio.Future = asyncio.ensure_future(_next(requests))
        watching: asyncio.Future = asyncio.ensure_future(self._source.watch(gateway_key, None))
        try:
            responses, acks = session.on_request(first)
            for response in responses:
                yield response
            await self._record(acks, gateway_key, node_id)
            while True:
                done, _ = await asyncio.wait(
                    {reading, watching}, return_when=asyncio.FIRST_COMPLETED
                )
                if watching in done:
                    snapshot = watching.result()
                    responses, acks = session.on_snapshot(snapshot)
                    for response in responses:
                        yield response
                    watching = asyncio.ensure_future(self._source.watch(gateway_key, snapshot.key))
                    await self._record(acks, gateway_key, node_id)
                if reading in done:
                    request = reading.result()
                    if request is None:
                        return
                    if request.node.id and request.node.id != node_id:
                        await _refuse(context, "node id changed within the stream")
                    responses, acks = session.on_request(request)
                    for response in responses:
                        yield response
                    reading = asyncio.ensure_future(_next(requests))
                    await self._record(acks, gateway_key, node_id)
        finally:
            reading.cancel()
            watching.cancel()

    async def _record(self, acks: list[Ack], gateway_key, node_id) -> None:
        for ack in acks:
            # NACKs are logged by the recorder, which bounds how many a stream can cause.
            if self._on_ack is None:
                continue
            try:
                await _maybe_await(
                    self._on_ack(gateway_key, node_id, ack.type_url, ack.version, ack.error)
                )
            except Exception:
                # Recording is not worth a dropped stream: the next ACK is recorded again.
                logger.exception("xds: recording an ACK of %s failed", node_id)


async def _next(requests: AsyncIterator):
    return await anext(requests, None)


async def _refuse(context, reason: str):
    logger.warning("xds: refused a stream from %s: %s", context.peer(), reason)
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)


class XdsServer:
    """A grpc.aio server serving ADS on one address (a host and port, or ``unix:<path>`` as
    ``host``); start and stop on one event loop."""

    def __init__(
        self,
        service: AggregatedDiscoveryService,
        host: str = "127.0.0.1",
        port=0,
        handlers: tuple[grpc.GenericRpcHandler, ...] = (),
    ):
        self.service = service
        self.host = host
        self.port = port
        # Further gRPC services on the same port (the Kubernetes pods' enrollment).
        self.handlers = handlers
        self._server: aio.Server | None = None

    async def start(self) -> int:
        """Binds and serves; returns the port (useful with port 0; 0 for a Unix socket)."""
        server = aio.server(options=SERVER_OPTIONS)
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(self.service, server)
        if self.handlers:
            server.add_generic_rpc_handlers(self.handlers)
        if self.host.startswith("unix:"):
            server.add_insecure_port(self.host)
            self.port = 0
        else:
            self.port = server.add_insecure_port(f"{self.host}:{self.port}")
        await server.start()
        self._server = server
        logger.info("xds: serving ADS on %s:%s", self.host, self.port)
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Closes every stream (after ``grace`` seconds, if given); Envoys keep their config."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
