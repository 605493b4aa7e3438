"""BackendTrafficPolicy's route-level features: retries, consistent-hash keys, and failing
closed when a policy cannot be translated."""

from provisioning.ir.types import Route
from provisioning.translate.types import PREVIOUS_HOSTS, duration


def retry(route: Route, envoy: dict) -> None:
    spec = route.retry
    if spec is None or "route" not in envoy:
        return
    policy = envoy["route"].setdefault("retry_policy", {})  # may hold backendRequest's timeout
    policy["retry_on"] = ",".join(spec.retry_on)
    policy["num_retries"] = spec.num_retries
    if spec.status_codes:
        policy["retriable_status_codes"] = list(spec.status_codes)
    if spec.per_try_timeout_ms is not None:
        policy["per_try_timeout"] = duration(spec.per_try_timeout_ms)
    if spec.backoff_base_ms is not None:
        back_off = {"base_interval": duration(spec.backoff_base_ms)}
        if spec.backoff_max_ms is not None:
            back_off["max_interval"] = duration(spec.backoff_max_ms)
        policy["retry_back_off"] = back_off
    # Retry on another endpoint than the ones that already failed (as Envoy Gateway does).
    policy["retry_host_predicate"] = [{"name": "envoy.retry_host_predicates.previous_hosts",
                                       "typed_config": {"@type": PREVIOUS_HOSTS}}]  # fmt: skip
    policy["host_selection_retry_max_attempts"] = 5


def hash_policy(route: Route, envoy: dict) -> None:
    spec = route.hash_policy
    if spec is None or "route" not in envoy:
        return
    if spec.kind == "Header":
        entry: dict = {"header": {"header_name": spec.name}}
    elif spec.kind == "Cookie":
        cookie: dict = {"name": spec.name}
        if spec.ttl_ms is not None:
            cookie["ttl"] = duration(spec.ttl_ms)
        entry = {"cookie": cookie}
    else:
        entry = {"connection_properties": {"source_ip": True}}
    envoy["route"]["hash_policy"] = [entry]


def fail_closed(route: Route, envoy: dict) -> None:
    """A policy that cannot be translated: answer 500, never let the request through."""
    if route.policy_error is None:
        return
    for key in ("route", "redirect", "typed_per_filter_config"):
        envoy.pop(key, None)
    envoy["direct_response"] = {"status": 500}
