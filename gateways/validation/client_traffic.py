"""Validation of ClientTrafficPolicy specs: Envoy Gateway's field names, defaults and limits.

A ClientTrafficPolicy configures how Envoy treats downstream connections, so it targets the
policy's own gateway or one of its listeners, never routes. Supported: ``timeout.http``,
``connection`` (connection and buffer limits), ``clientIPDetection.xForwardedFor``, ``tls``
(versions, ciphers, curves, ALPN), ``http2`` and two of ``headers`` (``disableRateLimitHeaders``,
``preserveXRequestID``), ``path`` and ``tcpKeepalive``. Other Envoy Gateway fields are refused
by name. Every value accepted here is one Envoy accepts: cipher and curve names are those
Envoy's TLS library knows, sizes are within Envoy's bounds.
"""

from rest_framework import serializers

from gateways.validation.backend_traffic import DURATION, UINT32, duration_field
from gateways.validation.common import LaterFieldsSerializer, unique
from provisioning.ir.durations import to_ms
from provisioning.ir.quantities import QUANTITY, to_bytes
from tenants.serializers import StrictSerializer

CLIENT_TRAFFIC_FEATURES = [
    "timeout", "connection", "clientIPDetection", "tls", "http2", "headers", "path",
    "tcpKeepalive",
]  # fmt: skip
CLIENT_TRAFFIC_LATER = [
    "enableProxyProtocol", "proxyProtocol",
    "earlyRequestHeaders", "http1", "http3", "healthCheck", "targetSelectors",
]  # fmt: skip
TLS_VERSIONS = ["Auto", "1.0", "1.1", "1.2", "1.3"]
# What "Auto" means on a server (Envoy's defaults): 1.2 at least, 1.3 at most.
AUTO_MIN, AUTO_MAX = "1.2", "1.3"
# TLS 1.0–1.2 cipher suites by the names BoringSSL (Envoy's TLS library) knows, PSK suites
# left out (Gantry configures no pre-shared keys). TLS 1.3 suites are not configurable.
CIPHERS = [
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA",
]  # fmt: skip
ECDH_CURVES = ["X25519", "P-256", "P-384", "P-521"]
ALPN_PROTOCOLS = ["h2", "http/1.1", "http/1.0"]
QUANTITY_MESSAGE = "must be a size such as 32768, 32Ki or 1Mi"
H2_WINDOW = (65_535, 2_147_483_647)  # Envoy's bounds for HTTP/2 window sizes


def quantity_field(minimum: int, maximum: int, **kwargs) -> serializers.CharField:
    def check(value: str) -> None:
        if not QUANTITY.fullmatch(value):
            raise serializers.ValidationError(QUANTITY_MESSAGE, code="invalid")
        if not minimum <= to_bytes(value) <= maximum:
            raise serializers.ValidationError(
                f"must be between {minimum} and {maximum} bytes", code="invalid"
            )

    return serializers.CharField(trim_whitespace=False, validators=[check], **kwargs)


def version_rank(version: str, auto: str) -> tuple[int, ...]:
    return tuple(int(part) for part in (auto if version == "Auto" else version).split("."))


def _some(data: dict, fields: str) -> dict:
    if not data:
        raise serializers.ValidationError(f"must set at least one of {fields}")
    return data


class HTTPClientTimeoutSerializer(StrictSerializer):
    requestReceivedTimeout = duration_field(
        required=False, help_text="the whole request must arrive within it (0s: no limit)"
    )
    idleTimeout = duration_field(
        required=False, help_text="closes connections without requests for it (0s: never)"
    )

    def validate(self, data):
        return _some(data, "requestReceivedTimeout, idleTimeout")


class ClientTimeoutSerializer(LaterFieldsSerializer):
    later = ["tcp"]
    http = HTTPClientTimeoutSerializer()


class ConnectionLimitSerializer(StrictSerializer):
    value = serializers.IntegerField(min_value=1, max_value=UINT32)
    closeDelay = duration_field(required=False, help_text="wait before closing a connection "
                                "over the limit")  # fmt: skip


class ConnectionSerializer(LaterFieldsSerializer):
    later = ["socketBufferLimit", "maxAcceptPerSocketEvent"]
    connectionLimit = ConnectionLimitSerializer(required=False)
    bufferLimit = quantity_field(1, UINT32, required=False)

    def validate(self, data):
        return _some(data, "connectionLimit, bufferLimit")


class XForwardedForSerializer(LaterFieldsSerializer):
    later = ["trustedCIDRs"]
    numTrustedHops = serializers.IntegerField(min_value=0, max_value=UINT32)


class ClientIPDetectionSerializer(LaterFieldsSerializer):
    later = ["customHeader"]
    xForwardedFor = XForwardedForSerializer()


def _unique(values: list[str]) -> list[str]:
    return unique(values, values)


class ClientTLSSerializer(LaterFieldsSerializer):
    later = ["clientValidation", "signatureAlgorithms", "session"]
    minVersion = serializers.ChoiceField(choices=TLS_VERSIONS, required=False)
    maxVersion = serializers.ChoiceField(choices=TLS_VERSIONS, required=False)
    ciphers = serializers.ListField(
        child=serializers.ChoiceField(choices=CIPHERS), required=False, allow_empty=False,
        max_length=len(CIPHERS), help_text="TLS 1.0–1.2 suites, in order of preference",
    )  # fmt: skip
    ecdhCurves = serializers.ListField(
        child=serializers.ChoiceField(choices=ECDH_CURVES), required=False, allow_empty=False,
        max_length=len(ECDH_CURVES),
    )  # fmt: skip
    alpnProtocols = serializers.ListField(
        child=serializers.ChoiceField(choices=ALPN_PROTOCOLS), required=False,
        allow_empty=False, max_length=len(ALPN_PROTOCOLS),
    )  # fmt: skip

    def validate_ciphers(self, value):
        return _unique(value)

    def validate_ecdhCurves(self, value):
        return _unique(value)

    def validate_alpnProtocols(self, value):
        return _unique(value)

    def validate(self, data):
        _some(data, "minVersion, maxVersion, ciphers, ecdhCurves, alpnProtocols")
        low = version_rank(data.get("minVersion", "Auto"), AUTO_MIN)
        high = version_rank(data.get("maxVersion", "Auto"), AUTO_MAX)
        if low > high:
            raise serializers.ValidationError({"minVersion": [
                f"must not be above maxVersion (TLS {'.'.join(map(str, high))})"]})  # fmt: skip
        return data


class HTTP2Serializer(LaterFieldsSerializer):
    later = ["onInvalidMessage"]
    initialStreamWindowSize = quantity_field(*H2_WINDOW, required=False)
    initialConnectionWindowSize = quantity_field(*H2_WINDOW, required=False)
    maxConcurrentStreams = serializers.IntegerField(
        min_value=1, max_value=2_147_483_647, required=False
    )

    def validate(self, data):
        return _some(data, ", ".join(self.fields))


class HeaderSettingsSerializer(LaterFieldsSerializer):
    later = [
        "enableEnvoyHeaders", "withUnderscoresAction", "xForwardedClientCert", "requestID",
        "earlyRequestHeaders", "lateResponseHeaders",
    ]  # fmt: skip
    disableRateLimitHeaders = serializers.BooleanField(
        required=False, help_text="leave out the x-ratelimit-* headers of local rate limits "
        "(429s included)",
    )  # fmt: skip
    preserveXRequestID = serializers.BooleanField(
        required=False, help_text="keep the client's x-request-id instead of replacing it"
    )

    def validate(self, data):
        return _some(data, ", ".join(self.fields))


class PathSettingsSerializer(StrictSerializer):
    escapedSlashesAction = serializers.ChoiceField(
        choices=["KeepUnchanged", "RejectRequest", "UnescapeAndForward", "UnescapeAndRedirect"],
        required=False, help_text="%2F and %5C in paths (default UnescapeAndRedirect)",
    )  # fmt: skip
    disableMergeSlashes = serializers.BooleanField(
        required=False, help_text="keep adjacent slashes (default: merged)"
    )

    def validate(self, data):
        return _some(data, ", ".join(self.fields))


# Linux's bounds for TCP keepalive (tcp(7)): a value outside them fails the listener's bind.
KEEPALIVE_PROBES = (1, 127)
KEEPALIVE_SECONDS = (1, 32_767)


def keepalive_seconds_field(**kwargs) -> serializers.CharField:
    low, high = KEEPALIVE_SECONDS

    def whole_seconds(value: str) -> None:
        if DURATION.fullmatch(value):
            ms = to_ms(value)
            if ms % 1000 or not low <= ms // 1000 <= high:
                raise serializers.ValidationError(
                    f"must be whole seconds, from {low}s to {high}s", code="invalid"
                )

    return duration_field(required=False, validators=[whole_seconds], **kwargs)


class TCPKeepaliveSerializer(StrictSerializer):
    """Empty: keepalive on, with the system's timings."""

    probes = serializers.IntegerField(
        min_value=KEEPALIVE_PROBES[0], max_value=KEEPALIVE_PROBES[1], required=False,
        help_text="unanswered probes before the connection is dropped",
    )  # fmt: skip
    idleTime = keepalive_seconds_field(help_text="idle time before the first probe")
    interval = keepalive_seconds_field(help_text="time between probes")
