"""API representation of certificates, backends and routes: name, spec, read-only status.

Request bodies are the gateway's (``GatewayCreateSerializer``/``GatewayReplaceSerializer``: a
name and a spec validated whole by the service); the ``*Doc`` serializers document them.
"""

from rest_framework import serializers

from gateways.serializers import ConditionSerializer
from gateways.validation import (
    BackendSpecSerializer,
    CertificateSpecSerializer,
    ConsumerSpecSerializer,
    DubboRouteSpecSerializer,
    GRPCRouteSpecSerializer,
    RouteSpecSerializer,
    TCPRouteSpecSerializer,
    TLSRouteSpecSerializer,
)
from gateways.validation.backend_traffic import (
    CircuitBreakerSerializer,
    FaultInjectionSerializer,
    HealthCheckSerializer,
    HTTPTimeoutSerializer,
    LoadBalancerSerializer,
    RateLimitSerializer,
    RetrySerializer,
    TimeoutSerializer,
)
from gateways.validation.client_traffic import (
    ClientIPDetectionSerializer,
    ClientTLSSerializer,
    ConnectionSerializer,
    HeaderSettingsSerializer,
    HTTP2Serializer,
    HTTPClientTimeoutSerializer,
    PathSettingsSerializer,
    TCPKeepaliveSerializer,
)
from gateways.validation.ext_auth import ExtAuthSerializer
from gateways.validation.oidc import OIDCSerializer
from gateways.validation.policies import (
    KINDS,
    APIKeyAuthSerializer,
    BasicAuthSerializer,
    TargetRefSerializer,
)
from gateways.validation.security import AuthorizationSerializer, CORSSerializer, JWTSerializer
from tenants.serializers import StrictSerializer, dns_label_field


class _ResourceSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    generation = serializers.IntegerField(read_only=True)
    resourceVersion = serializers.CharField(source="resource_version", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)


class _StatusSerializer(serializers.Serializer):
    observedGeneration = serializers.IntegerField()
    conditions = ConditionSerializer(many=True)


def _docs(name: str, spec_serializer) -> tuple[type, type]:
    """Documentation of the create and the PUT/PATCH bodies of one resource."""
    create = type(
        f"{name}CreateDoc",
        (StrictSerializer,),
        {"name": dns_label_field(), "spec": spec_serializer()},
    )
    replace = type(
        f"{name}ReplaceDoc",
        (StrictSerializer,),
        {"spec": spec_serializer(), "resourceVersion": serializers.CharField(required=False)},
    )
    return create, replace


class CertificateSpecOutSerializer(serializers.Serializer):
    certificatePem = serializers.CharField(help_text="the PEM chain, leaf first")


class CertificateStatusSerializer(_StatusSerializer):
    dnsNames = serializers.ListField(
        child=serializers.CharField(), help_text="DNS names of the leaf (subjectAltName)"
    )
    subject = serializers.CharField(help_text="RFC 4514")
    issuer = serializers.CharField(help_text="RFC 4514")
    notBefore = serializers.DateTimeField()
    notAfter = serializers.DateTimeField()
    fingerprintSha256 = serializers.CharField(help_text="SHA-256 of the leaf's DER, hex")
    hasPrivateKey = serializers.BooleanField(
        help_text="a key is stored (it is never returned); without one, CA use only"
    )


class CertificateSerializer(_ResourceSerializer):
    spec = CertificateSpecOutSerializer(read_only=True)
    status = CertificateStatusSerializer(read_only=True)


class BackendStatusSerializer(_StatusSerializer):
    pass


class BackendSerializer(_ResourceSerializer):
    spec = BackendSpecSerializer(read_only=True)
    status = BackendStatusSerializer(read_only=True)


class RouteStatusSerializer(_StatusSerializer):
    attachedListeners = serializers.ListField(
        child=serializers.CharField(), help_text="listeners of the gateway the route attaches to"
    )


class RouteSerializer(_ResourceSerializer):
    gateway = serializers.CharField(source="gateway.name", read_only=True)
    spec = RouteSpecSerializer(read_only=True)
    status = RouteStatusSerializer(read_only=True)


CertificateCreateDoc, CertificateReplaceDoc = _docs("Certificate", CertificateSpecSerializer)
BackendCreateDoc, BackendReplaceDoc = _docs("Backend", BackendSpecSerializer)
RouteCreateDoc, RouteReplaceDoc = _docs("Route", RouteSpecSerializer)


class GRPCRouteSerializer(_ResourceSerializer):
    gateway = serializers.CharField(source="gateway.name", read_only=True)
    spec = GRPCRouteSpecSerializer(read_only=True)
    status = RouteStatusSerializer(read_only=True)


GRPCRouteCreateDoc, GRPCRouteReplaceDoc = _docs("GRPCRoute", GRPCRouteSpecSerializer)


class TCPRouteSerializer(_ResourceSerializer):
    gateway = serializers.CharField(source="gateway.name", read_only=True)
    spec = TCPRouteSpecSerializer(read_only=True)
    status = RouteStatusSerializer(read_only=True)


class TLSRouteSerializer(_ResourceSerializer):
    gateway = serializers.CharField(source="gateway.name", read_only=True)
    spec = TLSRouteSpecSerializer(read_only=True)
    status = RouteStatusSerializer(read_only=True)


TCPRouteCreateDoc, TCPRouteReplaceDoc = _docs("TCPRoute", TCPRouteSpecSerializer)
TLSRouteCreateDoc, TLSRouteReplaceDoc = _docs("TLSRoute", TLSRouteSpecSerializer)


class DubboRouteSerializer(_ResourceSerializer):
    gateway = serializers.CharField(source="gateway.name", read_only=True)
    spec = DubboRouteSpecSerializer(read_only=True)
    status = RouteStatusSerializer(read_only=True)


DubboRouteCreateDoc, DubboRouteReplaceDoc = _docs("DubboRoute", DubboRouteSpecSerializer)


class ConsumerSerializer(_ResourceSerializer):
    spec = ConsumerSpecSerializer(read_only=True)
    status = _StatusSerializer(read_only=True)


class CredentialOutSerializer(serializers.Serializer):
    """A credential as lists show it: never the key or the password."""

    id = serializers.CharField(
        source="key_id", read_only=True, help_text="gak_… (an API key's start) or gba_…"
    )
    type = serializers.CharField(read_only=True)
    username = serializers.SerializerMethodField(help_text="basic-auth: the user; else null")
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)

    def get_username(self, credential) -> str | None:
        return credential.username or None


class NewCredentialSerializer(CredentialOutSerializer):
    key = serializers.CharField(
        allow_null=True, help_text="api-key: the key, in this response and never again; else null"
    )


ConsumerCreateDoc, ConsumerReplaceDoc = _docs("Consumer", ConsumerSpecSerializer)


class AncestorSerializer(serializers.Serializer):
    ancestorRef = serializers.DictField(help_text="the targetRef this entry is about")
    conditions = ConditionSerializer(many=True)


class PolicyStatusSerializer(_StatusSerializer):
    ancestors = AncestorSerializer(many=True, help_text="one entry per targetRef")


class PolicyHTTPTimeoutSerializer(HTTPTimeoutSerializer, HTTPClientTimeoutSerializer):
    """BackendTrafficPolicy's ``timeout.http`` fields and ClientTrafficPolicy's."""


class PolicyTimeoutSerializer(TimeoutSerializer):
    http = PolicyHTTPTimeoutSerializer(required=False)


class PolicySpecSerializer(StrictSerializer):
    """A policy's spec: ``targetRefs`` and the features of its kind (SecurityPolicy: apiKeyAuth,
    basicAuth, cors, authorization, jwt, extAuth, oidc; ClientTrafficPolicy:
    timeout.http.requestReceivedTimeout and idleTimeout, connection, clientIPDetection, tls,
    http2, headers, path, tcpKeepalive; BackendTrafficPolicy: the others).
    Documentation only: the service validates."""

    targetRefs = TargetRefSerializer(many=True)
    apiKeyAuth = APIKeyAuthSerializer(required=False)
    basicAuth = BasicAuthSerializer(required=False)
    cors = CORSSerializer(required=False)
    authorization = AuthorizationSerializer(required=False)
    jwt = JWTSerializer(required=False)
    extAuth = ExtAuthSerializer(required=False)
    oidc = OIDCSerializer(required=False)
    retry = RetrySerializer(required=False)
    timeout = PolicyTimeoutSerializer(required=False)
    circuitBreaker = CircuitBreakerSerializer(required=False)
    healthCheck = HealthCheckSerializer(required=False)
    loadBalancer = LoadBalancerSerializer(required=False)
    faultInjection = FaultInjectionSerializer(required=False)
    rateLimit = RateLimitSerializer(required=False)
    connection = ConnectionSerializer(required=False)
    clientIPDetection = ClientIPDetectionSerializer(required=False)
    tls = ClientTLSSerializer(required=False)
    http2 = HTTP2Serializer(required=False)
    headers = HeaderSettingsSerializer(required=False)
    path = PathSettingsSerializer(required=False)
    tcpKeepalive = TCPKeepaliveSerializer(required=False)


class PolicySerializer(_ResourceSerializer):
    gateway = serializers.CharField(source="gateway.name", read_only=True)
    kind = serializers.ChoiceField(choices=KINDS, read_only=True)
    spec = PolicySpecSerializer(read_only=True)
    status = PolicyStatusSerializer(read_only=True)


class PolicyCreateSerializer(StrictSerializer):
    """The body of a create. ``kind`` and ``spec`` are validated by the service."""

    name = dns_label_field()
    kind = serializers.JSONField()
    spec = serializers.JSONField()


class PolicyReplaceSerializer(StrictSerializer):
    name = serializers.CharField(required=False, help_text="must match the URL if given")
    kind = serializers.JSONField(required=False, help_text="must be the policy's kind if given")
    spec = serializers.JSONField()
    resourceVersion = serializers.CharField(required=False)


class PolicyCreateDoc(StrictSerializer):
    name = dns_label_field()
    kind = serializers.ChoiceField(choices=KINDS)
    spec = PolicySpecSerializer()


class PolicyReplaceDoc(StrictSerializer):
    kind = serializers.ChoiceField(choices=KINDS, required=False)
    spec = PolicySpecSerializer()
    resourceVersion = serializers.CharField(required=False)
