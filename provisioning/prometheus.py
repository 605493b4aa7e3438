"""``GET /metrics``: the platform and its gateways in Prometheus's text format, for operators.

Label sets are bounded by what exists, never by what clients send: tenants, gateways, replicas
(at most a plan's replicas per gateway), listener ports and five status classes. No path, host,
consumer or client address ever becomes a label.

Per-gateway traffic series are each live replica's own cumulative counters, exactly as its
Envoy last reported them to the runtime (every ``GANTRY_METERING_SECONDS``): a replica that
restarts counts from zero again, which ``rate()`` and ``increase()`` treat as a counter reset;
a replica that stops leaves the exposition. Billing never reads these series: it reads the
samples they come from (``billing.rollups``).

Access: a bearer token equal to ``GANTRY_METRICS_TOKEN`` (what a Prometheus scrape job sends),
or a signed-in staff user. Nothing else, not even a tenant's API token.
"""

import hmac

from django.conf import settings
from django.db.models import Count, OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gateways.models import Gateway
from provisioning.metering import COUNTERS
from provisioning.models import (
    GatewayOperation,
    ReplicaConnection,
    ReplicaIncarnation,
    UsageSample,
)
from tenants.models import Tenant

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PHASES = ("Pending", "Ready", "Degraded")
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def _replica(node_id: str) -> str:
    """``<tenant>/<gateway>/<replica>`` → ``<replica>`` (an index, or a pod's name)."""
    return node_id.rsplit("/", 1)[-1]


class PlatformCollector:
    """Collects everything from the database at scrape time: a handful of aggregate queries,
    whatever the number of gateways."""

    def collect(self):
        yield from self._platform()
        yield from self._traffic()

    def _platform(self):
        tenants = GaugeMetricFamily(
            "gantry_tenants", "Tenants, by whether they are suspended.", labels=["suspended"]
        )
        counts = dict(
            Tenant.objects.values_list("suspended").annotate(n=Count("id")).values_list(
                "suspended", "n"
            )
        )  # fmt: skip
        for suspended in (False, True):
            tenants.add_metric([str(suspended).lower()], counts.get(suspended, 0))
        yield tenants

        gateways = GaugeMetricFamily(
            "gantry_gateways", "Gateways, by phase and runtime.", labels=["phase", "runtime"]
        )
        found: dict[tuple[str, str], int] = {}
        rows = Gateway.objects.values_list("status__phase", "spec__runtime").annotate(n=Count("id"))
        for phase, runtime, n in rows:
            key = (phase if phase in PHASES else "Pending", runtime or "local")
            found[key] = found.get(key, 0) + n
        for (phase, runtime), n in sorted(found.items()):
            gateways.add_metric([phase, runtime], n)
        yield gateways

        running = GaugeMetricFamily(
            "gantry_operations_running", "Gateway operations (reconciles, rollbacks) under way."
        )
        running.add_metric(
            [], GatewayOperation.objects.filter(state=GatewayOperation.State.RUNNING).count()
        )
        yield running

        streams = GaugeMetricFamily(
            "gantry_xds_streams", "Envoy replicas with an open xDS stream, by server.",
            labels=["server"],
        )  # fmt: skip
        for server, n in (
            ReplicaConnection.objects.filter(connected=True)
            .values_list("server")
            .annotate(n=Count("id"))
            .order_by("server")
        ):
            streams.add_metric([server or "unknown"], n)
        yield streams

        replicas = GaugeMetricFamily(
            "gantry_replicas_running",
            "Envoy replicas running now (metered runs), by runtime and size.",
            labels=["runtime", "size"],
        )
        for runtime, size, n in (
            ReplicaIncarnation.objects.filter(stopped_at__isnull=True)
            .values_list("runtime", "size")
            .annotate(n=Count("id"))
            .order_by("runtime", "size")
        ):
            replicas.add_metric([runtime, size], n)
        yield replicas

    def _traffic(self):
        labels = ["tenant", "gateway", "replica", "port"]
        responses = CounterMetricFamily(
            "gantry_gateway_responses",
            "Responses a live replica's listener sent, by status class (downstream_rq_Nxx).",
            labels=[*labels, "class"],
        )
        received = CounterMetricFamily(
            "gantry_gateway_received_bytes",
            "Bytes a live replica's listener received on its connections.",
            labels=labels,
        )
        sent = CounterMetricFamily(
            "gantry_gateway_sent_bytes",
            "Bytes a live replica's listener sent on its connections.",
            labels=labels,
        )
        newest = UsageSample.objects.filter(
            incarnation=OuterRef("incarnation"), port=OuterRef("port")
        ).order_by("-seq")
        latest = (
            UsageSample.objects.filter(
                incarnation__stopped_at__isnull=True, incarnation__tenant__isnull=False
            )
            .filter(seq=Subquery(newest.values("seq")[:1]))
            .values_list(
                "incarnation__tenant_slug",
                "incarnation__gateway_name",
                "incarnation__node_id",
                "port",
                *COUNTERS,
            )  # fmt: skip
            .order_by("incarnation__tenant_slug", "incarnation__gateway_name", "port")
        )
        for tenant, gateway, node_id, port, *values in latest:
            counters = dict(zip(COUNTERS, values, strict=True))
            key = [tenant, gateway, _replica(node_id), str(port)]
            for kind in CLASSES:
                responses.add_metric([*key, kind], counters[f"responses_{kind}"])
            received.add_metric(key, counters["bytes_received"])
            sent.add_metric(key, counters["bytes_sent"])
        yield from (responses, received, sent)


def _allowed(request: HttpRequest) -> bool | None:
    """True: let in; False: credentials that are not enough; None: no credentials."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        expected = settings.GANTRY_METRICS_TOKEN
        given = header.removeprefix("Bearer ").strip()
        return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())
    user = request.user
    if user.is_authenticated:
        return user.is_active and user.is_staff
    return None


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    allowed = _allowed(request)
    if allowed is None:
        response = HttpResponse(
            "metrics need the scrape token (Authorization: Bearer …) or a staff sign-in\n",
            status=401, content_type="text/plain",
        )  # fmt: skip
        response["WWW-Authenticate"] = 'Bearer realm="gantry-metrics"'
        return response
    if not allowed:
        return HttpResponse("not allowed to read the platform's metrics\n", status=403,
                            content_type="text/plain")  # fmt: skip
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE)
