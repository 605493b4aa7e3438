"""BackendTrafficPolicy's cluster-level features on a backend's policy variant: load
balancing, connection timeouts, circuit breaking, active health checks, outlier detection."""

from provisioning.ir.types import ActiveHealthCheck, ClusterSettings, OutlierDetection
from provisioning.translate.types import HTTP_PROTOCOL_OPTIONS, duration

_LB = {"RoundRobin": "ROUND_ROBIN", "LeastRequest": "LEAST_REQUEST", "Random": "RANDOM",
       "ConsistentHash": "MAGLEV"}  # fmt: skip
_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def apply(settings: ClusterSettings, envoy: dict) -> None:
    envoy["lb_policy"] = _LB[settings.lb_policy]
    if settings.maglev_table_size is not None:
        envoy["maglev_lb_config"] = {"table_size": settings.maglev_table_size}
    if settings.slow_start_ms is not None:
        key = "round_robin_lb_config" if settings.lb_policy == "RoundRobin" else (
            "least_request_lb_config")  # fmt: skip
        window = {"slow_start_window": duration(settings.slow_start_ms)}
        envoy[key] = {"slow_start_config": window}
    if settings.connect_timeout_ms is not None:
        envoy["connect_timeout"] = duration(settings.connect_timeout_ms)
    _connection_options(settings, envoy)
    breaker = settings.circuit_breaker
    if breaker is not None:
        envoy["circuit_breakers"] = {"thresholds": [{
            "priority": "DEFAULT", "max_connections": breaker.max_connections,
            "max_pending_requests": breaker.max_pending_requests,
            "max_requests": breaker.max_requests, "max_retries": breaker.max_retries,
        }]}  # fmt: skip
    if settings.active_health_check is not None:
        envoy["health_checks"] = [_health_check(settings.active_health_check)]
    if settings.outlier_detection is not None:
        envoy["outlier_detection"] = _outlier_detection(settings.outlier_detection)


def _connection_options(settings: ClusterSettings, envoy: dict) -> None:
    common: dict = {}
    if settings.idle_timeout_ms is not None:
        common["idle_timeout"] = duration(settings.idle_timeout_ms)
    if settings.max_connection_duration_ms is not None:
        common["max_connection_duration"] = duration(settings.max_connection_duration_ms)
    breaker = settings.circuit_breaker
    if breaker is not None and breaker.max_requests_per_connection is not None:
        common["max_requests_per_connection"] = breaker.max_requests_per_connection
    if not common:
        return
    options = envoy.setdefault("typed_extension_protocol_options", {}).setdefault(
        _OPTIONS,
        {"@type": HTTP_PROTOCOL_OPTIONS, "explicit_http_config": {"http_protocol_options": {}}},
    )
    options["common_http_protocol_options"] = common


def _checker(check: ActiveHealthCheck) -> tuple[str, dict]:
    if check.protocol == "GRPC":  # grpc.health.v1.Health/Check over the cluster's HTTP/2
        grpc: dict = {}
        if check.grpc_service:
            grpc["service_name"] = check.grpc_service
        return "grpc_health_check", grpc
    if check.protocol == "TCP":  # no payloads: a connect-only check
        # Payloads as hex ``text``: Envoy's TCP checker sends nothing for a ``binary`` one.
        tcp: dict = {}
        if check.send:
            tcp["send"] = {"text": check.send.hex().upper()}
        if check.receive:
            tcp["receive"] = [{"text": check.receive.hex().upper()}]
        return "tcp_health_check", tcp
    http: dict = {"path": check.path}
    if check.method:
        http["method"] = check.method
    if check.expected_statuses:
        http["expected_statuses"] = [{"start": code, "end": code + 1}
                                     for code in sorted(set(check.expected_statuses))]  # fmt: skip
    return "http_health_check", http


def _health_check(check: ActiveHealthCheck) -> dict:
    field, checker = _checker(check)
    return {
        "timeout": duration(check.timeout_ms),
        "interval": duration(check.interval_ms),
        # Envoy checks a cluster that has had no traffic yet only every 60 s by default: an
        # endpoint going unhealthy before the first request would still get it. ``interval``
        # is the interval, traffic or not.
        "no_traffic_interval": duration(check.interval_ms),
        "unhealthy_threshold": check.unhealthy_threshold,
        "healthy_threshold": check.healthy_threshold,
        field: checker,
    }


def _outlier_detection(spec: OutlierDetection) -> dict:
    detection: dict = {
        "interval": duration(spec.interval_ms),
        "base_ejection_time": duration(spec.base_ejection_ms),
        "max_ejection_percent": spec.max_ejection_percent,
        "split_external_local_origin_errors": spec.split_external_local_origin_errors,
    }
    # A count of 0 turns that detector off (Envoy would otherwise use its own default).
    detectors = (
        (spec.consecutive_5xx, "5xx"),
        (spec.consecutive_gateway_errors, "gateway_failure"),
        (spec.consecutive_local_origin_failures, "local_origin_failure"),
    )
    for count, field in detectors:
        if count:
            detection[f"consecutive_{field}"] = count
        detection[f"enforcing_consecutive_{field}"] = 100 if count else 0
    return detection
