"""Validation of every spec: one place, used by the API, the console and the commands.

Errors name the JSON path of the offending value (``spec.listeners[1].port``). One module per
resource; the names other modules import are re-exported here.
"""

from gateways.validation.backends import BackendSpecSerializer, validate_backend_spec
from gateways.validation.certificates import (
    CertificateSpecSerializer,
    CheckedCertificate,
    validate_certificate,
)
from gateways.validation.consumers import (
    ConsumerSpecSerializer,
    CredentialSerializer,
    validate_consumer_spec,
    validate_credential,
)
from gateways.validation.dubbo_routes import DubboRouteSpecSerializer, validate_dubbo_route_spec
from gateways.validation.gateways import RUNTIMES, GatewaySpecSerializer, validate_gateway_spec
from gateways.validation.grpc_routes import GRPCRouteSpecSerializer, validate_grpc_route_spec
from gateways.validation.routes import RouteSpecSerializer, validate_route_spec
from gateways.validation.stream_routes import (
    TCPRouteSpecSerializer,
    TLSRouteSpecSerializer,
    validate_tcp_route_spec,
    validate_tls_route_spec,
)

__all__ = [
    "RUNTIMES",
    "BackendSpecSerializer",
    "CertificateSpecSerializer",
    "CheckedCertificate",
    "ConsumerSpecSerializer",
    "CredentialSerializer",
    "DubboRouteSpecSerializer",
    "GRPCRouteSpecSerializer",
    "GatewaySpecSerializer",
    "RouteSpecSerializer",
    "TCPRouteSpecSerializer",
    "TLSRouteSpecSerializer",
    "validate_backend_spec",
    "validate_certificate",
    "validate_consumer_spec",
    "validate_credential",
    "validate_dubbo_route_spec",
    "validate_gateway_spec",
    "validate_grpc_route_spec",
    "validate_route_spec",
    "validate_tcp_route_spec",
    "validate_tls_route_spec",
]
