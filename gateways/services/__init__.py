"""Every write to the tenant-facing resources, one function per use case, used by the API, the
console and the management commands alike. Each validates, checks the plan's quotas, locks the
rows it changes, checks the caller's resourceVersion, writes and audits, in one transaction.
"""

from gateways.services.backends import (
    create_backend,
    delete_backend,
    patch_backend_spec,
    replace_backend_spec,
)
from gateways.services.certificates import (
    create_certificate,
    delete_certificate,
    patch_certificate,
    replace_certificate,
)
from gateways.services.consumers import (
    create_consumer,
    create_credential,
    delete_consumer,
    delete_credential,
    patch_consumer_spec,
    replace_consumer_spec,
)
from gateways.services.gateways import (
    accepted_status,
    create_gateway,
    delete_gateway,
    patch_gateway_spec,
    replace_gateway_spec,
    snapshot,
)
from gateways.services.policies import (
    create_policy,
    delete_policy,
    patch_policy_spec,
    replace_policy_spec,
)
from gateways.services.routes import (
    create_dubbo_route,
    create_grpc_route,
    create_route,
    create_tcp_route,
    create_tls_route,
    delete_route,
    patch_route_spec,
    replace_route_spec,
)

__all__ = [
    "accepted_status",
    "create_backend",
    "create_consumer",
    "create_credential",
    "create_certificate",
    "create_gateway",
    "create_policy",
    "create_dubbo_route",
    "create_grpc_route",
    "create_tcp_route",
    "create_tls_route",
    "create_route",
    "delete_backend",
    "delete_consumer",
    "delete_credential",
    "delete_certificate",
    "delete_gateway",
    "delete_policy",
    "delete_route",
    "patch_backend_spec",
    "patch_consumer_spec",
    "patch_certificate",
    "patch_gateway_spec",
    "patch_policy_spec",
    "patch_route_spec",
    "replace_backend_spec",
    "replace_consumer_spec",
    "replace_certificate",
    "replace_gateway_spec",
    "replace_policy_spec",
    "replace_route_spec",
    "snapshot",
]
