"""Validation of policies: Envoy Gateway's SecurityPolicy, BackendTrafficPolicy and
ClientTrafficPolicy specs.

``targetRefs`` name the policy's own gateway (``kind: Gateway``, optionally one listener by
``sectionName``) or routes of that gateway (``kind: HTTPRoute``, optionally one rule by its
``name`` in ``sectionName``). A route or rule that does not exist is not an error (the status
says so, as for backends); a listener that does not exist is, as in a route's ``parentRefs``.
Where Envoy Gateway names a Kubernetes Secret, Gantry names the tenant's consumers. Fields
Envoy Gateway has and Gantry does not translate yet are refused by name, never ignored.
"""

import re

from rest_framework import serializers

from config.errors import ValidationFailed
from gateways.validation.backend_traffic import (
    BACKEND_TRAFFIC_FEATURES,
    BACKEND_TRAFFIC_LATER,
    CircuitBreakerSerializer,
    FaultInjectionSerializer,
    HealthCheckSerializer,
    LoadBalancerSerializer,
    RateLimitSerializer,
    RetrySerializer,
    TimeoutSerializer,
)
from gateways.validation.client_traffic import (
    CLIENT_TRAFFIC_FEATURES,
    CLIENT_TRAFFIC_LATER,
    ClientIPDetectionSerializer,
    ClientTimeoutSerializer,
    ClientTLSSerializer,
    ConnectionSerializer,
    HeaderSettingsSerializer,
    HTTP2Serializer,
    PathSettingsSerializer,
    TCPKeepaliveSerializer,
)
from gateways.validation.common import (
    LaterFieldsSerializer,
    failed,
    header_name_field,
    plain,
    unique,
)
from gateways.validation.ext_auth import ExtAuthSerializer
from gateways.validation.oidc import OIDCSerializer
from gateways.validation.security import (
    AuthorizationSerializer,
    CORSSerializer,
    CredentialSourcesSerializer,
    JWTSerializer,
    principal_rules_problems,
)
from tenants.serializers import StrictSerializer, dns_label_field

GROUP = "gateway.networking.k8s.io"
KINDS = ["SecurityPolicy", "BackendTrafficPolicy", "ClientTrafficPolicy"]
LATER_KINDS: list[str] = []
MAX_TARGETS = 16
MAX_CONSUMERS = 64
SECURITY_FEATURES = [
    "apiKeyAuth", "basicAuth", "cors", "authorization", "jwt", "extAuth", "oidc",
]  # fmt: skip
SECURITY_LATER: list[str] = []
QUERY_PARAM = re.compile(r"[A-Za-z0-9\-._~!$'()*+,;:@]{1,256}")


class TargetRefSerializer(StrictSerializer):
    group = serializers.ChoiceField(choices=[GROUP], default=GROUP)
    kind = serializers.ChoiceField(choices=["Gateway", "HTTPRoute", "GRPCRoute"])
    name = dns_label_field()
    sectionName = dns_label_field(
        required=False,
        help_text="a Gateway's listener, or an HTTPRoute's or GRPCRoute's rule (by its name)",
    )

    def validate(self, data):
        gateway = self.context.get("gateway")
        listeners = self.context.get("listeners")
        section = data.get("sectionName")
        if data["kind"] == "Gateway" and gateway is not None and data["name"] != gateway:
            raise serializers.ValidationError(
                {"name": [f"must be the policy's own gateway ({gateway!r})"]}
            )
        missing = listeners is not None and section and section not in listeners
        if data["kind"] == "Gateway" and missing:
            raise serializers.ValidationError({"sectionName": [
                f"the gateway has no listener {section!r} "
                f"(it has: {', '.join(listeners) or 'none'})"
            ]})  # fmt: skip
        return data


def _target_key(ref: dict) -> tuple:
    return (ref["kind"], ref["name"], ref.get("sectionName"))


class PolicySpecSerializer(LaterFieldsSerializer):
    """What every policy kind has: its targets, and at least one of its ``features``."""

    targetRefs = TargetRefSerializer(many=True, allow_empty=False, max_length=MAX_TARGETS)
    features: list[str] = []

    def validate(self, data):
        if not any(feature in data for feature in self.features):
            raise serializers.ValidationError(
                f"must set at least one of {', '.join(self.features)}"
            )
        return data

    def validate_targetRefs(self, refs):
        errors, first = {}, {}
        for index, ref in enumerate(refs):
            key = _target_key(ref)
            if key in first:
                errors[index] = [f"duplicates targetRefs[{first[key]}]"]
            first.setdefault(key, index)
        if errors:
            raise serializers.ValidationError(errors)
        return refs


class ConsumerRefSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=["Consumer"], default="Consumer")
    name = dns_label_field(help_text="a consumer of the tenant")


def _unique_consumers(refs: list[dict]) -> list[dict]:
    return unique(refs, [ref["name"] for ref in refs], field="name")


class ExtractFromSerializer(CredentialSourcesSerializer):
    headers = serializers.ListField(child=header_name_field(), required=False, max_length=8)


class APIKeyAuthSerializer(StrictSerializer):
    credentialRefs = ConsumerRefSerializer(
        many=True, allow_empty=False, max_length=MAX_CONSUMERS,
        help_text="consumers whose API keys are accepted",
    )  # fmt: skip
    extractFrom = ExtractFromSerializer(many=True, allow_empty=False, max_length=8)
    forwardClientIDHeader = header_name_field(
        required=False, help_text="where the consumer's name goes; default x-gantry-consumer"
    )
    sanitize = serializers.BooleanField(default=False, help_text="remove the key upstream")

    def validate_credentialRefs(self, refs):
        return _unique_consumers(refs)


class BasicAuthSerializer(StrictSerializer):
    users = ConsumerRefSerializer(
        many=True, allow_empty=False, max_length=MAX_CONSUMERS,
        help_text="consumers whose basic-auth password is accepted",
    )  # fmt: skip
    forwardUsernameHeader = header_name_field(
        required=False, help_text="where the consumer's name goes; default x-gantry-consumer"
    )

    def validate_users(self, refs):
        return _unique_consumers(refs)


class SecurityPolicySpecSerializer(PolicySpecSerializer):
    later = SECURITY_LATER
    features = SECURITY_FEATURES
    apiKeyAuth = APIKeyAuthSerializer(required=False)
    basicAuth = BasicAuthSerializer(required=False)
    cors = CORSSerializer(required=False)
    authorization = AuthorizationSerializer(required=False)
    jwt = JWTSerializer(required=False)
    extAuth = ExtAuthSerializer(required=False)
    oidc = OIDCSerializer(required=False)

    def validate(self, data):
        data = super().validate(data)
        problems = principal_rules_problems(data)
        if problems:
            raise serializers.ValidationError(problems)
        return data


class BackendTrafficPolicySpecSerializer(PolicySpecSerializer):
    later = BACKEND_TRAFFIC_LATER
    features = BACKEND_TRAFFIC_FEATURES
    retry = RetrySerializer(required=False)
    timeout = TimeoutSerializer(required=False)
    circuitBreaker = CircuitBreakerSerializer(required=False)
    healthCheck = HealthCheckSerializer(required=False)
    loadBalancer = LoadBalancerSerializer(required=False)
    faultInjection = FaultInjectionSerializer(required=False)
    rateLimit = RateLimitSerializer(required=False)


class ClientTrafficPolicySpecSerializer(PolicySpecSerializer):
    """Downstream connections: targets the gateway or its listeners only."""

    later = CLIENT_TRAFFIC_LATER
    features = CLIENT_TRAFFIC_FEATURES
    timeout = ClientTimeoutSerializer(required=False)
    connection = ConnectionSerializer(required=False)
    clientIPDetection = ClientIPDetectionSerializer(required=False)
    tls = ClientTLSSerializer(required=False)
    http2 = HTTP2Serializer(required=False)
    headers = HeaderSettingsSerializer(required=False)
    path = PathSettingsSerializer(required=False)
    tcpKeepalive = TCPKeepaliveSerializer(required=False)

    def validate_targetRefs(self, refs):
        errors = {
            index: {"kind": ["a ClientTrafficPolicy targets a Gateway or its listeners"]}
            for index, ref in enumerate(refs)
            if ref["kind"] != "Gateway"
        }
        if errors:
            raise serializers.ValidationError(errors)
        return super().validate_targetRefs(refs)


SPEC_SERIALIZERS = {
    "SecurityPolicy": SecurityPolicySpecSerializer,
    "BackendTrafficPolicy": BackendTrafficPolicySpecSerializer,
    "ClientTrafficPolicy": ClientTrafficPolicySpecSerializer,
}


def validate_policy_kind(kind) -> str:
    if kind in LATER_KINDS:
        raise ValidationFailed.one("kind", f"{kind} is not supported yet")
    if kind not in KINDS:
        raise ValidationFailed.one("kind", f"must be one of {', '.join(KINDS)}")
    return kind


def validate_policy_spec(kind: str, raw, gateway: str, listeners: list[str]) -> dict:
    """The spec with Envoy Gateway's defaults, or ValidationFailed naming each bad field."""
    if not isinstance(raw, dict):
        raise ValidationFailed.one("spec", "must be an object")
    context = {"gateway": gateway, "listeners": listeners}
    serializer = SPEC_SERIALIZERS[kind](data=raw, context=context)
    if not serializer.is_valid():
        raise failed(serializer.errors)
    return plain(serializer.validated_data)
