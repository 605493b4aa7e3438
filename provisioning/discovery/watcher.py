"""The discovery watcher (``manage.py discovery_watcher``): follows the EndpointSlices of every
Kubernetes Service a backend names, and writes their endpoints as rows the xDS server serves.

Every ``refresh`` seconds it reads which Services are wanted (``endpoints.wanted``: named by a
backend, in a namespace granted to that backend's tenant, in a cluster its plan may use), starts
a ``ServiceWatch`` thread for each new one, stops those no longer wanted and deletes their rows.

A ``ServiceWatch`` (one per cluster, namespace and Service), with the official client:
1. reads the Service (its ports: a backend names the Service port, slices name it) and LISTs
   ``discovery.k8s.io/v1`` EndpointSlices labelled ``kubernetes.io/service-name=<service>`` in
   the namespace, noting the list's ``resourceVersion``; writes the rows of the wanted ports;
2. WATCHes from that version (``timeoutSeconds`` = ``watch_seconds``), applying each ADDED,
   MODIFIED and DELETED slice and writing the rows that changed; when the watch ends it reads
   the Service again and watches on from the last version seen;
3. a 410 Gone (the version was compacted away) goes back to 1 at once; any other error (the API
   server unreachable, 5xx, 403, the database) is logged and retried after a backoff (0.5 s
   doubling to 30 s, with jitter) from 1. Rows are only written from a successful list or
   event, so while the API server is unreachable the last known endpoints stay served.

Rows are written only when their content changes (``endpoints.store``), which notifies the
gateways that may use them; no route is compiled and no revision is made.
"""

import json
import logging
import random
import threading
import time
from pathlib import Path

from django.db import close_old_connections, connection
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from provisioning.discovery import endpoints
from provisioning.models import DiscoveredEndpoints, KubernetesCluster

log = logging.getLogger(__name__)

GONE = 410


def default_client(cluster: KubernetesCluster) -> k8s.ApiClient:
    from provisioning.runtimes.kubernetes.driver import configuration_for

    return k8s.ApiClient(configuration_for(cluster))


class ServiceWatch(threading.Thread):
    """LIST then WATCH the EndpointSlices of one Service; see the module docstring."""

    def __init__(self, cluster: KubernetesCluster, namespace: str, service: str, ports: set[int],
                 client_factory=default_client, watch_seconds: int = 60,
                 request_timeout: float = 10.0):  # fmt: skip
        super().__init__(daemon=True, name=f"discovery {cluster.name}/{namespace}/{service}")
        self.cluster, self.namespace, self.service = cluster, namespace, service
        self.ports = set(ports)
        self.client_factory = client_factory
        self.watch_seconds = watch_seconds
        self.request_timeout = request_timeout
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.slices: dict[str, dict] = {}
        self.service_obj: dict | None = None
        self.synced = False  # a list succeeded since the last error
        self.lists = 0  # LISTs made (re-lists after 410s and errors included)
        self.errors = 0
        self._watch: k8s_watch.Watch | None = None

    def set_ports(self, ports: set[int]) -> None:
        with self.lock:
            added = set(ports) - self.ports
            self.ports = set(ports)
        if added and self.synced:
            self._write(added)

    def stop(self) -> None:
        self.stopping.set()
        if self._watch is not None:
            self._watch.stop()

    def run(self) -> None:
        backoff = 0.5
        api = None
        while not self.stopping.is_set():
            try:
                if api is None:
                    api = self.client_factory(self.cluster)
                version = self._list(api)
                backoff = 0.5
                self._follow(api, version)
            except ApiException as error:
                if error.status == GONE:
                    log.info("discovery: %s: watch expired (410), listing again", self.name)
                    continue
                self._failed(f"{error.status} {error.reason}")
            except Exception as error:  # noqa: BLE001 - unreachable API server, database, …
                self._failed(f"{type(error).__name__}: {error}")
                api = None  # a new client: the old one's connections may be broken
            else:
                continue
            self.stopping.wait(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, 30.0)
        connection.close()  # this thread's

    def _failed(self, why: str) -> None:
        self.errors += 1
        self.synced = False
        log.warning("discovery: %s: %s (keeping the last known endpoints; retrying)", self.name,
                    why)  # fmt: skip

    def _read_service(self, api: k8s.ApiClient) -> dict | None:
        try:
            answer = k8s.CoreV1Api(api).read_namespaced_service(
                self.service, self.namespace, _preload_content=False,
                _request_timeout=self.request_timeout,
            )  # fmt: skip
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return json.loads(answer.data)

    def _list(self, api: k8s.ApiClient) -> str:
        service = self._read_service(api)
        answer = k8s.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"{endpoints.SERVICE_LABEL}={self.service}",
            _preload_content=False, _request_timeout=self.request_timeout,
        )  # fmt: skip
        body = json.loads(answer.data)
        self.lists += 1
        with self.lock:
            self.service_obj = service
            self.slices = {item["metadata"]["name"]: item for item in body.get("items") or []}
        self._write()
        self.synced = True
        return body["metadata"]["resourceVersion"]

    def _follow(self, api: k8s.ApiClient, version: str) -> None:
        """Watches until stopped; returns only when stopping (raises on errors and 410)."""
        discovery = k8s.DiscoveryV1Api(api)
        while not self.stopping.is_set():
            self._watch = k8s_watch.Watch()
            for event in self._watch.stream(
                discovery.list_namespaced_endpoint_slice, self.namespace,
                label_selector=f"{endpoints.SERVICE_LABEL}={self.service}",
                resource_version=version, timeout_seconds=self.watch_seconds,
                _request_timeout=(self.request_timeout, self.watch_seconds + 10),
            ):  # fmt: skip
                raw = event["raw_object"]
                version = raw["metadata"].get("resourceVersion") or version
                name = raw["metadata"]["name"]
                with self.lock:
                    if event["type"] == "DELETED":
                        self.slices.pop(name, None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self.slices[name] = raw
                    else:  # BOOKMARK
                        continue
                self._write()
            if self.stopping.is_set():
                return
            service = self._read_service(api)  # its ports may have changed meanwhile
            with self.lock:
                changed = service != self.service_obj
                self.service_obj = service
            if changed:
                self._write()

    def _write(self, ports: set[int] | None = None) -> None:
        with self.lock:
            slices, service = list(self.slices.values()), self.service_obj
            wanted = sorted(ports if ports is not None else self.ports)
        close_old_connections()
        for port in wanted:
            found, message = endpoints.endpoints_of(slices, service, port)
            if endpoints.store(self.cluster, self.namespace, self.service, port, found, message):
                log.info("discovery: %s port %s: %d endpoints", self.name, port, len(found))


class DiscoveryWatcher:
    """The watches of every wanted Service; ``refresh_once`` brings them in line."""

    def __init__(self, client_factory=default_client, refresh: float = 5.0,
                 watch_seconds: int = 60, heartbeat: str | None = None):  # fmt: skip
        self.client_factory = client_factory
        self.heartbeat = heartbeat  # a file touched at every pass (a liveness probe reads it)
        self.refresh = refresh
        self.watch_seconds = watch_seconds
        self.watches: dict[tuple[int, str, str], ServiceWatch] = {}
        self.stopping = threading.Event()

    def refresh_once(self) -> None:
        close_old_connections()
        wanted = endpoints.wanted()
        clusters = {c.pk: c for c in KubernetesCluster.objects.filter(
            pk__in={key[0] for key in wanted})}  # fmt: skip
        for key in list(self.watches):
            if key not in wanted or key[0] not in clusters:
                self.watches.pop(key).stop()
        for key, ports in wanted.items():
            current = self.watches.get(key)
            if current is not None and current.is_alive():
                current.set_ports(ports)
                continue
            if key[0] not in clusters:
                continue
            thread = ServiceWatch(clusters[key[0]], key[1], key[2], ports,
                                  self.client_factory, self.watch_seconds)  # fmt: skip
            self.watches[key] = thread
            thread.start()
        self._forget_unwanted(wanted)

    @staticmethod
    def _forget_unwanted(wanted: dict) -> None:
        """Rows of Services (or ports) no backend may use any more are deleted."""
        for row in DiscoveredEndpoints.objects.only("cluster_id", "namespace", "service", "port"):
            if row.port not in wanted.get((row.cluster_id, row.namespace, row.service), ()):
                row.delete()

    def run(self) -> None:
        log.info("discovery: watching (refresh every %ss)", self.refresh)
        while not self.stopping.is_set():
            try:
                self.refresh_once()
            except Exception as error:  # noqa: BLE001 - the database away: keep watching
                log.warning("discovery: cannot read what to watch (retrying): %s", error)
                close_old_connections()
            if self.heartbeat:
                Path(self.heartbeat).touch()
            self.stopping.wait(self.refresh)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for watch in self.watches.values():
            watch.stop()
        deadline = time.monotonic() + timeout
        for watch in self.watches.values():
            watch.join(max(0.0, deadline - time.monotonic()))
