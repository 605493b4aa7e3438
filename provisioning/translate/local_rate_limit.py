"""BackendTrafficPolicy rateLimit (type Local) → Envoy's local_ratelimit filter, enabled per
route with its own token bucket: past the limit, requests answer 429."""

from provisioning.ir.types import GatewayIR, Route
from provisioning.translate.types import LOCAL_RATE_LIMIT, duration, per_route

FILTER = "envoy.filters.http.local_ratelimit"
STAT_PREFIX = "http_local_rate_limiter"


def _always(runtime_key: str) -> dict:
    """100% of requests (a fresh dict each time: shared ones print as YAML anchors)."""
    return {"default_value": {"numerator": 100, "denominator": "HUNDRED"},
            "runtime_key": runtime_key}  # fmt: skip


def http_filter(ir: GatewayIR, routes: list[Route]) -> dict | None:
    if not any(route.rate_limit for route in routes):
        return None
    config = {"@type": LOCAL_RATE_LIMIT, "stat_prefix": STAT_PREFIX}
    return {"name": FILTER, "disabled": True, "typed_config": config}


def route_config(route: Route, envoy: dict) -> None:
    limit = route.rate_limit
    if limit is None or "route" not in envoy:
        return
    config = {
        "@type": LOCAL_RATE_LIMIT,
        "stat_prefix": STAT_PREFIX,
        "token_bucket": {"max_tokens": limit.requests, "tokens_per_fill": limit.requests,
                         "fill_interval": duration(limit.interval_ms)},
        "filter_enabled": _always("local_rate_limit_enabled"),
        "filter_enforced": _always("local_rate_limit_enforced"),
    }  # fmt: skip
    envoy.setdefault("typed_per_filter_config", {})[FILTER] = per_route(config)
