"""BackendTrafficPolicy rateLimit (type Global) → Envoy's ``ratelimit`` filter asking the
platform's rate limit service (``provisioning.ratelimit``), which counts in Redis for every
replica of the gateway.

Each rule of a route becomes one of the route's ``rate_limits``: its actions make one
descriptor whose entries say whose count it is (``scope``: the route rule, or the policy when
the rule is ``shared``), which rule, the limit itself (``limit``: ``<requests>/<Unit>``, read by
the service, so it needs no config of its own), then one entry per client selector. A request
that fails a selector makes no descriptor for that rule, so the rule does not count it; a
source CIDR is checked by the service (an ``expect`` entry after the masked address).

Failing open and failing closed are two filters (stages 0 and 1): a route's rules carry the
stage of its policy's ``failClosed``, so each filter asks only for its own routes' rules. The
domain is the gateway (``<tenant>/<gateway>``) and every call carries the gateway's token."""

from provisioning.ir.types import GatewayIR, RateLimitSelector, RateLimitService, Route
from provisioning.ratelimit.limits import EXPECT_KEY, LIMIT_KEY
from provisioning.ratelimit.tokens import HEADER
from provisioning.translate.types import CLUSTER, HTTP_PROTOCOL_OPTIONS, duration

FILTER = "envoy.filters.http.ratelimit"
RATE_LIMIT = "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit"
CLUSTER_NAME = "platform/ratelimit"
OPEN, CLOSED = 0, 1
STREAMS_PER_CONNECTION = 8


def _filter(ir: GatewayIR, service: RateLimitService, stage: int) -> dict:
    config = {
        "@type": RATE_LIMIT,
        "domain": ir.name,
        "stage": stage,
        "timeout": duration(service.timeout_ms),
        "failure_mode_deny": stage == CLOSED,
        "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
        "rate_limited_as_resource_exhausted": True,  # gRPC clients get RESOURCE_EXHAUSTED
        "rate_limit_service": {
            "grpc_service": {
                "envoy_grpc": {"cluster_name": CLUSTER_NAME},
                "timeout": duration(service.timeout_ms),
                "initial_metadata": [{"key": HEADER, "value": service.token}],
            },
            "transport_api_version": "V3",
        },
        "stat_prefix": "global_rate_limit",
    }
    if stage == CLOSED:
        config["status_on_error"] = {"code": "ServiceUnavailable"}
    name = FILTER if stage == OPEN else f"{FILTER}.fail-closed"
    return {"name": name, "typed_config": config}


def _stages(routes: list[Route]) -> set[int]:
    return {CLOSED if r.global_rate_limit.fail_closed else OPEN
            for r in routes if r.global_rate_limit is not None}  # fmt: skip


def http_filters(ir: GatewayIR, routes: list[Route]) -> tuple[dict, ...]:
    stages = _stages(routes)
    if not stages:
        return ()
    if ir.rate_limit_service is None:
        raise ValueError("global rate limits need the platform's rate limit service")
    return tuple(_filter(ir, ir.rate_limit_service, stage) for stage in sorted(stages))


def cluster(ir: GatewayIR, routes: list[Route]) -> dict | None:
    """The platform's rate limit service, when a route of the gateway has a global limit."""
    service = ir.rate_limit_service
    if service is None or not _stages(routes):
        return None
    by_name = any(c.isalpha() for c in service.host) and ":" not in service.host
    address = {"socket_address": {"address": service.host, "port_value": service.port}}
    return {
        "@type": CLUSTER,
        "name": CLUSTER_NAME,
        "type": "STRICT_DNS" if by_name else "STATIC",
        "connect_timeout": "0.250s",
        "load_assignment": {"cluster_name": CLUSTER_NAME,
                            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_PROTOCOL_OPTIONS,
                # A few streams per connection: Envoy opens more connections as calls
                # overlap, which spreads them over the service's processes and pods (both
                # balance connections, not calls).
                "explicit_http_config": {"http2_protocol_options": {
                    "max_concurrent_streams": STREAMS_PER_CONNECTION}},
            }
        },
    }  # fmt: skip


def _key(key: str, value: str) -> dict:
    return {"generic_key": {"descriptor_key": key, "descriptor_value": value}}


def _selector(key: str, selector: RateLimitSelector) -> list[dict]:
    if selector.kind == "cidr":
        address, length = selector.prefix
        mask = {"v6_prefix_mask_len": length} if ":" in address else {
            "v4_prefix_mask_len": length}  # fmt: skip
        actions = [{"masked_remote_address": mask}, _key(EXPECT_KEY, f"{address}/{length}")]
        if selector.match == "Distinct":
            actions.append({"remote_address": {}})  # a count per client address
        return actions
    if selector.match == "Distinct":
        return [{"request_headers": {"header_name": selector.name, "descriptor_key": key}}]
    matcher = ({"safe_regex": {"regex": selector.value}} if selector.match == "RegularExpression"
               else {"exact": selector.value})  # fmt: skip
    return [{"header_value_match": {
        "descriptor_key": key, "descriptor_value": "1", "expect_match": not selector.invert,
        "headers": [{"name": selector.name, "string_match": matcher}],
    }}]  # fmt: skip


def scope_of(route: Route, policy: str, shared: bool) -> str:
    """Whose count: the policy's (shared), else the route rule's (every match of one rule
    shares it, as Envoy Gateway counts per route)."""
    if shared:
        return f"policy/{policy}"
    name, _, _ = route.name.partition("/match/")
    return name


def route_config(route: Route, envoy: dict) -> None:
    limit = route.global_rate_limit
    if limit is None or "route" not in envoy:
        return
    stage = CLOSED if limit.fail_closed else OPEN
    rate_limits = []
    for index, rule in enumerate(limit.rules):
        actions = [
            _key("scope", scope_of(route, limit.policy, rule.shared)),
            _key("rule", str(index)),
            _key(LIMIT_KEY, f"{rule.rule.requests}/{rule.unit}"),
        ]
        for position, selector in enumerate(rule.rule.selectors):
            actions += _selector(f"selector-{position}", selector)
        rate_limits.append({"stage": stage, "actions": actions})
    envoy["route"]["rate_limits"] = rate_limits
