"""Validation of BackendTrafficPolicy specs: Envoy Gateway's field names, defaults and limits.

Supported: ``retry``, ``timeout``, ``circuitBreaker``, ``healthCheck`` (active HTTP and TCP
checks and passive outlier detection), ``loadBalancer``, ``faultInjection`` and a local
``rateLimit`` (rules with client selectors by header, source CIDR or consumer). Every value
accepted here is one Envoy accepts (durations above zero where Envoy requires it, a prime
Maglev table size, abort statuses Envoy can send).
"""

import base64
import binascii
import re

from rest_framework import serializers

from gateways.validation.common import (
    LaterFieldsSerializer,
    cidr_field,
    header_name_field,
    pattern_field,
    text_field,
)
from gateways.validation.route_filters import path_problem
from gateways.validation.routes import regex_problem
from provisioning.ir.durations import to_ms
from provisioning.ir.policy_build import UNIT_MS as RATE_LIMIT_UNITS
from tenants.serializers import StrictSerializer, dns_label_field

DURATION = re.compile(r"(?:[0-9]{1,5}(?:h|m|s|ms)){1,4}")
DURATION_MESSAGE = "must be a Gateway API duration such as 10s, 500ms or 1m30s"
UINT32 = 4_294_967_295
RETRY_TRIGGERS = [
    "5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream",
    "retriable-status-codes", "cancelled", "deadline-exceeded", "internal",
    "resource-exhausted", "unavailable",
]  # fmt: skip
LB_TYPES = ["RoundRobin", "LeastRequest", "Random", "ConsistentHash"]
HASH_TYPES = ["SourceIP", "Header", "Cookie"]
MAX_MAGLEV_TABLE_SIZE = 5_000_011
COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")
MAX_RATE_LIMIT_RULES = 16
MAX_SELECTORS = 8


def duration_field(minimum_ms: int = 0, **kwargs) -> serializers.CharField:
    def at_least(value: str) -> None:
        if DURATION.fullmatch(value) and to_ms(value) < minimum_ms:
            raise serializers.ValidationError(f"must be at least {minimum_ms}ms")

    def check(value: str) -> None:
        if not DURATION.fullmatch(value):
            raise serializers.ValidationError(DURATION_MESSAGE, code="invalid")
        at_least(value)

    # Validators go in the constructor: serializers deep-copy fields by re-creating them.
    validators = [check, *kwargs.pop("validators", [])]
    return serializers.CharField(trim_whitespace=False, validators=validators, **kwargs)


def count_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=UINT32, **kwargs)


def percentage_field(**kwargs) -> serializers.FloatField:
    return serializers.FloatField(min_value=0, max_value=100, default=100, **kwargs)


class BackOffSerializer(StrictSerializer):
    baseInterval = duration_field(1, required=False)
    maxInterval = duration_field(1, required=False)

    def validate(self, data):
        base, most = data.get("baseInterval"), data.get("maxInterval")
        if base and most and to_ms(most) < to_ms(base):
            raise serializers.ValidationError({"maxInterval": [f"must be at least {base}"]})
        if most and not base:
            raise serializers.ValidationError({"baseInterval": ["required with maxInterval"]})
        return data


class PerRetrySerializer(StrictSerializer):
    timeout = duration_field(1, required=False)
    backOff = BackOffSerializer(required=False)


class RetryOnSerializer(StrictSerializer):
    triggers = serializers.ListField(
        child=serializers.ChoiceField(choices=RETRY_TRIGGERS), required=False, max_length=12
    )
    httpStatusCodes = serializers.ListField(
        child=serializers.IntegerField(min_value=100, max_value=599), required=False,
        max_length=16,
    )  # fmt: skip


class RetrySerializer(StrictSerializer):
    numRetries = serializers.IntegerField(min_value=0, max_value=10, default=2)
    perRetry = PerRetrySerializer(required=False)
    retryOn = RetryOnSerializer(required=False)


class TCPTimeoutSerializer(StrictSerializer):
    connectTimeout = duration_field(1, required=False)


class HTTPTimeoutSerializer(StrictSerializer):
    connectionIdleTimeout = duration_field(required=False)
    maxConnectionDuration = duration_field(required=False)
    requestTimeout = duration_field(required=False)


class TimeoutSerializer(StrictSerializer):
    tcp = TCPTimeoutSerializer(required=False)
    http = HTTPTimeoutSerializer(required=False)


class CircuitBreakerSerializer(StrictSerializer):
    maxConnections = count_field(default=1024)
    maxPendingRequests = count_field(default=1024)
    maxParallelRequests = count_field(default=1024)
    maxParallelRetries = count_field(default=1024)
    maxRequestsPerConnection = count_field(required=False)


class ActiveHTTPSerializer(StrictSerializer):
    path = serializers.CharField(max_length=1024, trim_whitespace=False)
    method = serializers.ChoiceField(
        choices=["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"],
        required=False,
    )
    expectedStatuses = serializers.ListField(
        child=serializers.IntegerField(min_value=100, max_value=599), required=False,
        allow_empty=False, max_length=16,
    )  # fmt: skip

    def validate_path(self, value: str) -> str:
        problem = path_problem(value.split("?", 1)[0])
        if problem:
            raise serializers.ValidationError(problem)
        return value


MAX_PAYLOAD = 1024  # bytes a TCP health check sends or looks for


class PayloadSerializer(StrictSerializer):
    """Bytes as ``text`` (sent as its UTF-8 bytes) or base64 ``binary``, per ``type``."""

    type = serializers.ChoiceField(choices=["Text", "Binary"])
    text = serializers.CharField(required=False, trim_whitespace=False, max_length=MAX_PAYLOAD)
    binary = serializers.CharField(required=False, trim_whitespace=False,
                                   max_length=4 * MAX_PAYLOAD // 3 + 4)  # fmt: skip

    def validate_binary(self, value: str) -> str:
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("must be base64 (RFC 4648)") from None
        if not decoded:
            raise serializers.ValidationError("must not be empty")
        if len(decoded) > MAX_PAYLOAD:
            raise serializers.ValidationError(f"must be at most {MAX_PAYLOAD} bytes")
        return value

    def validate(self, data):
        wanted = "text" if data["type"] == "Text" else "binary"
        other = "binary" if wanted == "text" else "text"
        if other in data:
            raise serializers.ValidationError({other: [f"not allowed with type {data['type']}"]})
        if not data.get(wanted):
            raise serializers.ValidationError({wanted: [f"required for type {data['type']}"]})
        if len(data.get("text", "").encode()) > MAX_PAYLOAD:
            raise serializers.ValidationError({"text": [f"must be at most {MAX_PAYLOAD} bytes"]})
        return data


class ActiveTCPSerializer(StrictSerializer):
    send = PayloadSerializer(required=False, help_text="written once connected")
    receive = PayloadSerializer(required=False, help_text="must then be found in the answer")


class ActiveGRPCSerializer(StrictSerializer):
    service = text_field(
        max_length=1024,
        required=False,
        help_text="the service name sent in grpc.health.v1 Health/Check; omitted: the server",
    )


class ActiveHealthCheckSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["HTTP", "TCP", "GRPC"])
    timeout = duration_field(1, default="1s")
    interval = duration_field(1, default="3s")
    unhealthyThreshold = serializers.IntegerField(min_value=1, max_value=UINT32, default=3)
    healthyThreshold = serializers.IntegerField(min_value=1, max_value=UINT32, default=1)
    http = ActiveHTTPSerializer(required=False)
    tcp = ActiveTCPSerializer(required=False, help_text="without send or receive: connect only")
    grpc = ActiveGRPCSerializer(
        required=False, help_text="type GRPC: the standard gRPC health service (HTTP/2 backends)"
    )

    def validate(self, data):
        kind = data["type"]
        wanted = {"HTTP": "http", "TCP": "tcp", "GRPC": "grpc"}[kind]
        for other in ("http", "tcp", "grpc"):
            if other != wanted and other in data:
                raise serializers.ValidationError({other: [f"not allowed with type {kind}"]})
        if kind == "HTTP" and "http" not in data:
            raise serializers.ValidationError({"http": ["required for type HTTP"]})
        return data


class PassiveHealthCheckSerializer(StrictSerializer):
    splitExternalLocalOriginErrors = serializers.BooleanField(default=False)
    interval = duration_field(1, default="3s")
    consecutiveLocalOriginFailures = count_field(default=5)
    consecutiveGatewayErrors = count_field(default=0)
    consecutive5XxErrors = count_field(default=5)
    baseEjectionTime = duration_field(1, default="30s")
    maxEjectionPercent = serializers.IntegerField(min_value=0, max_value=100, default=10)


class HealthCheckSerializer(StrictSerializer):
    active = ActiveHealthCheckSerializer(required=False)
    passive = PassiveHealthCheckSerializer(required=False)

    def validate(self, data):
        if not data:
            raise serializers.ValidationError("must set active, passive or both")
        return data


class HeaderHashSerializer(StrictSerializer):
    name = header_name_field()


class CookieHashSerializer(StrictSerializer):
    name = pattern_field(COOKIE_NAME, "must be a cookie name (RFC 6265 token characters)")
    ttl = duration_field(required=False)


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n**0.5) + 1))


class ConsistentHashSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=HASH_TYPES)
    header = HeaderHashSerializer(required=False)
    cookie = CookieHashSerializer(required=False)
    tableSize = serializers.IntegerField(min_value=2, max_value=MAX_MAGLEV_TABLE_SIZE,
                                         default=65537)  # fmt: skip

    def validate_tableSize(self, value: int) -> int:
        if not _is_prime(value):
            raise serializers.ValidationError("must be a prime number (Maglev)")
        return value

    def validate(self, data):
        wanted = {"Header": "header", "Cookie": "cookie"}.get(data["type"])
        errors = {
            field: [f"only for type {field.capitalize()}"]
            for field in ("header", "cookie")
            if field in data and field != wanted
        }
        if wanted and wanted not in data:
            errors[wanted] = [f"required for type {data['type']}"]
        if errors:
            raise serializers.ValidationError(errors)
        return data


class SlowStartSerializer(StrictSerializer):
    window = duration_field(1)


class LoadBalancerSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=LB_TYPES)
    consistentHash = ConsistentHashSerializer(required=False)
    slowStart = SlowStartSerializer(required=False)

    def validate(self, data):
        errors = {}
        if data["type"] == "ConsistentHash" and "consistentHash" not in data:
            errors["consistentHash"] = ["required for type ConsistentHash"]
        if data["type"] != "ConsistentHash" and "consistentHash" in data:
            errors["consistentHash"] = ["only for type ConsistentHash"]
        if "slowStart" in data and data["type"] not in ("RoundRobin", "LeastRequest"):
            errors["slowStart"] = ["only for types RoundRobin and LeastRequest"]
        if errors:
            raise serializers.ValidationError(errors)
        return data


class FaultDelaySerializer(StrictSerializer):
    fixedDelay = duration_field(1)
    percentage = percentage_field()


class FaultAbortSerializer(StrictSerializer):
    httpStatus = serializers.IntegerField(min_value=200, max_value=599, required=False)
    grpcStatus = serializers.IntegerField(min_value=0, max_value=16, required=False)
    percentage = percentage_field()

    def validate(self, data):
        if ("httpStatus" in data) == ("grpcStatus" in data):
            raise serializers.ValidationError("must set exactly one of httpStatus or grpcStatus")
        return data


class FaultInjectionSerializer(StrictSerializer):
    delay = FaultDelaySerializer(required=False)
    abort = FaultAbortSerializer(required=False)

    def validate(self, data):
        if not data:
            raise serializers.ValidationError("must set delay, abort or both")
        return data


class RateLimitValueSerializer(StrictSerializer):
    requests = serializers.IntegerField(min_value=1, max_value=UINT32)
    unit = serializers.ChoiceField(choices=list(RATE_LIMIT_UNITS))


class HeaderSelectorSerializer(StrictSerializer):
    name = header_name_field()
    type = serializers.ChoiceField(choices=["Exact", "RegularExpression", "Distinct"],
                                   default="Exact")  # fmt: skip
    value = text_field(required=False, max_length=1024)
    invert = serializers.BooleanField(default=False, help_text="select requests not matching")

    def validate(self, data):
        if data["type"] == "Distinct":
            if "value" in data:
                raise serializers.ValidationError({"value": ["must not be set for Distinct"]})
            if data["invert"]:
                raise serializers.ValidationError({"invert": ["must not be set for Distinct"]})
            return data
        if "value" not in data:
            raise serializers.ValidationError({"value": [f"required for type {data['type']}"]})
        problem = regex_problem(data["value"]) if data["type"] == "RegularExpression" else None
        if problem:
            raise serializers.ValidationError({"value": [problem]})
        return data


class SourceCIDRSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["Exact", "Distinct"], default="Exact")
    value = cidr_field()


class ConsumerSelectorSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["Exact", "Distinct"], default="Exact")
    name = dns_label_field(required=False, help_text="a consumer of the tenant (Exact)")

    def validate(self, data):
        if data["type"] == "Exact" and "name" not in data:
            raise serializers.ValidationError({"name": ["required for type Exact"]})
        if data["type"] == "Distinct" and "name" in data:
            raise serializers.ValidationError({"name": ["must not be set for Distinct"]})
        return data


class ClientSelectorSerializer(StrictSerializer):
    headers = HeaderSelectorSerializer(many=True, required=False, max_length=MAX_SELECTORS)
    sourceCIDR = SourceCIDRSerializer(required=False)
    consumer = ConsumerSelectorSerializer(
        required=False, help_text="Gantry: the consumer apiKeyAuth or basicAuth authenticated"
    )

    def validate(self, data):
        if not any(data.get(field) for field in ("headers", "sourceCIDR", "consumer")):
            raise serializers.ValidationError("must set headers, sourceCIDR or consumer")
        return data


class RateLimitRuleSerializer(LaterFieldsSerializer):
    later = ["cost", "shared"]
    clientSelectors = ClientSelectorSerializer(
        many=True, required=False, max_length=MAX_SELECTORS,
        help_text="all must match for the rule to count a request; none: every request",
    )  # fmt: skip
    limit = RateLimitValueSerializer()


class GlobalRateLimitRuleSerializer(RateLimitRuleSerializer):
    later = ["cost"]
    shared = serializers.BooleanField(
        required=False,
        help_text="one count for every route the policy applies to (default: one per route rule)",
    )


def _one_catch_all(rules):
    catch_all = [index for index, rule in enumerate(rules) if not rule.get("clientSelectors")]
    if len(catch_all) > 1:
        raise serializers.ValidationError({catch_all[1]: {"clientSelectors": [
            f"only one rule may have no clientSelectors (rules[{catch_all[0]}] has none)"
        ]}})  # fmt: skip
    return rules


class LocalRateLimitSerializer(StrictSerializer):
    rules = RateLimitRuleSerializer(many=True, allow_empty=False, max_length=MAX_RATE_LIMIT_RULES)

    def validate_rules(self, rules):
        return _one_catch_all(rules)


class GlobalRateLimitSerializer(StrictSerializer):
    rules = GlobalRateLimitRuleSerializer(
        many=True, allow_empty=False, max_length=MAX_RATE_LIMIT_RULES
    )


class RateLimitSerializer(StrictSerializer):
    type = serializers.ChoiceField(
        choices=["Local", "Global"],
        help_text="Local: each replica counts on its own; Global: all replicas share the counts",
    )
    local = LocalRateLimitSerializer(required=False)
    failClosed = serializers.BooleanField(
        required=False,
        help_text="Global: refuse requests (503) while the counts cannot be read; "
        "default: let them through",
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["global"] = GlobalRateLimitSerializer(required=False)  # a Python keyword
        return fields

    def validate(self, data):
        own = "local" if data["type"] == "Local" else "global"
        other = "global" if own == "local" else "local"
        errors = {}
        if own not in data:
            errors[own] = [f"required for type {data['type']}"]
        if other in data:
            errors[other] = [f"must not be set for type {data['type']}"]
        if "failClosed" in data and data["type"] == "Local":
            errors["failClosed"] = ["only for type Global (a local limit never fails)"]
        if errors:
            raise serializers.ValidationError(errors)
        return data


BACKEND_TRAFFIC_FEATURES = [
    "retry", "timeout", "circuitBreaker", "healthCheck", "loadBalancer", "faultInjection",
    "rateLimit",
]  # fmt: skip
# Envoy Gateway fields Gantry does not translate yet: named in the error instead of "unknown".
BACKEND_TRAFFIC_LATER = [
    "tcpKeepalive", "proxyProtocol", "compression", "dns", "http2", "connection",
    "responseOverride", "useClientProtocol", "mergeType", "requestBuffer", "telemetry",
]  # fmt: skip
