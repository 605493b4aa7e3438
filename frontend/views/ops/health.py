"""The platform health page: workers, queue depth, xDS servers, local agents, failures. The
broker probes are bounded (``provisioning.platform_health``): the page renders fast when the
broker is down."""

from django.shortcuts import render

from frontend.ops_access import operator_required, ops_context
from provisioning import platform_health as health


@operator_required
def platform_health(request):
    broker = health.broker_state()
    context = ops_context(
        "frontend:ops-health", broker=broker, workers=health.worker_state(broker),
        xds_servers=health.xds_servers(), agents=health.local_agents(),
        failures=health.failed_operations(), ping_timeout=health.PING_TIMEOUT,
    )  # fmt: skip
    return render(request, "frontend/ops/health.html", context)
