"""A thin, counted, retrying transport over the official client's ``ApiClient``.

Paths come from a fixed table of the kinds Gantry renders (no discovery round trips). Transient
failures — 5xx, 429, 409 conflicts, timeouts, dropped connections — are retried with
exponential backoff and jitter; every request Gantry sends is idempotent (server-side apply by
name, delete by name, reads), so a retry after a timeout never duplicates anything. Permanent
failures (403, 404 where it matters, 422, …) raise ``KubernetesError`` with the API server's
message.
"""

import json
import random
import time
from dataclasses import dataclass, field

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "gantry"
TRANSIENT_STATUSES = {0, 409, 429, 500, 502, 503, 504}

# kind → (API prefix, resource, namespaced)
KINDS = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Node": ("/api/v1", "nodes", False),
    "ResourceQuota": ("/api/v1", "resourcequotas", True),
    "LimitRange": ("/api/v1", "limitranges", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Secret": ("/api/v1", "secrets", True),
    "Pod": ("/api/v1", "pods", True),
    "Service": ("/api/v1", "services", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
}


class KubernetesError(Exception):
    """A failed request, with the API server's message and the object concerned.
    ``transient``: it failed only after every retry (worth trying again later)."""

    def __init__(
        self, status: int, reason: str, message: str, concerning: str = "", transient=False
    ):
        self.status, self.reason, self.api_message = status, reason, message
        self.concerning, self.transient = concerning, transient
        prefix = f"{concerning}: " if concerning else ""
        super().__init__(f"{prefix}{message} ({status} {reason})")


@dataclass(frozen=True)
class Backoff:
    attempts: int = 6
    base: float = 0.2
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2**attempt))


@dataclass
class Counters:
    calls: int = 0
    writes: int = 0
    retries: int = 0
    by_method: dict = field(default_factory=dict)


def path(kind: str, namespace: str | None = None, name: str | None = None) -> str:
    prefix, resource, namespaced = KINDS[kind]
    parts = [prefix]
    if namespaced and namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(resource)
    if name:
        parts.append(name)
    return "/".join(parts)


def describe(obj: dict) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']} {where}{meta['name']}"


def _status_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        return str(error.body or error.reason or "")
    return body.get("message") or str(error.reason or "")


def _terminating(error: ApiException) -> bool:
    """A namespace still being deleted refuses new objects with a 403 that clears by itself
    (a tenant's last gateway deleted, then a new one created)."""
    return error.status == 403 and "NamespaceTerminating" in str(error.body or "")


class KubeApi:
    """Requests to one cluster: counted, retried when transient, errors with their message."""

    def __init__(
        self, api_client: ApiClient, backoff: Backoff | None = None, timeout=(5, 30), sleep=None
    ):
        # Our own retries only: urllib3 retrying underneath would hide requests and time.
        api_client.rest_client.pool_manager.connection_pool_kw["retries"] = False
        self.client = api_client
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.sleep = sleep or time.sleep
        self.counters = Counters()

    def request(self, method: str, url: str, *, query=None, body=None, content_type=None,
                concerning: str = "", raw: bool = False):  # fmt: skip
        """The answer's JSON; with ``raw``, its body as bytes (a pod's log: text, which the
        client would otherwise try to read as JSON)."""
        headers = {"Accept": "*/*" if raw else "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        for attempt in range(self.backoff.attempts):
            self._count(method)
            try:
                answer = self.client.call_api(
                    url, method, query_params=list((query or {}).items()), header_params=headers,
                    body=body, response_type=None if raw else "object",
                    auth_settings=["BearerToken"], _return_http_data_only=True,
                    _request_timeout=self.timeout, _preload_content=not raw,
                )  # fmt: skip
                return answer.data if raw else answer
            except ApiException as error:
                if error.status not in TRANSIENT_STATUSES and not _terminating(error):
                    raise KubernetesError(
                        error.status, error.reason or "", _status_message(error), concerning
                    ) from None
                last = KubernetesError(
                    error.status, error.reason or "", _status_message(error), concerning, True
                )
            except urllib3.exceptions.HTTPError as error:  # timeouts, refused, reset
                last = KubernetesError(0, type(error).__name__, str(error), concerning, True)
            if attempt + 1 < self.backoff.attempts:
                self.counters.retries += 1
                self.sleep(self.backoff.delay(attempt))
        raise last

    def _count(self, method: str) -> None:
        self.counters.calls += 1
        self.counters.by_method[method] = self.counters.by_method.get(method, 0) + 1
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            self.counters.writes += 1

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        try:
            return self.request("GET", path(kind, namespace, name), concerning=f"{kind} {name}")
        except KubernetesError as error:
            if error.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None, selector: str) -> list[dict]:
        answer = self.request(
            "GET", path(kind, namespace), query={"labelSelector": selector}, concerning=kind
        )
        items = answer.get("items") or []
        for item in items:  # list items carry no kind
            item.setdefault("kind", kind)
        return items

    def pod_log(self, namespace: str, pod: str, container: str, *, since: str | None = None,
                previous: bool = False, limit_bytes: int | None = None) -> bytes:  # fmt: skip
        """A container's log (``GET .../pods/{pod}/log``), each line after its kubelet
        timestamp; ``since`` an RFC 3339 instant (whole seconds), ``previous`` the instance
        before the last restart. Raises ``KubernetesError`` (400 when there is no such
        container or no previous instance, 404 when the pod is gone)."""
        query = {"container": container, "timestamps": "true"}
        if since:
            query["sinceTime"] = since
        if previous:
            query["previous"] = "true"
        if limit_bytes:
            query["limitBytes"] = str(limit_bytes)
        return self.request(
            "GET", path("Pod", namespace, pod) + "/log", query=query, raw=True,
            concerning=f"Pod {namespace}/{pod} log",
        )  # fmt: skip

    def apply(self, obj: dict, field_manager: str = FIELD_MANAGER) -> dict:
        meta = obj["metadata"]
        return self.request(
            "PATCH",
            path(obj["kind"], meta.get("namespace"), meta["name"]),
            query={"fieldManager": field_manager, "force": "true"},
            body=obj,
            content_type="application/apply-patch+yaml",
            concerning=describe(obj),
        )

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        """Deletes (dependents in the background); False when it was already gone."""
        try:
            self.request(
                "DELETE",
                path(kind, namespace, name),
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": "Background",
                },
                concerning=f"{kind} {name}",
            )
        except KubernetesError as error:
            if error.status == 404:
                return False
            raise
        return True
