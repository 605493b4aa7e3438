"""BackendTrafficPolicy faultInjection → Envoy's fault filter, enabled per route."""

from provisioning.ir.types import GatewayIR, Route
from provisioning.translate.types import HTTP_FAULT, duration, per_route, percent

FILTER = "envoy.filters.http.fault"


def http_filter(ir: GatewayIR, routes: list[Route]) -> dict | None:
    if not any(route.fault for route in routes):
        return None
    return {"name": FILTER, "disabled": True, "typed_config": {"@type": HTTP_FAULT}}


def route_config(route: Route, envoy: dict) -> None:
    fault = route.fault
    if fault is None or "route" not in envoy:
        return
    config: dict = {"@type": HTTP_FAULT}
    if fault.delay_ms is not None:
        config["delay"] = {"fixed_delay": duration(fault.delay_ms),
                           "percentage": percent(fault.delay_percent)}  # fmt: skip
    if fault.abort_http_status is not None or fault.abort_grpc_status is not None:
        abort: dict = {"percentage": percent(fault.abort_percent)}
        if fault.abort_http_status is not None:
            abort["http_status"] = fault.abort_http_status
        else:
            abort["grpc_status"] = fault.abort_grpc_status
        config["abort"] = abort
    envoy.setdefault("typed_per_filter_config", {})[FILTER] = per_route(config)
