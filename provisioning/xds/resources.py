"""Compiled resources (protobuf-JSON dicts with ``@type``) → protobuf ``Any`` for xDS responses.

Conversion happens once per snapshot, not once per connected Envoy, and a dict that does not
parse (a translator bug) fails where the snapshot is stored, not in the middle of a stream.
Versions are content hashes, so the same config compiled by two processes (two xDS servers side
by side, or one restarted) has the same versions, and a reconnecting Envoy that already holds a
resource is not sent it again.
"""

import hashlib
import importlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf import any_pb2, descriptor_pool, json_format, message, message_factory

from provisioning.translate import Resources
from provisioning.translate.types import (
    CLUSTER,
    CLUSTER_LOAD_ASSIGNMENT,
    LISTENER,
    ROUTE_CONFIGURATION,
    SECRET,
    VIRTUAL_HOST,
)
from provisioning.xds import route_bytes

# The generated modules of every type compiled resources name in "@type" (top level and nested
# typed_config): importing them registers those types in the default descriptor pool, where
# ParseDict and message_class look them up. A translator using a new extension adds it here.
MESSAGE_MODULES = (
    "envoy.config.cluster.v3.cluster_pb2",
    "envoy.config.endpoint.v3.endpoint_pb2",
    "envoy.config.listener.v3.listener_pb2",
    "envoy.config.route.v3.route_pb2",
    "envoy.extensions.filters.http.router.v3.router_pb2",
    "envoy.extensions.filters.listener.tls_inspector.v3.tls_inspector_pb2",
    "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2",
    "envoy.extensions.transport_sockets.tls.v3.tls_pb2",
    "envoy.extensions.transport_sockets.tls.v3.secret_pb2",
    "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
    "envoy.extensions.network.dns_resolver.cares.v3.cares_dns_resolver_pb2",
    # Policies
    "envoy.extensions.http.early_header_mutation.header_mutation.v3.header_mutation_pb2",
    "envoy.extensions.filters.http.api_key_auth.v3.api_key_auth_pb2",
    "envoy.extensions.filters.http.basic_auth.v3.basic_auth_pb2",
    "envoy.extensions.filters.http.fault.v3.fault_pb2",
    "envoy.extensions.filters.http.cors.v3.cors_pb2",
    "envoy.extensions.filters.http.rbac.v3.rbac_pb2",
    "envoy.extensions.filters.http.jwt_authn.v3.config_pb2",
    "envoy.extensions.access_loggers.filters.cel.v3.cel_pb2",
    "envoy.extensions.access_loggers.file.v3.file_pb2",
    "envoy.extensions.filters.http.ext_authz.v3.ext_authz_pb2",
    "envoy.extensions.filters.http.oauth2.v3.oauth_pb2",
    "envoy.extensions.filters.http.header_mutation.v3.header_mutation_pb2",
    "envoy.extensions.filters.http.local_ratelimit.v3.local_rate_limit_pb2",
    "envoy.extensions.filters.http.ratelimit.v3.rate_limit_pb2",
    "envoy.extensions.retry.host.previous_hosts.v3.previous_hosts_pb2",
    "envoy.extensions.filters.network.connection_limit.v3.connection_limit_pb2",
    # gRPC
    "envoy.extensions.filters.http.grpc_web.v3.grpc_web_pb2",
    "envoy.extensions.filters.http.grpc_json_transcoder.v3.transcoder_pb2",
    # TCPRoute and TLSRoute
    "envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2",
    # Dubbo
    "envoy.extensions.filters.network.dubbo_proxy.v3.dubbo_proxy_pb2",
    "envoy.extensions.filters.network.dubbo_proxy.router.v3.router_pb2",
)
for _module in MESSAGE_MODULES:
    importlib.import_module(_module)

TYPE_URL_PREFIX = "type.googleapis.com/"

# Envoy's ADS ordering: clusters, then the endpoints of EDS clusters (discovered Kubernetes
# Services; other clusters carry theirs inline), then the SDS secrets listeners name (oidc's),
# then the listeners that use them, route configurations after the listeners that ask for them,
# and (Delta only) the virtual hosts of those route configurations. Secrets, like route
# configurations, are asked for by name; virtual hosts by their route configuration's name.
TYPE_ORDER = (CLUSTER, CLUSTER_LOAD_ASSIGNMENT, SECRET, LISTENER, ROUTE_CONFIGURATION, VIRTUAL_HOST)
# Types where a request naming nothing means "everything" (xDS "legacy wildcard"); route
# configurations are always asked for by name, by the listeners that use them. Envoy's VHDS
# over ADS subscribes to virtual hosts naming nothing (its namespace matching happens on its
# side: each virtual host goes to the route configuration its name starts with).
WILDCARD_TYPES = (CLUSTER, LISTENER, VIRTUAL_HOST)


class ResourceError(ValueError):
    """A compiled resource that cannot become a protobuf message (unknown type, bad field)."""


@dataclass(frozen=True)
class EncodedResource:
    """One xDS resource, ready to send: its name, content version and ``Any``."""

    name: str
    version: str
    body: any_pb2.Any
    # The dict it was encoded from: the next snapshot of the gateway reuses this encoding for
    # an equal dict (comparing is far cheaper than encoding again).
    source: dict | None = field(default=None, compare=False, repr=False)


def message_class(type_url: str) -> type[message.Message]:
    """The generated message class for a type URL, from the default descriptor pool."""
    full_name = type_url.removeprefix(TYPE_URL_PREFIX)
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError as error:
        raise ResourceError(f"unknown resource type {type_url!r}") from error
    return message_factory.GetMessageClass(descriptor)


def to_message(resource: dict) -> message.Message:
    """A protobuf message from a dict with ``@type``; unknown fields are errors, not dropped."""
    if "@type" not in resource:
        raise ResourceError(f"resource {resource.get('name')!r} has no @type")
    body = {key: value for key, value in resource.items() if key != "@type"}
    parsed = message_class(resource["@type"])()
    try:
        json_format.ParseDict(body, parsed)
    except json_format.ParseError as error:
        raise ResourceError(f"{resource['@type']} {resource.get('name')!r}: {error}") from error
    return parsed


def to_any(resource: dict) -> any_pb2.Any:
    """``resource`` packed; route configurations and virtual hosts route by route
    (``route_bytes``: a changed virtual host parses only its changed routes)."""
    type_url = resource.get("@type")
    if type_url in route_bytes.TYPES:
        try:
            return any_pb2.Any(type_url=type_url, value=route_bytes.encode(resource))
        except route_bytes.ParseError as error:
            raise ResourceError(f"{type_url} {resource.get('name')!r}: {error}") from error
    packed = any_pb2.Any()
    packed.Pack(to_message(resource))
    return packed


class _Packed:
    """Recently packed resources by content: a change usually leaves most of a gateway's
    resources as they were, and parsing JSON into protobuf is most of the cost of encoding
    (the warm validator and the xDS server encode every revision). Bounded by count and by
    the JSON size of what it keeps; an entry is only ever read, never changed."""

    MAX_ENTRIES = 4096
    MAX_BYTES = 64 * 1024 * 1024
    MAX_ENTRY_BYTES = 1024 * 1024

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[any_pb2.Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, size: int, resource: dict) -> any_pb2.Any:
        """``resource`` packed; ``key``: the SHA-256 of its canonical JSON, ``size`` its length."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit[0]
        packed = to_any(resource)
        if size > self.MAX_ENTRY_BYTES:
            return packed
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (packed, size)
                self._bytes += size
            while len(self._entries) > self.MAX_ENTRIES or self._bytes > self.MAX_BYTES:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
        return packed


_packed = _Packed()


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value) -> str:
    """A short stable hash of JSON-able data (key order does not matter)."""
    return hashlib.sha256(_canonical(value).encode()).hexdigest()[:16]


def all_resources(resources: Resources) -> list[dict]:
    return [*resources.clusters, *resources.secrets, *resources.listeners, *resources.routes]


def content_version(resources: Resources) -> str:
    """The version of a whole config: changes exactly when some resource changes."""
    return content_hash(sorted(content_hash(r) for r in all_resources(resources)))


def vhds_namespace(name: str) -> str:
    """The route configuration a virtual host resource belongs to (Envoy's namespace of a
    VHDS resource name: everything before its last ``/``)."""
    return name.rpartition("/")[0]


def split_route_configuration(route: dict) -> tuple[dict, list[dict]]:
    """A route configuration as Delta xDS sends it: the configuration without its virtual hosts,
    which it takes over VHDS (on the same ADS stream), and each virtual host as a resource of its
    own named ``<route configuration>/<domain>`` (a virtual host's domains are unique within its
    configuration, and Envoy removes one by that name). A one-route change then sends one
    virtual host, not every route of the listener; Envoy matches hosts by their domains, so
    the split changes no request's route."""
    stub = {key: value for key, value in route.items() if key != "virtual_hosts"}
    stub["vhds"] = {"config_source": {"ads": {}, "resource_api_version": "V3"}}
    vhosts = [
        {**vhost, "@type": VIRTUAL_HOST, "name": f"{route['name']}/{vhost['domains'][0]}"}
        for vhost in route.get("virtual_hosts", ())
    ]
    return stub, vhosts


def encode(
    resources: Resources,
    assignments: tuple[dict, ...] = (),
    *,
    vhds: bool = True,
    previous: Mapping[str, Mapping[str, EncodedResource]] | None = None,
) -> dict[str, dict[str, EncodedResource]]:
    """Type URL → resource name → encoded resource, every type of TYPE_ORDER present;
    ``assignments``: the ClusterLoadAssignments of the EDS clusters (not part of a revision).
    ``vhds``: route configurations split into virtual hosts (Delta xDS); without it, whole
    (state of the world, which cannot carry VHDS). ``previous``: the gateway's last encoding,
    whose resources are reused where the dict is equal (a one-route change of a 10,000-route
    gateway encodes one virtual host)."""
    previous = previous or {}
    encoded: dict[str, dict[str, EncodedResource]] = {type_url: {} for type_url in TYPE_ORDER}
    routes: list[dict] = []
    for route in resources.routes:
        if vhds:
            stub, vhosts = split_route_configuration(route)
            routes += [stub, *vhosts]
        else:
            routes.append(route)
    everything = [*resources.clusters, *resources.secrets, *resources.listeners, *routes]
    for resource in [*everything, *assignments]:
        type_url = resource.get("@type", "")
        if type_url not in encoded:
            raise ResourceError(f"{type_url!r} is not a type the xDS server serves")
        name = resource.get("name") or resource.get("cluster_name")
        if name in encoded[type_url]:
            raise ResourceError(f"two {type_url} resources named {name!r}")
        before = previous.get(type_url, {}).get(name)
        if before is not None and before.source == resource:
            encoded[type_url][name] = before
            continue
        canonical = _canonical(resource)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        packed = _packed.get(digest, len(canonical), resource)
        encoded[type_url][name] = EncodedResource(name, digest[:16], packed, resource)
    return encoded
