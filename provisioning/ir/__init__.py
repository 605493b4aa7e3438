"""The intermediate representation: what a gateway should be, with no Django and no Envoy.

``build.gateway_ir`` turns a gateway's desired state (plain dicts) into these frozen
dataclasses; ``provisioning.translate`` turns them into Envoy resources.
"""

from provisioning.ir.types import (
    Cluster,
    DirectResponse,
    Endpoint,
    GatewayIR,
    HeaderMatch,
    HeaderOps,
    Listener,
    Mirror,
    PathMatch,
    Redirect,
    Rewrite,
    Route,
    TLSCertificate,
    VirtualHost,
    WeightedBackend,
)

__all__ = [
    "Cluster",
    "DirectResponse",
    "Endpoint",
    "GatewayIR",
    "HeaderMatch",
    "HeaderOps",
    "Listener",
    "Mirror",
    "PathMatch",
    "Redirect",
    "Rewrite",
    "Route",
    "TLSCertificate",
    "VirtualHost",
    "WeightedBackend",
]
