"""Usage counters pushed by Kubernetes gateway pods, on the xDS server's port.

A pod's admin interface is inside the pod, out of the platform's reach, so its Envoy pushes
its listener counters with its own stats sink (``envoy.stat_sinks.open_telemetry``, configured
by ``provisioning.xds.bootstrap.metrics_sink``) every ``GANTRY_METERING_SECONDS``: the
OpenTelemetry method ``/opentelemetry.proto.collector.metrics.v1.MetricsService/Export``, over
the pod's connection to the xDS server, with the pod's xDS token as ``authorization`` metadata,
exactly as its ADS stream carries it.

The token alone says whose counters these are: a pod token (``PodCredential``) names one pod of
one gateway. A call without one, or with an unknown or a local replica's token, is refused with
UNAUTHENTICATED and writes nothing. What the message itself names (resource attributes, other
gateways' stat names) decides nothing: only the counters under the token's own gateway's stat
prefix are kept, as the next sample of the pod's own run (``metering.record_pod_push``).
"""

import hashlib
import logging
import time

import grpc
from django.conf import settings
from django.utils import timezone
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as otlp

from provisioning.xds.db import DatabaseThreads
from provisioning.xds.server import bearer_token

log = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
METHOD = "Export"
FULL_METHOD = f"/{SERVICE}/{METHOD}"


class Unknown(Exception):
    """The call's token is no pod's."""


def record(token: str, request) -> str:
    """Stores one push as the token's pod; returns its node id. Raises ``Unknown``."""
    from provisioning import metering
    from provisioning.xds.credentials import pod_credential

    taken_at = timezone.now()
    credential = pod_credential(token)
    if credential is None:
        raise Unknown
    metering.record_pod_push(credential, request, taken_at)
    return credential.node_id


class MetricsService:
    """The ``Export`` method; database work runs in ``database``'s threads.

    A token's pushes are stored at most once every ``min_interval`` seconds (half the flush
    interval by default): one pushing faster is answered OK and its extra pushes dropped
    before any database work. The counters are cumulative, so the next stored push carries
    what a dropped one held."""

    def __init__(self, database: DatabaseThreads, min_interval: float | None = None,
                 clock=time.monotonic):  # fmt: skip
        self.database = database
        if min_interval is None:
            min_interval = settings.GANTRY_METERING_SECONDS / 2
        self.min_interval = min_interval
        self.clock = clock
        self._stored: dict[str, float] = {}  # token digest → when a push of it was last stored

    def _too_soon(self, token: str) -> bool:
        now, key = self.clock(), hashlib.sha256(token.encode()).hexdigest()
        if len(self._stored) > 100_000:  # forget tokens not seen for a while
            cutoff = now - self.min_interval
            self._stored = {k: at for k, at in self._stored.items() if at > cutoff}
        last = self._stored.get(key)
        if last is not None and now - last < self.min_interval:
            return True
        self._stored[key] = now
        return False

    def _forget(self, token: str) -> None:
        self._stored.pop(hashlib.sha256(token.encode()).hexdigest(), None)

    async def Export(self, request, context):  # noqa: N802 (the gRPC method's name)
        token = bearer_token(context.invocation_metadata())
        if token is None:
            await self._refuse(context, "no bearer token")
        if self._too_soon(token):
            return otlp.ExportMetricsServiceResponse()
        try:
            await self.database.run(record, token, request)
        except Unknown:
            self._forget(token)  # an unknown token never holds up a known one's pushes
            await self._refuse(context, "unknown token")
        except Exception:
            self._forget(token)
            log.exception("metering: storing the counters pushed by %s failed", context.peer())
            await context.abort(grpc.StatusCode.UNAVAILABLE, "cannot store the counters now")
        return otlp.ExportMetricsServiceResponse()

    async def _refuse(self, context, reason: str):
        log.warning("metering: refused counters from %s: %s", context.peer(), reason)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    def handler(self) -> grpc.GenericRpcHandler:
        method = grpc.unary_unary_rpc_method_handler(
            self.Export,
            request_deserializer=otlp.ExportMetricsServiceRequest.FromString,
            response_serializer=otlp.ExportMetricsServiceResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE, {METHOD: method})
