"""Protobuf message types of the extensions the policy translators use.

The xDS server turns compiled resources into protobuf messages with the default descriptor
pool, where a type is known once its generated module has been imported (the server's own list
is ``provisioning.xds.resources.MESSAGE_MODULES``). Importing these with the translators means
any process that can compile a policy can also encode it for Envoy; they belong in that list
too, which is kept with the xDS server.
"""

import importlib

POLICY_MESSAGE_MODULES = (
    "envoy.extensions.http.early_header_mutation.header_mutation.v3.header_mutation_pb2",
    "envoy.extensions.filters.http.api_key_auth.v3.api_key_auth_pb2",
    "envoy.extensions.filters.http.basic_auth.v3.basic_auth_pb2",
    "envoy.extensions.filters.http.fault.v3.fault_pb2",
    "envoy.extensions.filters.http.cors.v3.cors_pb2",
    "envoy.extensions.filters.http.rbac.v3.rbac_pb2",
    "envoy.extensions.filters.http.jwt_authn.v3.config_pb2",
    "envoy.extensions.access_loggers.filters.cel.v3.cel_pb2",
    "envoy.extensions.filters.http.ext_authz.v3.ext_authz_pb2",
    "envoy.extensions.filters.http.header_mutation.v3.header_mutation_pb2",
    "envoy.extensions.filters.http.local_ratelimit.v3.local_rate_limit_pb2",
    "envoy.extensions.retry.host.previous_hosts.v3.previous_hosts_pb2",
    "envoy.extensions.filters.network.connection_limit.v3.connection_limit_pb2",
)

for _module in POLICY_MESSAGE_MODULES:
    importlib.import_module(_module)
