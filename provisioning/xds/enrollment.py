"""Enrollment: a Kubernetes gateway pod proves which pod it is and gets its own xDS token and
Envoy bootstrap, on the xDS server's gRPC port (gateway pods reach nothing else of the
platform).

The method is ``/gantry.xds.v1.Enrollment/Enroll``, unary, with JSON bodies (no generated
code): the request is ``{"gateway": "<tenant>/<gateway>", "pod": "<pod name>", "token":
"<projected service account token>"}``, the answer ``{"nodeId": ..., "bootstrap": "<YAML>"}``.

The server, for the gateway named in the request:

1. sends a TokenReview (audience ``gantry-xds``) to the cluster the gateway is placed on;
2. requires it authenticated, for that audience, as the gateway's service account
   (``system:serviceaccount:gantry-<tenant>:envoy-<gateway>``), bound to the pod asked for
   (the ``pod-name`` and ``pod-uid`` extras the API server adds to pod-bound tokens);
3. reads that Pod back: it must exist with the same uid, carry the gateway's labels and not be
   terminating;
4. issues a token bound to node id ``<tenant>/<gateway>/<pod name>`` and that uid (replacing
   the pod's previous one) and answers with the pod's bootstrap.

Every refusal is a gRPC error (UNAUTHENTICATED for a token the cluster does not accept,
PERMISSION_DENIED for one that names something else, RESOURCE_EXHAUSTED past the rate limits)
with a message saying why, and is logged. Attempts are limited per caller address and per
gateway, before any request to the cluster, so a hostile pod cannot make the platform hammer an
API server.
"""

import json
import logging
import time
from dataclasses import dataclass

import grpc
import yaml

from provisioning.xds.db import DatabaseThreads

log = logging.getLogger(__name__)

SERVICE = "gantry.xds.v1.Enrollment"
METHOD = "Enroll"
FULL_METHOD = f"/{SERVICE}/{METHOD}"
AUDIENCE = "gantry-xds"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
MAX_TOKEN_BYTES = 16 * 1024


class Refused(Exception):
    """An enrollment refused: ``code`` is the gRPC status, the message says why."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _denied(message: str) -> Refused:
    return Refused(grpc.StatusCode.PERMISSION_DENIED, message)


def _exhausted(message: str) -> Refused:
    return Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def _unauthenticated(message: str) -> Refused:
    return Refused(grpc.StatusCode.UNAUTHENTICATED, message)


@dataclass(frozen=True)
class EnrollRequest:
    gateway: str
    pod: str
    token: str

    @classmethod
    def parse(cls, raw) -> "EnrollRequest":
        if not isinstance(raw, dict):
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "the request must be a JSON object")
        values = {}
        for field, limit in (("gateway", 512), ("pod", 253), ("token", MAX_TOKEN_BYTES)):
            value = raw.get(field)
            if not isinstance(value, str) or not value or len(value) > limit:
                raise Refused(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{field!r} must be a non-empty string of at most {limit} characters",
                )
            values[field] = value
        if values["gateway"].count("/") != 1:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "'gateway' must be <tenant>/<gateway>")
        return cls(**values)


def _gateway(key: str):
    from gateways.models import Gateway

    tenant, _, name = key.partition("/")
    gateway = (
        Gateway.objects.select_related("tenant", "kubernetes_placement__cluster")
        .filter(tenant__slug=tenant, name=name)
        .first()
    )
    if gateway is None or gateway.spec.get("runtime") != "kubernetes":
        raise _denied(f"no Kubernetes gateway {key}")
    placement = getattr(gateway, "kubernetes_placement", None)
    if placement is None:
        raise _denied(f"gateway {key} is not placed on a cluster yet")
    return gateway, placement.cluster


def _review(api, token: str) -> dict:
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": [AUDIENCE]},
    }
    answer = api.request("POST", TOKEN_REVIEWS, body=body, concerning="TokenReview")
    return (answer or {}).get("status") or {}


def _one(extra: dict, key: str) -> str | None:
    values = extra.get(key) or []
    return values[0] if isinstance(values, list) and len(values) == 1 else None


def check_identity(status: dict, namespace: str, service_account: str, pod: str) -> str:
    """The pod uid a TokenReview's ``status`` vouches for, if it is the gateway's service
    account bound to pod ``pod``; else ``Refused`` saying why."""
    if not status.get("authenticated"):
        reason = status.get("error") or "not authenticated"
        raise _unauthenticated(f"the cluster does not accept the service account token: {reason}")
    if AUDIENCE not in (status.get("audiences") or []):
        raise _unauthenticated(f"the service account token is not for audience {AUDIENCE}")
    user = status.get("user") or {}
    wanted = f"system:serviceaccount:{namespace}:{service_account}"
    if user.get("username") != wanted:
        raise _denied(
            f"the service account token belongs to {user.get('username')!r}, not to the "
            f"gateway's service account {wanted!r}"
        )
    extra = user.get("extra") or {}
    bound_to, uid = _one(extra, POD_NAME_EXTRA), _one(extra, POD_UID_EXTRA)
    if bound_to is None or uid is None:
        raise _denied("the service account token is not bound to a pod")
    if bound_to != pod:
        raise _denied(f"the service account token was issued to pod {bound_to!r}, not {pod!r}")
    return uid


def check_pod(pod: dict | None, name: str, uid: str, labels: dict) -> None:
    if pod is None:
        raise _denied(f"pod {name!r} does not exist")
    meta = pod.get("metadata") or {}
    if meta.get("uid") != uid:
        raise _denied(f"pod {name!r} is not the pod the token was issued to (another uid)")
    if meta.get("deletionTimestamp"):
        raise _denied(f"pod {name!r} is terminating")
    have = meta.get("labels") or {}
    if any(have.get(key) != value for key, value in labels.items()):
        raise _denied(f"pod {name!r} does not carry the gateway's labels")


def _listener_ports(spec: dict) -> tuple[int, ...]:
    return tuple(sorted({listener["port"] for listener in spec.get("listeners", [])}))


def enroll(raw, *, api_for=None) -> dict:
    """The whole check and the answer (runs in a database thread: it reads the database and
    talks to the cluster's API server). Raises ``Refused``; ``KubernetesError`` when the
    cluster cannot be asked."""
    from django.conf import settings

    from provisioning.runtimes.kubernetes import envoy_pod, names
    from provisioning.runtimes.kubernetes.client import Backoff, KubeApi
    from provisioning.runtimes.kubernetes.driver import UnusableCluster, configuration_for
    from provisioning.xds.bootstrap import node_id as make_node_id
    from provisioning.xds.credentials import issue_pod_token

    request = EnrollRequest.parse(raw)
    gateway, cluster = _gateway(request.gateway)
    tenant, name = gateway.tenant.slug, gateway.name
    namespace, account = names.namespace(tenant), names.workload(name)
    if api_for is not None:
        api = api_for(cluster)
    else:
        from kubernetes import client as k8s

        try:
            configuration = configuration_for(cluster)
        except UnusableCluster as error:
            raise Refused(grpc.StatusCode.UNAVAILABLE, str(error)) from None
        # Quick answers: the pod's enrollment retries by itself.
        api = KubeApi(k8s.ApiClient(configuration), Backoff(2, 0.1, 0.5), timeout=(3, 5))
    try:
        uid = check_identity(_review(api, request.token), namespace, account, request.pod)
        pod = api.get("Pod", namespace, request.pod)
    finally:
        if api_for is None:
            api.client.close()
    check_pod(pod, request.pod, uid, names.selector_labels(tenant, name))
    token = issue_pod_token(gateway, request.pod, uid)
    bootstrap = envoy_pod.pod_bootstrap(
        gateway_key=request.gateway,
        pod_name=request.pod,
        token=token,
        xds_address=cluster.xds_address,
        xds_port=cluster.xds_port,
        ports=_listener_ports(gateway.spec),
        metering_seconds=settings.GANTRY_METERING_SECONDS,
    )
    node = make_node_id(request.gateway, request.pod)
    log.info("xds: enrolled pod %s (uid %s) as %s", request.pod, uid, node)
    return {"nodeId": node, "bootstrap": yaml.safe_dump(bootstrap, sort_keys=True)}


class RateLimiter:
    """Token buckets: ``burst`` attempts at once, refilled at ``rate`` per second, per key."""

    def __init__(self, burst: float, rate: float, clock=time.monotonic):
        self.burst, self.rate, self.clock = burst, rate, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        if len(self._buckets) > 10_000:  # forget full buckets
            horizon = self.burst / self.rate
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < horizon}
        level, at = self._buckets.get(key, (self.burst, now))
        level = min(self.burst, level + (now - at) * self.rate)
        if level < 1:
            self._buckets[key] = (level, now)
            return False
        self._buckets[key] = (level - 1, now)
        return True


# A pod enrolls once per start (a few tries when the API server is slow); a gateway's rollout
# enrolls each new pod. Past these, attempts are refused before the cluster is asked. The
# bursts are settings (GANTRY_XDS_ENROLL_ADDRESS_BURST, GANTRY_XDS_ENROLL_GATEWAY_BURST).
PEER_RATE = 0.2  # per caller address: one attempt every 5 s after the burst
GATEWAY_RATE = 2.0  # per gateway named: two a second after the burst


def _host(peer: str) -> str:
    """``ipv4:10.0.0.7:51234`` → ``10.0.0.7`` (the port changes with every connection)."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rpartition(":")[0]
    return peer


def _loads(data: bytes):
    try:
        return json.loads(data)
    except ValueError:
        return None


def _dumps(answer: dict) -> bytes:
    return json.dumps(answer).encode()


class EnrollmentService:
    """The gRPC side: rate limits, then ``enroll`` through the database threads."""

    def __init__(
        self,
        database: DatabaseThreads | None = None,
        enroll_function=None,
        address_burst: int | None = None,
        gateway_burst: int | None = None,
        clock=time.monotonic,
    ):
        from django.conf import settings

        self.database = database
        self.enroll_function = enroll_function or enroll
        address_burst = address_burst or settings.GANTRY_XDS_ENROLL_ADDRESS_BURST
        gateway_burst = gateway_burst or settings.GANTRY_XDS_ENROLL_GATEWAY_BURST
        self.peers = RateLimiter(address_burst, PEER_RATE, clock)
        self.gateways = RateLimiter(gateway_burst, GATEWAY_RATE, clock)

    async def Enroll(self, raw, context):  # noqa: N802 (the gRPC method's name)
        peer = context.peer()
        gateway = raw.get("gateway") if isinstance(raw, dict) else None
        pod = raw.get("pod") if isinstance(raw, dict) else None
        try:
            if not self.peers.allow(_host(peer)):
                raise _exhausted("too many enrollment attempts from this address; retry later")
            if isinstance(gateway, str) and not self.gateways.allow(gateway):
                raise _exhausted(f"too many enrollment attempts for {gateway}; retry later")
            if self.database is None:
                return self.enroll_function(raw)
            return await self.database.run(self.enroll_function, raw)
        except Refused as refusal:
            log.warning("xds: refused enrollment of pod %r for %r from %s: %s",
                        pod, gateway, peer, refusal.message)  # fmt: skip
            await context.abort(refusal.code, refusal.message)
        except Exception as error:
            from provisioning.runtimes.kubernetes.client import KubernetesError

            if isinstance(error, KubernetesError):
                log.warning("xds: enrollment of pod %r for %r: the cluster did not answer: %s",
                            pod, gateway, error)  # fmt: skip
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, f"cannot check with the cluster now: {error}"
                )
            log.exception("xds: enrollment of pod %r for %r failed", pod, gateway)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "cannot enroll now")

    def handler(self) -> grpc.GenericRpcHandler:
        method = grpc.unary_unary_rpc_method_handler(
            self.Enroll, request_deserializer=_loads, response_serializer=_dumps
        )
        return grpc.method_handlers_generic_handler(SERVICE, {METHOD: method})
