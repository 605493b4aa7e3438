"""The local runtime agent (``manage.py runtime_agent``): keeps, for every gateway whose
``spec.runtime`` is ``local``, ``spec.replicas`` Envoy processes running on this host.

Every tick (``GANTRY_AGENT_INTERVAL``, 0.25 s) it reads which gateways want how many replicas,
then:

- starts the replicas that are missing: each gets a bootstrap naming the xDS server
  (``GANTRY_XDS_ADDRESS``:``GANTRY_XDS_PORT``), its node id ``<tenant>/<gateway>/<index>``,
  an xDS token of its own (issued at every start, valid only under that node id, revoked when
  the replica stops) and its admin on a Unix socket in the gateway's runtime directory;
- restarts a replica that exited, after a backoff of 1, 2, 4 … 30 s (reset once a replica
  has run for 30 s), and marks its xDS connection closed at once so the gateway shows
  ``Degraded`` even before the xDS server notices;
- drains and stops replicas beyond ``spec.replicas`` (scale-down: ``/drain_listeners``, then
  SIGTERM after ``GANTRY_LOCAL_DRAIN_SECONDS``) and stops at once those of deleted gateways;
- records each replica (``LocalReplica``: state, pid, restarts, last exit code, log file);
- reads each replica's access log (``work-<i>/access.log``) into the database every
  ``GANTRY_ACCESS_LOG_SECONDS``, and once more when the process stops
  (``provisioning.access_logs``);
- meters each run (``provisioning.metering``): opens a ``ReplicaIncarnation`` at the start,
  reads Envoy's counters over the admin socket every ``GANTRY_METERING_SECONDS`` and once more
  before a graceful stop (after the drain), and closes the incarnation when the process stops.

Replicas outlive the agent when it is killed or crashes: an agent starting adopts the replicas
a previous one left running (``processes.adoptable``: same pid and start time, an Envoy on that
replica's bootstrap), with no restart. A graceful stop (SIGTERM, SIGINT) stops them all. One
agent runs per runtime directory (``agent.lock``): a second one waits until the first is gone.

Listener ports are not the agent's business: reconcile allocates them and they reach Envoy over
xDS. A database outage pauses the bookkeeping only; running Envoys are left alone.
"""

import contextlib
import fcntl
import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from gateways.models import Gateway
from gateways.sizes import SIZES
from provisioning import access_logs, metering, readiness
from provisioning.envoy import envoy_binary
from provisioning.models import (
    LocalReplica,
    PodCredential,
    ReplicaConnection,
    ReplicaIncarnation,
)
from provisioning.runtimes.local.processes import Adopted, Replica, adoptable
from provisioning.xds.bootstrap import envoy_bootstrap
from provisioning.xds.credentials import issue_replica_token, revoke_replica_token

log = logging.getLogger(__name__)

BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 30.0  # a replica that ran this long starts its backoff afresh


@dataclass(frozen=True)
class Wanted:
    gateway_id: int
    key: str  # <tenant>/<gateway>
    replicas: int
    concurrency: int
    size: str = "small"


def wanted_gateways() -> dict[int, Wanted]:
    rows = Gateway.objects.filter(spec__runtime="local").values_list(
        "pk", "tenant__slug", "name", "spec"
    )
    result = {}
    for pk, tenant, name, spec in rows:
        name_of_size = spec.get("size", "small") if spec.get("size") in SIZES else "small"
        size = SIZES[name_of_size]
        result[pk] = Wanted(
            pk, f"{tenant}/{name}", int(spec.get("replicas", 1)), size.concurrency, name_of_size
        )
    return result


def backoff(failures: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, failures - 1))


class Agent:
    def __init__(
        self,
        runtime_dir: Path | None = None,
        xds_address: str | None = None,
        xds_port: int | None = None,
        drain_seconds: float | None = None,
        envoy: str | None = None,
    ):
        self.runtime_dir = Path(runtime_dir or settings.GANTRY_RUNTIME_DIR)
        self.xds_address = xds_address or settings.GANTRY_XDS_ADDRESS
        self.xds_port = xds_port or settings.GANTRY_XDS_PORT
        self.drain_seconds = (
            settings.GANTRY_LOCAL_DRAIN_SECONDS if drain_seconds is None else drain_seconds
        )
        self.envoy = envoy or envoy_binary()
        self.log_max_bytes = settings.GANTRY_LOCAL_LOG_MAX_BYTES
        self.metering_seconds = settings.GANTRY_METERING_SECONDS
        self.access_log_seconds = settings.GANTRY_ACCESS_LOG_SECONDS
        self.tails: dict[tuple[int, int], access_logs.Tail] = {}
        self._owners: dict[int, tuple[int, str]] = {}
        self.replicas: dict[tuple[int, int], Replica] = {}
        self._wanted: dict[int, Wanted] = {}
        self._gateway_tokens_revoked: set[int] = set()

    # -- one pass ---------------------------------------------------------------------------
    def tick(self) -> None:
        try:
            close_old_connections()
            self._wanted = wanted_gateways()
        except DatabaseError as error:
            log.warning("runtime agent: cannot read the gateways (keeping replicas): %s", error)
            self._database_failed()
            self._restart_exited()  # supervision goes on without the database
            return
        try:
            self._converge()
        except DatabaseError as error:
            log.warning("runtime agent: database error (retrying next tick): %s", error)
            self._database_failed()

    def _database_failed(self) -> None:
        from django.db import connection

        connection.close_if_unusable_or_obsolete()

    def _converge(self) -> None:
        now = time.monotonic()
        for slot, replica in list(self.replicas.items()):
            wanted = self._wanted.get(slot[0])
            if wanted is None:
                self._remove(replica, gone=True)
            elif slot[1] >= wanted.replicas:
                self._scale_down(replica, now)
        for wanted in self._wanted.values():
            for index in range(wanted.replicas):
                replica = self.replicas.get((wanted.gateway_id, index))
                if replica is None:
                    replica = Replica(
                        wanted.gateway_id, wanted.key, index, self._directory(wanted),
                        log_max_bytes=self.log_max_bytes,
                    )  # fmt: skip
                    self.replicas[(wanted.gateway_id, index)] = replica
                self._supervise(replica, wanted, now)

    def _restart_exited(self) -> None:
        now = time.monotonic()
        for (gateway_id, _), replica in self.replicas.items():
            wanted = self._wanted.get(gateway_id)
            if wanted is not None and replica.draining_until is None:
                with contextlib.suppress(DatabaseError):
                    self._supervise(replica, wanted, now)

    # -- one replica -------------------------------------------------------------------------
    def _supervise(self, replica: Replica, wanted: Wanted, now: float) -> None:
        if replica.draining_until is not None:
            return
        if replica.process is not None and not replica.alive():
            self._exited(replica, now)
        if replica.process is None:
            if now >= replica.restart_at:
                self._start(replica, wanted)
            return
        if not replica.admin_ready and replica.check_admin():
            adopted = isinstance(replica.process, Adopted)
            self._report(
                replica,
                LocalReplica.State.RUNNING,
                "adopted after an agent restart" if adopted else "",
            )
            self._metering(metering.mark_ready, replica.incarnation)
        if replica.admin_ready and now - replica.metered_at >= self.metering_seconds:
            self._meter(replica)
        if now - replica.access_read_at >= self.access_log_seconds:
            self._collect(replica)
        if replica.failures and now - replica.started_at >= HEALTHY_AFTER:
            replica.failures = 0
        replica.rotate_log()

    def _start(self, replica: Replica, wanted: Wanted) -> None:
        token = self._issue_token(replica)
        bootstrap = envoy_bootstrap(
            gateway_key=wanted.key,
            replica=replica.index,
            token=token,
            xds_address=self.xds_address,
            xds_port=self.xds_port,
            admin_socket=str(replica.admin_socket),
        )
        self._tail(replica).reset()  # what the last run wrote was read when it stopped
        replica.start(self.envoy, bootstrap, wanted.concurrency, self.drain_seconds)
        log.info("runtime agent: started %s (pid %s)", replica.node_id, replica.process.pid)
        self._metering(
            metering.open_incarnation, replica.incarnation, replica.gateway_id, replica.node_id,
            wanted.size, replica.process.pid, str(self.runtime_dir),
        )  # fmt: skip
        self._report(replica, LocalReplica.State.STARTING, "")

    def _exited(self, replica: Replica, now: float) -> None:
        adopted = isinstance(replica.process, Adopted)
        incarnation = replica.incarnation
        code = replica.stop()  # it has gone: this only clears its pid file and socket
        self._collect(replica, incarnation)
        replica.failures += 1
        replica.restarts += 1
        delay = backoff(replica.failures)
        replica.restart_at = now + delay
        how = (
            "exited (exit code unknown: adopted process)" if adopted else f"exited with code {code}"
        )
        message = f"{how}; restarting in {delay:g} s"
        log.warning("runtime agent: %s %s", replica.node_id, message)
        self._metering(metering.close_incarnation, incarnation, ReplicaIncarnation.Stop.EXITED)
        revoke_replica_token(replica.gateway_id, replica.index)
        ReplicaConnection.objects.filter(
            gateway_id=replica.gateway_id, node_id=replica.node_id
        ).update(connected=False, changed_at=timezone.now())
        self._report(replica, LocalReplica.State.BACKOFF, message, exit_code=code, exited=True)
        readiness.refresh(replica.gateway_id)

    def _scale_down(self, replica: Replica, now: float) -> None:
        if replica.draining_until is None and replica.alive():
            replica.drain(self.drain_seconds)
            self._report(replica, LocalReplica.State.DRAINING, "scaled down: draining")
            return
        if replica.draining_until is not None and now < replica.draining_until:
            return
        self._remove(replica, gone=False)

    def _remove(self, replica: Replica, gone: bool) -> None:
        self._meter(replica, final=True)
        code = replica.stop()
        self._collect(replica)
        self.tails.pop((replica.gateway_id, replica.index), None)
        stop = ReplicaIncarnation.Stop.DELETED if gone else ReplicaIncarnation.Stop.SCALED_DOWN
        self._metering(metering.close_incarnation, replica.incarnation, stop)
        del self.replicas[(replica.gateway_id, replica.index)]
        log.info("runtime agent: stopped %s (exit code %s)", replica.node_id, code)
        revoke_replica_token(replica.gateway_id, replica.index)
        if gone:  # the gateway was deleted (its rows went with it) or left the local runtime
            if not any(slot[0] == replica.gateway_id for slot in self.replicas):
                shutil.rmtree(replica.directory, ignore_errors=True)
                self._gateway_tokens_revoked.discard(replica.gateway_id)
            return
        LocalReplica.objects.filter(gateway_id=replica.gateway_id, index=replica.index).delete()
        ReplicaConnection.objects.filter(
            gateway_id=replica.gateway_id, node_id=replica.node_id
        ).update(connected=False, changed_at=timezone.now())
        readiness.refresh(replica.gateway_id)

    def _report(
        self, replica: Replica, state: str, message: str, exit_code=None, exited=False
    ) -> None:
        fields = {
            "state": state,
            "pid": replica.process.pid if replica.process else None,
            "restarts": replica.restarts,
            "message": message,
            "log_path": str(replica.log_path),
            "admin_socket": str(replica.admin_socket) if replica.admin_ready else "",
        }
        if exited:  # None: unknown (an adopted process is not our child)
            fields["last_exit_code"] = exit_code
        if state == LocalReplica.State.STARTING:
            fields["started_at"] = timezone.now()
        if fields == replica.reported:
            return
        if Gateway.objects.filter(pk=replica.gateway_id).exists():
            LocalReplica.objects.update_or_create(
                gateway_id=replica.gateway_id, index=replica.index, defaults=fields
            )
        replica.reported = fields

    # -- metering --------------------------------------------------------------------------
    def _meter(self, replica: Replica, final: bool = False) -> None:
        """Reads the replica's counters into a usage sample (nothing when its admin does not
        answer: the next read carries what this one would have)."""
        replica.metered_at = time.monotonic()
        if replica.incarnation is None or not replica.admin_ready or not replica.alive():
            return
        try:
            if final:  # a read merges the workers' histograms for the next one: merge first
                replica.admin("GET", metering.STATS_URL, timeout=2.0)
                time.sleep(metering.MERGE_SECONDS)
            status, body = replica.admin("GET", metering.STATS_URL, timeout=2.0)
            if status != 200:
                return
            by_port = metering.parse_stats(body, metering.stat_prefix(replica.gateway_key))
        except (OSError, ValueError) as error:
            log.info("metering: cannot read %s's counters: %s", replica.node_id, error)
            return
        if self._metering(
            metering.record_sample, replica.incarnation, replica.seq, timezone.now(), by_port,
            final,
        ) is not False:  # fmt: skip
            replica.seq += 1

    def _metering(self, function, *args):
        """Metering never stops supervision: a database error is logged (False returned) and
        the next read or the lifecycle reconciliation makes up for it."""
        if args and args[0] is None:
            return None
        try:
            return function(*args)
        except DatabaseError as error:
            log.warning("metering: %s failed (retried later): %s", function.__name__, error)
            return False

    # -- access logs ------------------------------------------------------------------------
    def _tail(self, replica: Replica) -> access_logs.Tail:
        slot = (replica.gateway_id, replica.index)
        tail = self.tails.get(slot)
        if tail is None or tail.path != replica.access_log_path:
            tail = self.tails[slot] = access_logs.Tail(replica.access_log_path)
        return tail

    def _collect(self, replica: Replica, incarnation: uuid.UUID | None = None) -> None:
        """Stores the access log lines written since the last read (its run's: ``incarnation``,
        else the replica's current one). A database error keeps the position: the next read
        stores them."""
        replica.access_read_at = time.monotonic()
        incarnation = incarnation or replica.incarnation
        if incarnation is None:
            return
        tail = self._tail(replica)
        try:
            lines, position = tail.read()
            if not lines and position == tail.position:
                return
            owner = self._owners.get(replica.gateway_id)
            if owner is None:
                owner = Gateway.objects.filter(pk=replica.gateway_id).values_list(
                    "tenant_id", "name"
                ).first()  # fmt: skip
                if owner is None:
                    return  # the gateway was deleted: nobody can read its entries
                self._owners[replica.gateway_id] = owner
            access_logs.store(owner[0], owner[1], replica.index, incarnation, lines)
        except DatabaseError as error:
            log.warning("access logs: cannot store %s's (retried): %s", replica.node_id, error)
            return
        except OSError as error:
            log.warning("access logs: cannot read %s's: %s", replica.node_id, error)
            return
        tail.position = position
        try:
            tail.save()
        except OSError as error:
            log.info("access logs: cannot save %s's position: %s", replica.node_id, error)

    # -- files and tokens ------------------------------------------------------------------
    def _directory(self, wanted: Wanted) -> Path:
        tenant, _, name = wanted.key.partition("/")
        return self.runtime_dir / tenant / f"{name}-{wanted.gateway_id}"

    def _issue_token(self, replica: Replica) -> str:
        """A fresh token for this start of the replica, valid only under its node id. A local
        gateway has no pods: tokens left from the Kubernetes runtime are revoked."""
        if replica.gateway_id not in self._gateway_tokens_revoked:
            PodCredential.objects.filter(gateway_id=replica.gateway_id).delete()
            (replica.directory / "xds-token").unlink(missing_ok=True)  # older agents kept it
            self._gateway_tokens_revoked.add(replica.gateway_id)
        return issue_replica_token(Gateway.objects.get(pk=replica.gateway_id), replica.index)

    def adopt(self) -> None:
        """Takes over the replicas a previous agent left running (it was killed or crashed)."""
        for replica in adoptable(self.runtime_dir):
            replica.log_max_bytes = self.log_max_bytes
            self.replicas[(replica.gateway_id, replica.index)] = replica
            self._tail(replica).load()  # where the last agent stopped reading
            log.info("runtime agent: adopted %s (pid %s)", replica.node_id, replica.process.pid)
        with contextlib.suppress(DatabaseError):
            for replica in self.replicas.values():
                restarts = LocalReplica.objects.filter(
                    gateway_id=replica.gateway_id, index=replica.index
                ).values_list("restarts", flat=True)
                replica.restarts = next(iter(restarts), 0)
                self._adopt_incarnation(replica)
        self._metering(
            metering.close_lost, str(self.runtime_dir),
            {r.incarnation for r in self.replicas.values() if r.incarnation},
        )  # fmt: skip

    def _adopt_incarnation(self, replica: Replica) -> None:
        """An adopted replica goes on with its run (its counters did not restart); one from
        an agent that kept no incarnation gets a new one, from now."""
        if (
            replica.incarnation is None
            or not ReplicaIncarnation.objects.filter(
                id=replica.incarnation, stopped_at__isnull=True
            ).exists()
        ):
            replica.incarnation = uuid.uuid4()
            wanted = wanted_gateways().get(replica.gateway_id)
            metering.open_incarnation(
                replica.incarnation, replica.gateway_id, replica.node_id,
                wanted.size if wanted else "small", replica.process.pid, str(self.runtime_dir),
            )  # fmt: skip
            replica._write_pid()
        replica.seq = metering.next_seq(replica.incarnation)

    # -- the process -------------------------------------------------------------------------
    def stop_all(self) -> None:
        for replica in list(self.replicas.values()):
            self._meter(replica, final=True)
            replica.stop()
            self._collect(replica)
            self._metering(
                metering.close_incarnation, replica.incarnation,
                ReplicaIncarnation.Stop.AGENT_STOPPED,
            )  # fmt: skip
        try:
            for replica in self.replicas.values():
                revoke_replica_token(replica.gateway_id, replica.index)
                ReplicaConnection.objects.filter(
                    gateway_id=replica.gateway_id, node_id=replica.node_id
                ).update(connected=False, changed_at=timezone.now())
                LocalReplica.objects.filter(
                    gateway_id=replica.gateway_id, index=replica.index
                ).update(state=LocalReplica.State.STOPPED, pid=None, message="agent stopped")
            for gateway_id in {slot[0] for slot in self.replicas}:
                readiness.refresh(gateway_id)
        except DatabaseError as error:
            log.warning("runtime agent: could not record the stop: %s", error)
        self.replicas.clear()

    def _lock(self, should_stop) -> IO | None:
        """Waits to be the only agent on this runtime directory (an exclusive ``flock``, which
        the kernel releases when the holder dies, even on SIGKILL): two agents would both start
        and adopt the same replicas. None if told to stop first. Envoys never inherit it."""
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(self.runtime_dir / "agent.lock", "a")  # noqa: SIM115 (held while running)
        waiting = False
        while not should_stop():
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return handle
            except BlockingIOError:
                if not waiting:
                    log.warning(
                        "runtime agent: another agent runs on %s; waiting", self.runtime_dir
                    )
                    waiting = True
                time.sleep(0.2)
        handle.close()
        return None

    def run(self, should_stop, interval: float | None = None) -> None:
        interval = settings.GANTRY_AGENT_INTERVAL if interval is None else interval
        lock = self._lock(should_stop)
        if lock is None:
            return  # stopped while another agent ran: its replicas are not ours to stop
        log.info(
            "runtime agent: supervising local gateways (xDS at %s:%s, files in %s)",
            self.xds_address, self.xds_port, self.runtime_dir,
        )  # fmt: skip
        self.adopt()
        try:
            while not should_stop():
                started = time.monotonic()
                self.tick()
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
        finally:
            self.stop_all()
            lock.close()
