"""BackendTrafficPolicy rateLimit (type Local) → Envoy's local_ratelimit filter, enabled per
route with its own token buckets: past a limit, requests answer 429 with ``x-ratelimit-*``
headers (draft 03: limit, remaining, reset).

A rule without client selectors is the route's default bucket (every request counts); each
rule with selectors is a descriptor, whose entries come from rate limit actions in the filter's
own per-route config: the rule's index (so two rules never share a bucket), then one entry per
selector. A request that fails a selector produces no descriptor for that rule, so the rule
does not count it. Distinct selectors leave the entry's value empty (a wildcard): Envoy keeps a
bucket per value seen, up to ``MAX_DYNAMIC_DESCRIPTORS`` per rule (least recently used first
out). Without a default rule the default bucket is never consumed.
"""

from provisioning.ir.types import GatewayIR, RateLimitRule, RateLimitSelector, Route
from provisioning.translate.types import LOCAL_RATE_LIMIT, duration, per_route

FILTER = "envoy.filters.http.local_ratelimit"
STAT_PREFIX = "http_local_rate_limiter"
MAX_DYNAMIC_DESCRIPTORS = 10_000
UINT32 = 4_294_967_295


def _always(runtime_key: str) -> dict:
    """100% of requests (a fresh dict each time: shared ones print as YAML anchors)."""
    return {"default_value": {"numerator": 100, "denominator": "HUNDRED"},
            "runtime_key": runtime_key}  # fmt: skip


def http_filter(ir: GatewayIR, routes: list[Route]) -> dict | None:
    if not any(route.rate_limit for route in routes):
        return None
    config = {"@type": LOCAL_RATE_LIMIT, "stat_prefix": STAT_PREFIX}
    return {"name": FILTER, "disabled": True, "typed_config": config}


def _bucket(requests: int, interval_ms: int) -> dict:
    return {"max_tokens": requests, "tokens_per_fill": requests,
            "fill_interval": duration(interval_ms)}  # fmt: skip


def _header_matcher(selector: RateLimitSelector) -> dict:
    if selector.match == "RegularExpression":
        match = {"safe_regex": {"regex": selector.value}}
    else:
        match = {"exact": selector.value}
    return {"name": selector.name, "string_match": match}


def _selector(key: str, selector: RateLimitSelector) -> tuple[list[dict], list[dict]]:
    """(actions, descriptor entries) for one selector; entry keys are unique in the rule."""
    if selector.kind == "cidr":
        address, length = selector.prefix
        mask = {"v6_prefix_mask_len": length} if ":" in address else {
            "v4_prefix_mask_len": length}  # fmt: skip
        actions = [{"masked_remote_address": mask}]
        entries = [{"key": "masked_remote_address", "value": f"{address}/{length}"}]
        if selector.match == "Distinct":
            actions.append({"remote_address": {}})
            entries.append({"key": "remote_address"})  # wildcard: a bucket per client
        return actions, entries
    if selector.match == "Distinct":
        action = {"request_headers": {"header_name": selector.name, "descriptor_key": key}}
        return [action], [{"key": key}]
    action = {"header_value_match": {
        "descriptor_key": key, "descriptor_value": "1",
        "expect_match": not selector.invert, "headers": [_header_matcher(selector)],
    }}  # fmt: skip
    return [action], [{"key": key, "value": "1"}]


def _rule(index: int, rule: RateLimitRule) -> tuple[dict, dict]:
    """(rate limit actions, descriptor) of a rule with selectors."""
    actions = [{"generic_key": {"descriptor_key": "rule", "descriptor_value": str(index)}}]
    entries = [{"key": "rule", "value": str(index)}]
    for position, selector in enumerate(rule.selectors):
        more_actions, more_entries = _selector(f"selector-{position}", selector)
        actions += more_actions
        entries += more_entries
    descriptor = {"entries": entries, "token_bucket": _bucket(rule.requests, rule.interval_ms)}
    return {"actions": actions}, descriptor


def route_config(route: Route, envoy: dict) -> None:
    limit = route.rate_limit
    if limit is None or "route" not in envoy:
        return
    default = next((rule for rule in limit.rules if not rule.selectors), None)
    config = {
        "@type": LOCAL_RATE_LIMIT,
        "stat_prefix": STAT_PREFIX,
        # Envoy requires a default bucket: without a rule for every request, one never empty.
        "token_bucket": _bucket(*(default.requests, default.interval_ms) if default
                                else (UINT32, 1000)),
        "filter_enabled": _always("local_rate_limit_enabled"),
        "filter_enforced": _always("local_rate_limit_enforced"),
        "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
    }  # fmt: skip
    selective = [(index, rule) for index, rule in enumerate(limit.rules) if rule.selectors]
    if selective:
        pairs = [_rule(index, rule) for index, rule in selective]
        config["rate_limits"] = [actions for actions, _ in pairs]
        config["descriptors"] = [descriptor for _, descriptor in pairs]
        config["always_consume_default_token_bucket"] = default is not None
        if any(s.match == "Distinct" for _, rule in selective for s in rule.selectors):
            config["max_dynamic_descriptors"] = MAX_DYNAMIC_DESCRIPTORS
    envoy.setdefault("typed_per_filter_config", {})[FILTER] = per_route(config)


def without_headers(envoy: dict) -> dict:
    """``envoy`` (a route) answering without ``x-ratelimit-*`` headers (ClientTrafficPolicy
    ``headers.disableRateLimitHeaders`` of its listener)."""
    wrapped = envoy.get("typed_per_filter_config", {}).get(FILTER)
    if wrapped:
        wrapped["config"].pop("enable_x_ratelimit_headers", None)
    return envoy
