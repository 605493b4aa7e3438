"""A TEST DOUBLE of the Kubernetes API server, owned by this project (not Kubernetes code).

A small real HTTP server on 127.0.0.1 that the official ``kubernetes`` client talks to, with
just the behaviour Gantry's applier relies on:

- the kinds Gantry renders (plus Nodes), cluster-scoped and namespaced, stored in memory with
  ``uid``, ``resourceVersion`` (moves only when an object changes), ``generation`` (moves when
  anything outside ``metadata``/``status`` changes) and ``creationTimestamp``;
- lists with label selectors (``k=v``, ``k!=v``, ``k``, ``!k``), gets, ``/version``, ``/api``
  and ``/apis`` discovery;
- server-side apply (``PATCH`` with ``application/apply-patch+yaml``, ``fieldManager``
  required): creates, or merges the body and drops the fields the manager applied before and
  no longer applies unless another manager owns them (``fieldsets.py``; ``managedFields`` are
  reported); a no-op apply changes nothing; the stored result is validated strictly against
  the real schemas and port ranges (422 when invalid); a namespaced object needs its
  namespace (404); ``scale()`` plays an HPA updating ``spec.replicas``;
- ``DELETE``, where a namespace takes every object in it (cascade);
- Services get a cluster IP, node ports, and a load-balancer address (TEST-NET-3, never
  contacted); Deployments default to one replica and report all replicas available
  ``ready_delay`` seconds after their last change;
- Pods as a test places them (``add_pod``, as the Deployment controller would; ``terminate_pod``
  marks one terminating) and TokenReviews (``POST .../tokenreviews``) of tokens a test mints
  for a pod with ``mint_token`` (audiences, expiry, the pod's service account). A review
  answers as a real API server does for a pod-bound service account token: not authenticated
  for an unknown or expired token, for audiences it was not minted for, or when its pod is gone
  or has another uid; otherwise the username ``system:serviceaccount:<ns>:<sa>`` and the
  ``pod-name``/``pod-uid`` extras;
- pod logs (``GET .../pods/{name}/log`` with ``container``, ``timestamps``, ``sinceTime``,
  ``previous`` and ``limitBytes``), answered as the kubelet's log endpoint does: text, each
  line after its RFC 3339 timestamp with nine fraction digits when ``timestamps``, lines at or
  after ``sinceTime``, 400 for a container the pod does not have or a ``previous`` instance it
  never had. The lines come from the test (``write_log``, stamped when written: a real Envoy's
  stdout and stderr as a pod's are merged); ``restart_container`` plays a container restart
  (the log becomes the previous instance's, ``restartCount`` goes up);
- EndpointSlices as a test places them (``upsert``, ``remove``; validated strictly), as the
  EndpointSlice controller would, and **watches** of any list (``?watch=true``): a chunked
  stream of JSON lines (``ADDED``/``MODIFIED``/``DELETED`` with the object at its new
  ``resourceVersion``, the label selector applied) from the ``resourceVersion`` asked for (or
  every current object as ``ADDED`` first, without one), ending after ``timeoutSeconds``;
  ``compact()`` forgets the history, after which a watch from an older version gets an
  ``ERROR`` event with a 410 ``Expired`` Status, as etcd compaction makes a real API server
  answer;
- ``Status`` bodies for 404, 409, 422, 403 and 500;
- fault injection: ``fail(method, path_part, status, times)`` answers with an error, and
  ``stall(method, path_part, seconds, times, after=True)`` holds the answer (after doing the
  work when ``after``), so a client timeout and its retry can be shown to converge.

Every request is recorded in ``requests`` (method, path) for counting.
"""

import copy
import json
import re
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.kubernetes import fieldsets, schemas

RESOURCES = {  # (api prefix, resource) → (kind, apiVersion, namespaced)
    ("/api/v1", "namespaces"): ("Namespace", "v1", False),
    ("/api/v1", "nodes"): ("Node", "v1", False),
    ("/api/v1", "resourcequotas"): ("ResourceQuota", "v1", True),
    ("/api/v1", "limitranges"): ("LimitRange", "v1", True),
    ("/api/v1", "serviceaccounts"): ("ServiceAccount", "v1", True),
    ("/api/v1", "secrets"): ("Secret", "v1", True),
    ("/api/v1", "pods"): ("Pod", "v1", True),
    ("/api/v1", "services"): ("Service", "v1", True),
    ("/apis/apps/v1", "deployments"): ("Deployment", "apps/v1", True),
    ("/apis/networking.k8s.io/v1", "networkpolicies"): (
        "NetworkPolicy",
        "networking.k8s.io/v1",
        True,
    ),
    ("/apis/autoscaling/v2", "horizontalpodautoscalers"): (
        "HorizontalPodAutoscaler",
        "autoscaling/v2",
        True,
    ),
    ("/apis/policy/v1", "poddisruptionbudgets"): ("PodDisruptionBudget", "policy/v1", True),
    ("/apis/discovery.k8s.io/v1", "endpointslices"): ("EndpointSlice", "discovery.k8s.io/v1", True),
}
PATH = re.compile(
    r"^(?P<prefix>/api/v1|/apis/[^/]+/[^/]+)(?:/namespaces/(?P<ns>[^/]+)(?=/))?"
    r"/(?P<resource>[a-z]+)(?:/(?P<name>[^/]+))?$"
)
LOG_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/log$")
LOAD_BALANCER_IP = "203.0.113.10"
NODE_ADDRESS = "192.0.2.21"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
REASONS = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 410: "Expired", 422: "Invalid",
           500: "InternalError"}  # fmt: skip


@dataclass
class Event:
    version: int
    type: str  # ADDED | MODIFIED | DELETED
    key: tuple  # (kind, namespace, name)
    obj: dict  # as it was then (deleted: as it was last)


@dataclass
class Watch:
    """A watch request: what to stream to the handler that holds the connection."""

    kind: str
    api_version: str
    namespace: str | None
    selector: str
    since: int | None
    timeout: float


@dataclass
class MintedToken:
    """A projected service account token as the kubelet would get it for a pod."""

    namespace: str
    service_account: str
    pod: str
    pod_uid: str
    audiences: tuple[str, ...]
    expires_at: float  # time.time()


@dataclass
class Fault:
    method: str
    path_part: str
    status: int = 500
    times: int = 1
    stall: float = 0.0
    after: bool = True
    message: str = ""
    cause: str = ""  # a details.causes[].reason, e.g. NamespaceTerminating

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method in (method, "*") and self.path_part in path


class ApiError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def status_body(code: int, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": REASONS.get(code, "Unknown"), "code": code}  # fmt: skip


def _selected(labels: dict, selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.rstrip("=")) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _port_errors(kind: str, body: dict) -> list[str]:
    """The API server's own range check of ports (the schemas only know they are integers)."""
    found = []
    if kind == "Service":
        ports = [
            (f"spec.ports[{i}].port", p.get("port")) for i, p in enumerate(body["spec"]["ports"])
        ]
    elif kind == "Deployment":
        containers = body["spec"]["template"]["spec"]["containers"]
        ports = [
            (f"spec.template.spec.containers[{c}].ports[{i}].containerPort", p.get("containerPort"))
            for c, container in enumerate(containers)
            for i, p in enumerate(container.get("ports", []))
        ]
    else:
        ports = []
    for where, value in ports:
        if not 1 <= value <= 65535:
            found.append(f"{where}: Invalid value: {value}: must be between 1 and 65535, inclusive")
    return found


def _spec_part(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class ApiServerDouble:
    """Start with ``start()``; ``host`` is what a client ``Configuration`` needs."""

    def __init__(self, ready_delay: float = 0.0, validate: bool = True):
        self.ready_delay = ready_delay
        self.validate = validate
        self.objects: dict[tuple, dict] = {}  # (kind, namespace, name) → object
        self.index: dict[tuple, set] = {}  # (kind, namespace) → names, for lists
        self.owners: dict[tuple, dict] = {}  # key → manager → (operation, field paths)
        self.changed_at: dict[tuple, float] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.tokens: dict[str, MintedToken] = {}
        # (namespace, pod, container) → {"current": [[ns, line]], "previous": [...] | None}
        self.logs: dict[tuple, dict] = {}
        self.version = 0
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # an event was recorded
        self.events: list[Event] = []
        self.compacted = 0  # watches from before this version get 410 Gone
        self.stopped = False
        self._node_ports = iter(range(30000, 32768))
        self._cluster_ips = iter(f"10.96.{i // 250}.{i % 250 + 1}" for i in range(60000))
        for name in ("node-a", "node-b"):
            self._store("Node", None, {"apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": name}, "status": {"addresses": [
                            {"type": "InternalIP", "address": NODE_ADDRESS}]}})  # fmt: skip
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "ApiServerDouble":
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.changed.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # fault injection
    def fail(self, method, path_part, status=500, times=1, message="", cause="") -> None:
        self.faults.append(Fault(method, path_part, status, times, message=message, cause=cause))

    def stall(self, method, path_part, seconds, times=1, after=True) -> None:
        self.faults.append(Fault(method, path_part, 0, times, stall=seconds, after=after))

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")]

    def kinds_in(self, namespace: str) -> list[str]:
        return sorted(k for (k, ns, _) in self.objects if ns == namespace)

    # pods and their service account tokens
    def add_pod(
        self, namespace: str, name: str, labels: dict, service_account: str, containers=("envoy",)
    ) -> str:
        """A running pod (as the Deployment controller and the kubelet make it); its uid."""
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {"serviceAccountName": service_account,
                     "containers": [{"name": c, "image": "envoy"} for c in containers]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": c, "ready": True, "restartCount": 0} for c in containers]},
        }  # fmt: skip
        with self.lock:
            for container in containers:
                self.logs[(namespace, name, container)] = {"current": [], "previous": None}
            return self._store("Pod", namespace, pod)["metadata"]["uid"]

    def write_log(self, namespace: str, pod: str, line: bytes | str, container="envoy",
                  newline: bool = True) -> None:  # fmt: skip
        """One line the container wrote, stamped now; without ``newline``, the start of a line
        still being written (served without a newline until ``finish_line``)."""
        line = line.encode() if isinstance(line, str) else line
        with self.lock:
            self.logs[(namespace, pod, container)]["current"].append(
                [time.time_ns(), line + (b"\n" if newline else b"")]
            )

    def finish_line(self, namespace: str, pod: str, rest: bytes, container="envoy") -> None:
        with self.lock:
            last = self.logs[(namespace, pod, container)]["current"][-1]
            assert not last[1].endswith(b"\n"), "the last line is whole"
            last[1] += rest + b"\n"

    def restart_container(self, namespace: str, pod: str, container="envoy") -> None:
        """The container exited and the kubelet started it again: its log so far is the
        previous instance's (one is kept), a new one begins, ``restartCount`` goes up."""
        with self.lock:
            log = self.logs[(namespace, pod, container)]
            log["previous"], log["current"] = log["current"], []
            obj = copy.deepcopy(self.objects[("Pod", namespace, pod)])
            for status in obj["status"]["containerStatuses"]:
                if status["name"] == container:
                    status["restartCount"] += 1
            self._store("Pod", namespace, obj)

    def pod_log(self, namespace: str, pod: str, query: dict) -> bytes:
        if ("Pod", namespace, pod) not in self.objects:
            raise ApiError(404, f'pods "{pod}" not found')
        names = [c["name"] for c in self.objects[("Pod", namespace, pod)]["spec"]["containers"]]
        container = query.get("container") or (names[0] if len(names) == 1 else None)
        if container is None:
            raise ApiError(400, f"a container name must be specified for pod {pod}, choose one "
                           f"of: {names}")  # fmt: skip
        if container not in names:
            raise ApiError(400, f"container {container} is not valid for pod {pod}")
        log = self.logs[(namespace, pod, container)]
        lines = log["current"]
        if query.get("previous") == "true":
            if log["previous"] is None:
                raise ApiError(400, f'previous terminated container "{container}" in pod '
                               f'"{pod}" not found')  # fmt: skip
            lines = log["previous"]
        since = None
        if query.get("sinceTime"):  # metav1.Time: RFC 3339, whole seconds
            since = int(datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
                        .timestamp()) * 1_000_000_000  # fmt: skip
        out = bytearray()
        for at, line in lines:
            if since is not None and at < since:
                continue
            if query.get("timestamps") == "true":
                seconds, nanos = divmod(at, 1_000_000_000)
                stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
                out += f"{stamp}.{nanos:09d}Z ".encode()
            out += line
        limit = int(query.get("limitBytes") or 0)
        return bytes(out[:limit] if limit else out)

    def terminate_pod(self, namespace: str, name: str) -> None:
        """The pod is being deleted (it has a ``deletionTimestamp`` and still exists)."""
        with self.lock:
            pod = copy.deepcopy(self.objects[("Pod", namespace, name)])
            pod["metadata"]["deletionTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._store("Pod", namespace, pod)

    def mint_token(
        self,
        namespace: str,
        pod: str,
        audiences=("gantry-xds",),
        expires_in: float = 600,
        service_account: str | None = None,
    ) -> str:
        """A token bound to the pod (which must exist here), as a projected volume gets it;
        ``service_account`` defaults to the pod's."""
        with self.lock:
            obj = self.objects[("Pod", namespace, pod)]
            token = "double." + secrets.token_urlsafe(32)
            self.tokens[token] = MintedToken(
                namespace=namespace,
                service_account=service_account or obj["spec"]["serviceAccountName"],
                pod=pod,
                pod_uid=obj["metadata"]["uid"],
                audiences=tuple(audiences),
                expires_at=time.time() + expires_in,
            )
            return token

    def review(self, body: dict) -> dict:
        """A TokenReview, answered like the API server's token authenticator."""
        spec = body.get("spec") or {}
        wanted = spec.get("audiences") or []
        minted = self.tokens.get(spec.get("token", ""))
        status: dict = {"authenticated": False}
        if minted is None:
            status["error"] = (
                "[invalid bearer token, square/go-jose: error in cryptographic primitive]"
            )
        elif minted.expires_at <= time.time():
            status["error"] = "[invalid bearer token, service account token has expired]"
        elif wanted and not set(wanted) & set(minted.audiences):
            status["error"] = (
                "[invalid bearer token, token audiences "
                + json.dumps(list(minted.audiences))
                + " is invalid for the target audiences "
                + json.dumps(wanted)
                + "]"
            )
        else:
            pod = self.objects.get(("Pod", minted.namespace, minted.pod))
            if pod is None:
                status["error"] = f'pods "{minted.pod}" not found'
            elif pod["metadata"]["uid"] != minted.pod_uid:
                status["error"] = (
                    f"pod {minted.pod} UID ({pod['metadata']['uid']}) does not match the "
                    f"claim ({minted.pod_uid})"
                )
            else:
                status = {
                    "authenticated": True,
                    "audiences": [a for a in wanted if a in minted.audiences]
                    or list(minted.audiences),
                    "user": {
                        "username": f"system:serviceaccount:{minted.namespace}:"
                        f"{minted.service_account}",
                        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, minted.service_account)),
                        "groups": [
                            "system:serviceaccounts",
                            f"system:serviceaccounts:{minted.namespace}",
                            "system:authenticated",
                        ],
                        "extra": {
                            "authentication.kubernetes.io/pod-name": [minted.pod],
                            "authentication.kubernetes.io/pod-uid": [minted.pod_uid],
                        },
                    },
                }
        kind = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}
        return {**kind, "metadata": {}, "spec": spec, "status": status}

    # objects placed by a test (as controllers make them), with watch events
    def upsert(self, obj: dict) -> dict:
        """Creates or replaces an object as its controller would (an EndpointSlice); validated
        strictly against the real schemas. Returns it as stored."""
        obj = copy.deepcopy(obj)
        if self.validate:
            problems = schemas.errors(self._bare(obj), schemas.newest_versions()[-1])
            if problems:
                raise ValueError(f"{obj['kind']} is invalid: " + "; ".join(problems))
        with self.lock:
            namespace = obj["metadata"].get("namespace")
            old = self.objects.get((obj["kind"], namespace, obj["metadata"]["name"]))
            if old is not None:
                obj["metadata"]["uid"] = old["metadata"]["uid"]
            return copy.deepcopy(self._store(obj["kind"], namespace, obj))

    def remove(self, kind: str, namespace: str | None, name: str) -> None:
        with self.lock:
            self.delete(kind, namespace, name)

    def compact(self) -> None:
        """Forgets the event history (etcd compaction): older versions cannot be watched."""
        with self.lock:
            self.events.clear()
            self.compacted = self.version

    def _event(self, kind: str, key: tuple, obj: dict) -> None:
        with self.lock:
            self.events.append(Event(self.version, kind, key, copy.deepcopy(obj)))
            self.changed.notify_all()

    def watch_events(self, watch: Watch, cursor: int, wait: float) -> tuple[list[Event], int]:
        """Events after ``cursor`` for the watch (waiting up to ``wait`` s for one), and the new
        cursor; raises ApiError(410) when ``cursor`` is older than the history."""
        with self.lock:
            if cursor < self.compacted:
                raise ApiError(410, f"too old resource version: {cursor} ({self.version})")
            found = [e for e in self.events if e.version > cursor and self._watched(watch, e)]
            if not found and not self.stopped:
                self.changed.wait(wait)
                found = [e for e in self.events if e.version > cursor and self._watched(watch, e)]
            if cursor < self.compacted:
                raise ApiError(410, f"too old resource version: {cursor} ({self.version})")
            return found, max([cursor, *(e.version for e in found)])

    @staticmethod
    def _watched(watch: Watch, event: Event) -> bool:
        kind, namespace, _ = event.key
        return (
            kind == watch.kind
            and (watch.namespace is None or namespace == watch.namespace)
            and _selected(event.obj["metadata"].get("labels") or {}, watch.selector)
        )

    # storage
    def _store(self, kind, namespace, obj) -> dict:
        self.version += 1
        meta = obj["metadata"]
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(self.version)
        existed = (kind, namespace, meta["name"]) in self.objects
        self.objects[(kind, namespace, meta["name"])] = obj
        self.index.setdefault((kind, namespace), set()).add(meta["name"])
        self.changed_at[(kind, namespace, meta["name"])] = time.monotonic()
        view = {"kind": kind, "apiVersion": obj.get("apiVersion"), **obj}
        self._event("MODIFIED" if existed else "ADDED", (kind, namespace, meta["name"]), view)
        return obj

    def _view(self, key) -> dict:
        obj = copy.deepcopy(self.objects[key])
        obj["metadata"]["managedFields"] = [
            {"manager": manager, "operation": operation, "apiVersion": obj.get("apiVersion"),
             "fieldsType": "FieldsV1", "fieldsV1": fieldsets.fields_v1(paths)}
            for manager, (operation, paths) in sorted(self.owners.get(key, {}).items())
        ]  # fmt: skip
        if key[0] == "Deployment":
            ready = time.monotonic() - self.changed_at[key] >= self.ready_delay
            replicas = obj["spec"].get("replicas", 1)
            count = replicas if ready else 0
            obj["status"] = {"observedGeneration": obj["metadata"]["generation"] if ready else 0,
                             "replicas": replicas, "updatedReplicas": count,
                             "readyReplicas": count, "availableReplicas": count}  # fmt: skip
        return obj

    def _defaults(self, kind: str, obj: dict, old: dict | None) -> None:
        if kind == "Deployment":
            obj["spec"].setdefault("replicas", 1)
            obj["spec"].setdefault("revisionHistoryLimit", 10)
        if kind == "Service":
            spec = obj["spec"]
            old_spec = (old or {}).get("spec", {})
            spec["clusterIP"] = old_spec.get("clusterIP") or next(self._cluster_ips)
            old_ports = {p["port"]: p.get("nodePort") for p in old_spec.get("ports", [])}
            if spec.get("type") in ("NodePort", "LoadBalancer"):
                for port in spec["ports"]:
                    port.setdefault(
                        "nodePort", old_ports.get(port["port"]) or next(self._node_ports)
                    )
            if spec.get("type") == "LoadBalancer":
                obj["status"] = {"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_IP}]}}

    def apply(self, kind, api_version, namespace, name, body: dict, query: dict) -> dict:
        manager = query.get("fieldManager")
        if not manager:
            raise ApiError(422, "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required "
                           "value: is required for apply patch")  # fmt: skip
        if body.get("kind") != kind or body.get("apiVersion") != api_version:
            raise ApiError(422, f"apply of {body.get('kind')} at the URL of a {kind}")
        if body["metadata"].get("name") != name:
            raise ApiError(422, "the name of the object does not match the name on the URL")
        if namespace and ("Namespace", None, namespace) not in self.objects:
            raise ApiError(404, f'namespaces "{namespace}" not found')
        key = (kind, namespace, name)
        old = self.objects.get(key)
        body = copy.deepcopy(body)
        body["metadata"].pop("namespace", None)
        new, owners = fieldsets.apply(old, self.owners.get(key, {}), manager, body)
        if namespace:
            new["metadata"]["namespace"] = namespace
        self._defaults(kind, new, old)
        if self.validate:  # the object as it would be stored, as a real API server checks it
            problems = schemas.errors(self._bare(new), schemas.newest_versions()[-1])
            problems = problems or _port_errors(kind, new)
            if problems:
                raise ApiError(422, f'{kind} "{name}" is invalid: ' + "; ".join(problems))
        if old is not None and new == old and owners == self.owners.get(key):
            return self._view(key)  # a no-op apply changes nothing, not even resourceVersion
        if old is not None and _spec_part(old) != _spec_part(new):
            new["metadata"]["generation"] = old["metadata"]["generation"] + 1
        self.owners[key] = owners
        self._store(kind, namespace, new)
        return self._view(key)

    def scale(self, namespace: str, name: str, replicas: int, manager: str) -> None:
        """What an HPA does: an update of ``spec.replicas`` (through the scale subresource)."""
        with self.lock:
            key = ("Deployment", namespace, name)
            obj = copy.deepcopy(self.objects[key])
            obj["spec"]["replicas"] = replicas
            obj["metadata"]["generation"] += 1
            owners = dict(self.owners.get(key, {}))
            owners[manager] = ("Update", {("spec", "replicas")})
            self.owners[key] = owners
            self._store("Deployment", namespace, obj)

    @staticmethod
    def _bare(obj: dict) -> dict:
        """Without the fields the server sets itself (not part of what is validated here)."""
        server_set = ("uid", "resourceVersion", "generation", "creationTimestamp")
        meta = {k: v for k, v in obj["metadata"].items() if k not in server_set}
        return {**obj, "metadata": meta}

    def delete(self, kind, namespace, name) -> dict:
        key = (kind, namespace, name)
        if key not in self.objects:
            raise ApiError(404, f'{kind.lower()}s "{name}" not found')
        gone = self._view(key)
        self._forget(key)
        if kind == "Namespace":  # cascade
            for other in [k for k in self.objects if k[1] == name]:
                self._forget(other)
        self.version += 1
        return gone

    def _forget(self, key) -> None:
        self.version += 1
        gone = copy.deepcopy(self.objects[key])
        gone["metadata"]["resourceVersion"] = str(self.version)
        self._event("DELETED", key, gone)
        del self.objects[key]
        self.owners.pop(key, None)
        self.index[key[:2]].discard(key[2])

    def _keys(self, kind, namespace, everywhere: bool) -> list[tuple]:
        if everywhere:  # a namespaced kind listed across namespaces
            return sorted(key for key in self.objects if key[0] == kind)
        return [(kind, namespace, name) for name in sorted(self.index.get((kind, namespace), ()))]

    def put(self, obj: dict) -> None:
        """Stores an object as someone else made it (no validation, no defaults)."""
        with self.lock:
            self._store(obj["kind"], obj["metadata"].get("namespace"), copy.deepcopy(obj))

    def list(self, kind, api_version, namespace, selector, everywhere=False) -> dict:
        items = [
            self._view(key)
            for key in self._keys(kind, namespace, everywhere)
            if _selected(self.objects[key]["metadata"].get("labels") or {}, selector)
        ]
        for item in items:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {"kind": f"{kind}List", "apiVersion": api_version,
                "metadata": {"resourceVersion": str(self.version)}, "items": items}  # fmt: skip

    def handle(self, method: str, raw_path: str, body: bytes, content_type: str) -> dict | bytes:
        url = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/version":
            return {"major": "1", "minor": "37", "gitVersion": "v1.37.0-gantry-double"}
        if url.path in ("/api", "/apis"):
            return {"kind": "APIVersions", "versions": ["v1"]} if url.path == "/api" else {
                "kind": "APIGroupList", "groups": []}  # fmt: skip
        if url.path == TOKEN_REVIEWS and method == "POST":
            review = json.loads(body or b"{}")
            # Like the API server, the kind defaults to the one of the URL.
            review.setdefault("apiVersion", "authentication.k8s.io/v1")
            review.setdefault("kind", "TokenReview")
            if self.validate:  # the request, strictly, as a real API server checks it
                problems = schemas.errors(review, schemas.newest_versions()[-1])
                if problems:
                    raise ApiError(422, "TokenReview is invalid: " + "; ".join(problems))
            with self.lock:
                return self.review(review)
        logs = LOG_PATH.match(url.path)
        if logs and method == "GET":
            with self.lock:
                return self.pod_log(logs["ns"], logs["name"], query)
        match = PATH.match(url.path)
        if not match or (match["prefix"], match["resource"]) not in RESOURCES:
            raise ApiError(404, f"the server could not find the requested resource {url.path}")
        kind, api_version, namespaced = RESOURCES[(match["prefix"], match["resource"])]
        namespace, name = match["ns"] if namespaced else None, match["name"]
        watching = str(query.get("watch")).lower() in ("true", "1")
        with self.lock:
            if method == "GET" and name is None and watching:
                since = query.get("resourceVersion")
                return Watch(kind, api_version, namespace if namespaced else None,
                             query.get("labelSelector", ""),
                             int(since) if since and since != "0" else None,
                             float(query.get("timeoutSeconds") or 1800))  # fmt: skip
            if method == "GET" and name is None:
                selector = query.get("labelSelector", "")
                everywhere = namespaced and namespace is None
                return self.list(kind, api_version, namespace, selector, everywhere)
            if method == "GET":
                if (kind, namespace, name) not in self.objects:
                    raise ApiError(404, f'{match["resource"]} "{name}" not found')
                return self._view((kind, namespace, name))
            if method == "PATCH":
                if content_type != "application/apply-patch+yaml":
                    raise ApiError(
                        415, f"the double only speaks server-side apply, not {content_type}"
                    )
                obj = json.loads(body or b"{}")
                return self.apply(kind, api_version, namespace, name, obj, query)
            if method == "DELETE" and name:
                return self.delete(kind, namespace, name)
        raise ApiError(405, f"{method} is not supported by the double on {url.path}")

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None


def _handler(double: ApiServerDouble):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            # Headers and body go out in two writes: without this, Nagle and delayed ACKs
            # add 40 ms to every answer.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args):  # quiet
            pass

        def _answer(self, code: int, payload: dict | bytes) -> None:
            text = isinstance(payload, bytes)  # a pod's log
            data = payload if text else json.dumps(payload).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout): nothing to answer

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            method = self.command
            double.requests.append((method, self.path))
            fault = double.take_fault(method, self.path)
            if fault and fault.status:
                body = status_body(fault.status, fault.message or f"injected {fault.status}")
                if fault.cause:
                    body["details"] = {"causes": [{"reason": fault.cause}]}
                self._answer(fault.status, body)
                return
            if fault and not fault.after:
                time.sleep(fault.stall)
            content_type = (self.headers.get("Content-Type") or "").split(";")[0]
            try:
                code, payload = 200, double.handle(method, self.path, body, content_type)
            except ApiError as error:
                code, payload = error.code, status_body(error.code, error.message)
            if fault and fault.after:
                time.sleep(fault.stall)
            if isinstance(payload, Watch):
                self._stream(payload)
                return
            self._answer(code, payload)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _stream(self, watch: Watch) -> None:
            """A watch: one JSON event per line, in chunks, until ``timeoutSeconds``."""
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            deadline = time.monotonic() + watch.timeout
            try:
                with double.lock:
                    cursor = watch.since
                    if cursor is None:  # every current object first, then what follows
                        cursor = double.version
                        listed = double.list(watch.kind, watch.api_version, watch.namespace,
                                             watch.selector, watch.namespace is None)  # fmt: skip
                        first = [{"type": "ADDED", "object": {"kind": watch.kind,
                                  "apiVersion": watch.api_version, **item}}
                                 for item in listed["items"]]  # fmt: skip
                    else:
                        first = []
                for event in first:
                    self._chunk(json.dumps(event).encode() + b"\n")
                while not double.stopped:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        events, cursor = double.watch_events(watch, cursor, min(left, 0.5))
                    except ApiError as error:
                        body = {"type": "ERROR", "object": status_body(error.code, error.message)}
                        self._chunk(json.dumps(body).encode() + b"\n")
                        break
                    for event in events:
                        body = {"type": event.type, "object": event.obj}
                        self._chunk(json.dumps(body).encode() + b"\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away
            self.close_connection = True

        do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _serve

    return Handler
