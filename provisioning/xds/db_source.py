"""The xDS server's ``SnapshotSource`` in production: each gateway's current config revision.

A gateway's snapshot is its current ``ConfigRevision`` (decrypted, decoded, encoded for xDS)
at version = the revision's content hash, so a rollback to an older revision is a new version
for the replicas and a restarted server sends the same version an Envoy already holds.

A gateway with EDS clusters (backends naming Kubernetes Services, docs/discovery.md) also gets
their ClusterLoadAssignments, built at every read from the discovery watcher's rows, the
tenant's grants and the egress policy: the snapshot is new when the revision or the endpoints
change, and an endpoint change alone re-sends only the assignments.

Watchers wake on a change notification (Redis pub/sub or PostgreSQL LISTEN/NOTIFY,
``provisioning.xds.notify``), and every ``poll_interval`` seconds one query reads the current
revision of every gateway watched here and wakes those whose revision is not the one held (and
those with EDS clusters, whose endpoints may have moved), so a lost message, a notifier outage
or the embedded default (no notifier) still converge — at the cost of one query per interval
per server, not one per stream (a watcher waits for a wake only). Streams of one gateway
share one read. Database errors are
logged and retried at the next poll: the server keeps its streams (and the Envoys their config)
through an outage.
"""

import asyncio
import contextlib
import json
import logging
import os

from django.conf import settings
from django.db.models import Case, F, JSONField, Value, When

from provisioning import revisions
from provisioning.compile import gc_paused
from provisioning.discovery.assignments import assignments, discovery_refs
from provisioning.models import ConfigRevision
from provisioning.translate import Resources
from provisioning.xds import notify
from provisioning.xds.db import DatabaseThreads
from provisioning.xds.snapshots import Snapshot

log = logging.getLogger(__name__)

POLL_WITHOUT_NOTIFIER = 1.0
POLL_WITH_NOTIFIER = 5.0
REDIS_RETRY = 1.0


def default_poll_interval(notified: bool) -> float:
    """``GANTRY_XDS_POLL_INTERVAL`` seconds, else 1 s (polling only) or 5 s (notified)."""
    value = os.environ.get("GANTRY_XDS_POLL_INTERVAL")
    if value:
        try:
            seconds = float(value)
        except ValueError:
            seconds = 0
        if seconds <= 0:
            raise ValueError(f"GANTRY_XDS_POLL_INTERVAL must be a positive number, not {value!r}")
        return seconds
    return POLL_WITH_NOTIFIER if notified else POLL_WITHOUT_NOTIFIER


def _head(gateway_key: str, known_hash: str | None) -> tuple | None:
    """(content hash, revision id, gateway id, manifest) of the gateway's current revision, in
    one query; the manifest only when the hash is not ``known_hash`` (a poll that finds nothing
    new reads no manifest), and ``None`` for a revision stored whole."""
    tenant, _, name = gateway_key.partition("/")
    manifest = F("manifest")
    if known_hash is not None:
        manifest = Case(When(content_hash=known_hash, then=Value(None)), default=manifest,
                        output_field=JSONField())  # fmt: skip
    return (
        ConfigRevision.objects.filter(
            gateway__tenant__slug=tenant, gateway__name=name, current=True
        )
        .values_list("content_hash", "pk", "gateway_id", manifest)
        .first()
    )


def _current_many(gateway_keys: list[str]) -> dict[str, str]:
    """Gateway key → its current revision's content hash, for every key, in one query."""
    wanted = {tuple(key.split("/", 1)) for key in gateway_keys if "/" in key}
    rows = ConfigRevision.objects.filter(
        current=True,
        gateway__tenant__slug__in={tenant for tenant, _ in wanted},
        gateway__name__in={name for _, name in wanted},
    ).values_list("gateway__tenant__slug", "gateway__name", "content_hash")
    return {f"{t}/{n}": content_hash for t, n, content_hash in rows if (t, n) in wanted}


def _parts(
    revision_id: int, gateway_id: int, manifest: dict | None, held: dict[str, dict]
) -> tuple[Resources, dict[str, dict]]:
    """The revision's resources, and its parts by digest (decoded): only the parts not in
    ``held`` (the parts of the revision this server last read for the gateway) are read and
    decrypted. A one-route change on a gateway of 10,000 routes reads one virtual host."""
    if manifest is None:  # stored whole, before revisions were stored in parts
        resources = ConfigRevision.objects.only("resources").get(pk=revision_id).resources
        return Resources.from_dict(json.loads(resources)), {}
    wanted = revisions.digests(manifest)
    # Decoding a big config makes hundreds of thousands of objects at once: no collector
    # passes over the snapshots held meanwhile (they took up to 0.6 s at 10,000 routes).
    with gc_paused():
        texts = revisions.part_texts(gateway_id, wanted - held.keys())
        values = {d: held[d] if d in held else json.loads(texts[d]) for d in wanted}
        return Resources.from_dict(revisions.joined(manifest, values)), values


def _read(
    gateway_key: str, known_hash: str | None, held: dict[str, dict] | None = None
) -> tuple[str, Resources | None, dict[str, dict]] | None:
    """The current revision's hash, and its resources and parts unless its hash is
    ``known_hash``: one query for a poll that finds nothing new (and none of the decrypting),
    two for a change. ``held``: the parts already decoded (``_parts``)."""
    current = _head(gateway_key, known_hash)
    if current is None:
        return None
    content_hash, revision_id, gateway_id, manifest = current
    if content_hash == known_hash:
        return content_hash, None, {}
    try:
        found = _parts(revision_id, gateway_id, manifest, held or {})
    except (revisions.Incomplete, ConfigRevision.DoesNotExist):
        found = None  # pruned meanwhile: the next read finds the new one
    if found is None:
        return content_hash, None, {}
    return content_hash, *found


def _read_built(
    gateway_key: str, cached: Snapshot | None, held: dict[str, dict]
) -> tuple[str, Snapshot | None, dict[str, dict], Resources | None] | None:
    """``_read``, and the snapshot built from what changed, in one trip to a database thread
    (off the event loop: encoding a big gateway's changes would hold up every stream)."""
    read = _read(gateway_key, cached and cached.version, held)
    if read is None:
        return None
    content_hash, resources, parts = read
    if resources is None:
        return content_hash, None, parts, None
    return content_hash, _build(content_hash, resources, cached), parts, resources


def _build(version: str, resources: Resources, previous: Snapshot | None) -> Snapshot:
    with gc_paused():
        return Snapshot.build(version, resources, previous=previous)


def _endpoints(gateway_key: str, refs: dict) -> tuple[tuple[dict, ...], str]:
    """The gateway's ClusterLoadAssignments now, and their version."""
    from dataclasses import replace

    from gateways.egress import current_policy
    from gateways.models import Gateway
    from provisioning.models import DiscoveredEndpoints, DiscoveryGrant

    tenant, _, name = gateway_key.partition("/")
    gateway = (
        Gateway.objects.filter(tenant__slug=tenant, name=name).values("tenant_id", "spec").first()
    )
    if gateway is None:
        return assignments(refs, {}, set(), None)
    policy = current_policy()
    if gateway["spec"].get("runtime", "local") == "kubernetes" and policy.allow_loopback:
        policy = replace(policy, allow_loopback=False)  # a pod's loopback is its own Envoy
    clusters = {ref[0] for ref in refs.values()}
    granted = set(
        DiscoveryGrant.objects.filter(
            tenant_id=gateway["tenant_id"],
            cluster__name__in=clusters,
            cluster__plans__tenants__id=gateway["tenant_id"],
        ).values_list("cluster__name", "namespace")
    )
    rows = {
        (cluster, namespace, service, port): endpoints
        for cluster, namespace, service, port, endpoints in DiscoveredEndpoints.objects.filter(
            cluster__name__in=clusters,
            namespace__in={ref[1] for ref in refs.values()},
            service__in={ref[2] for ref in refs.values()},
        ).values_list("cluster__name", "namespace", "service", "port", "endpoints")
    }
    return assignments(refs, rows, granted, policy)


class DatabaseSnapshotSource:
    """Reads current revisions; use it on one event loop, and ``await close()`` when done."""

    def __init__(
        self,
        *,
        poll_interval: float | None = None,
        redis_url: str | None = "settings",
        notifier: str | None = None,
        database: DatabaseThreads | None = None,
        local_port: int | None = None,
    ):
        """``notifier``: redis | postgres | none; by default what ``notify.notifier()`` says,
        or, when ``redis_url`` is given, redis (a URL) or none (``None``)."""
        if notifier is None:
            if redis_url == "settings":
                notifier = notify.notifier()
            else:
                notifier = "redis" if redis_url else "none"
        self.notifier = notifier
        self.local_port = local_port or settings.GANTRY_XDS_PORT
        self.redis_url = settings.REDIS_URL if redis_url == "settings" else redis_url
        if notifier != "redis":
            self.redis_url = None
        self.poll_interval = poll_interval or default_poll_interval(notifier != "none")
        self.database = database or DatabaseThreads()
        self._own_database = database is None
        self._snapshots: dict[str, Snapshot] = {}  # gateway key → last snapshot built
        # gateway key → the parts of its last snapshot's revision, decoded, by digest
        self._parts: dict[str, dict[str, dict]] = {}
        # gateway key → its revision's EDS clusters: assignment name → the Service they follow
        self._refs: dict[str, dict] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._loading: dict[str, asyncio.Future] = {}  # gateway key → the read in flight
        self._subscriber: asyncio.Task | None = None
        self._poller: asyncio.Task | None = None
        self.subscribed: asyncio.Event | None = None  # made on the loop, set once subscribed

    async def watch(self, gateway_key: str, known_version: str | None) -> Snapshot:
        self._start_subscriber()
        self._start_poller()
        while True:
            # Taken before reading, so a notification that lands during the read is not lost.
            event = self._events.setdefault(gateway_key, asyncio.Event())
            snapshot = await self._shared_load(gateway_key)
            if snapshot is not None and snapshot.key != known_version:
                return snapshot
            # A notification or the poller wakes it when its revision moves.
            await event.wait()

    async def _shared_load(self, gateway_key: str) -> Snapshot | None:
        """One read per gateway at a time: a stream that asks while another stream's read of
        the same gateway is in flight gets that read's answer."""
        loading = self._loading.get(gateway_key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(gateway_key))
            self._loading[gateway_key] = loading

            def forget(done, key=gateway_key):
                if self._loading.get(key) is done:
                    del self._loading[key]

            loading.add_done_callback(forget)
        return await asyncio.shield(loading)

    def _start_poller(self) -> None:
        """Started by the first watcher, and again by the next one should it ever have died
        (watchers rely on it: they wait for a wake only)."""
        if self._poller is not None and self._poller.done():
            if not self._poller.cancelled() and self._poller.exception() is not None:
                log.error("xds: the revision poller died: %r", self._poller.exception())
            self._poller = None
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        """Every ``poll_interval``: one query for the revisions of every gateway watched here;
        wakes the watchers of those whose revision is not the one held, and of those with
        EDS clusters (their endpoints are read per gateway)."""
        while True:
            await asyncio.sleep(self.poll_interval)
            keys = list(self._events)
            if not keys:
                continue
            try:
                current = await self.database.run(_current_many, keys)
                for key in keys:
                    held = self._snapshots.get(key)
                    if held is None or current.get(key) != held.version or self._refs.get(key):
                        self.wake(key)
            except Exception as error:
                log.warning("xds: cannot poll revisions (retrying): %s", error)

    def wake(self, gateway_key: str) -> None:
        """Every watcher of the gateway re-reads it now (on the source's loop). A read already
        in flight may have started before the change: watchers woken now start a new one."""
        self._loading.pop(gateway_key, None)
        event = self._events.pop(gateway_key, None)
        if event is not None:
            event.set()

    async def _load(self, gateway_key: str) -> Snapshot | None:
        try:
            cached = self._snapshots.get(gateway_key)
            held = self._parts.get(gateway_key, {})
            read = await self.database.run(_read_built, gateway_key, cached, held)
            if read is None:
                return None
            content_hash, snapshot, parts, resources = read
            if cached is not None and cached.version == content_hash:
                return await self._with_endpoints(gateway_key, cached)
            if snapshot is None:  # replaced meanwhile; the next read finds the new one
                return None
            self._refs[gateway_key] = discovery_refs(resources.clusters)
            self._snapshots[gateway_key] = snapshot
            self._parts[gateway_key] = parts
            return await self._with_endpoints(gateway_key, snapshot)
        except Exception as error:
            log.warning("xds: cannot read the config of %s (retrying): %s", gateway_key, error)
            return None

    async def _with_endpoints(self, gateway_key: str, snapshot: Snapshot) -> Snapshot:
        """The snapshot with its EDS clusters' current assignments (itself without any)."""
        refs = self._refs.get(gateway_key)
        if not refs:
            return snapshot
        made, version = await self.database.run(_endpoints, gateway_key, refs)
        if snapshot.endpoints_version == version:
            return snapshot
        snapshot = snapshot.with_assignments(made, version)
        self._snapshots[gateway_key] = snapshot
        return snapshot

    def _start_subscriber(self) -> None:
        if self.notifier == "none" or self._subscriber is not None:
            return
        self.subscribed = asyncio.Event()
        listen = {"redis": self._subscribe, "postgres": self._listen, "local": self._receive}
        self._subscriber = asyncio.get_running_loop().create_task(listen[self.notifier]())

    async def _receive(self) -> None:
        """``local``: datagrams naming a gateway, on UDP ``local_port`` of this host."""
        source = self

        class Datagrams(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                source.wake(data.decode(errors="replace"))

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            Datagrams, local_addr=(settings.GANTRY_XDS_ADDRESS, self.local_port)
        )
        self.subscribed.set()
        log.info("xds: change notifications on UDP %s", self.local_port)
        try:
            await asyncio.Event().wait()
        finally:
            transport.close()

    async def _listen(self) -> None:
        """PostgreSQL ``LISTEN``, on a connection of its own (autocommit)."""
        import psycopg
        from django.db import connections

        params = connections["default"].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
            except Exception as error:
                log.warning("xds: cannot LISTEN (polling meanwhile): %s", error)
                await asyncio.sleep(REDIS_RETRY)
                continue
            try:
                async with conn:
                    await conn.execute(f"LISTEN {notify.PG_CHANNEL}")
                    self.subscribed.set()
                    log.info("xds: listening on PostgreSQL channel %s", notify.PG_CHANNEL)
                    for gateway_key in list(self._events):  # missed while not listening
                        self.wake(gateway_key)
                    async for message in conn.notifies():
                        self.wake(message.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.subscribed.clear()
                log.warning("xds: LISTEN connection lost (polling meanwhile): %s", error)
                await asyncio.sleep(REDIS_RETRY)

    async def start(self) -> None:
        """Subscribes now rather than at the first watch (optional)."""
        self._start_subscriber()

    async def _subscribe(self) -> None:
        import redis.asyncio as redis

        prefix = notify.channel_prefix()
        while True:
            client = redis.Redis.from_url(self.redis_url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.psubscribe(prefix + "*")
                    self.subscribed.set()
                    log.info("xds: subscribed to %s*", prefix)
                    # A change may have been missed while not subscribed.
                    for gateway_key in list(self._events):
                        self.wake(gateway_key)
                    async for message in pubsub.listen():
                        if message.get("type") != "pmessage":
                            continue
                        name = message["channel"]
                        if isinstance(name, bytes):
                            name = name.decode()
                        self.wake(name[len(prefix) :])
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.subscribed.clear()
                log.warning("xds: Redis subscription lost (polling meanwhile): %s", error)
                await asyncio.sleep(REDIS_RETRY)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller
            self._poller = None
        if self._subscriber is not None:
            self._subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._subscriber
            self._subscriber = None
        if self._own_database:
            await asyncio.get_running_loop().run_in_executor(None, self.database.close)
