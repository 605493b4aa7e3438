"""IR → Envoy xDS resources (as protobuf JSON dicts with ``@type``). Pure functions."""

from dataclasses import dataclass

from provisioning.ir.types import GatewayIR, Listener
from provisioning.translate import (
    api_key_auth,
    authorization,
    basic_auth,
    cors,
    dubbo,
    ext_authz,
    fault,
    global_rate_limit,
    grpc_json,
    grpc_web,
    jwt_authn,
    local_rate_limit,
    oauth2,
    stateful_session,
)
from provisioning.translate.access_log import DEFAULT_PATH
from provisioning.translate.clusters import envoy_cluster
from provisioning.translate.listeners import envoy_listener
from provisioning.translate.routes import route_configuration
from provisioning.translate.streams import stream_listener

# gRPC-Web (listeners with GRPCRoutes) first, so every filter after it sees a gRPC call; then
# policies' HTTP filters, in the order requests meet them (Envoy Gateway's), before the router.
# Each is disabled by default and enabled by the routes its policies apply to.
# A translator gives one filter (or None), or a tuple of them (ext_authz: one per policy).
HTTP_FILTERS = (
    grpc_web.http_filter, fault.http_filter, cors.http_filter, oauth2.http_filters,
    ext_authz.http_filters,
    api_key_auth.http_filter, basic_auth.http_filter, jwt_authn.http_filter,
    authorization.http_filter,
    local_rate_limit.http_filter, global_rate_limit.http_filters, stateful_session.http_filter,
    grpc_json.http_filter,
)  # fmt: skip


def _http_filters(ir: GatewayIR, routes: list) -> tuple[dict, ...]:
    """``routes``: the listener's ``filter_routes`` (translators read only those fields)."""
    filters: list[dict] = []
    for make in HTTP_FILTERS:
        made = make(ir, routes)
        filters.extend(made if isinstance(made, tuple) else [made] if made else [])
    return tuple(filters)


@dataclass(frozen=True)
class Resources:
    listeners: tuple[dict, ...]
    routes: tuple[dict, ...]
    clusters: tuple[dict, ...]
    # SDS Secrets (oidc's client secrets and HMAC keys), sent over ADS before the listeners
    # that name them; left out of ``as_dict`` when there are none (the hashes of configs
    # without them stay as they were).
    secrets: tuple[dict, ...] = ()

    def as_dict(self) -> dict:
        found = {
            "listeners": list(self.listeners),
            "routes": list(self.routes),
            "clusters": list(self.clusters),
        }
        if self.secrets:
            found["secrets"] = list(self.secrets)
        return found

    @classmethod
    def from_dict(cls, data: dict) -> "Resources":
        """From ``as_dict`` (a stored revision's resources)."""
        return cls(
            listeners=tuple(data["listeners"]),
            routes=tuple(data["routes"]),
            clusters=tuple(data["clusters"]),
            secrets=tuple(data.get("secrets", ())),
        )


def translate(
    ir: GatewayIR,
    *,
    address: str = "0.0.0.0",  # noqa: S104 (a gateway listens on every interface by default)
    port_map: dict[int, int] | None = None,
    access_log_path: str = DEFAULT_PATH,
    memo=None,
) -> Resources:
    """``port_map`` maps a listener's port to the port Envoy binds (local runtime ranges);
    ``access_log_path`` is where Envoy writes its access log (``translate.access_log``);
    ``memo``: the gateway's last compile (``provisioning.compile_memo``)."""
    by_port: dict[int, list[Listener]] = {}
    for listener in ir.listeners:
        by_port.setdefault(listener.port, []).append(listener)
    listeners, routes = [], []
    invalid_backends = any(c.invalid_backend for c in ir.clusters)
    for port in sorted(by_port):
        name = f"{ir.name}/port/{port}"
        group = by_port[port]
        bind_port = (port_map or {}).get(port, port)
        if group[0].protocol == "Dubbo":  # a Dubbo listener has its port alone, and no RDS
            listeners.append(dubbo.envoy_listener(name, bind_port, address, group[0]))
            continue
        if group[0].protocol in ("TCP", "TLS"):  # whole connections, no routes (streams.py)
            listener = stream_listener(name, bind_port, address, group)
            if listener["filter_chains"]:
                listeners.append(listener)
            continue
        routes_here = [
            r for lst in group for vhost in lst.virtual_hosts for r in vhost.filter_routes
        ]
        filters = _http_filters(ir, routes_here)
        mappers = jwt_authn.local_reply_mappers(routes_here)
        listener = envoy_listener(name, port, bind_port, address, group, invalid_backends,
                                  filters, mappers, access_log_path)  # fmt: skip
        if listener["filter_chains"]:
            listeners.append(listener)
            routes.append(route_configuration(name, group, memo))
    used = {c.name for c in ir.clusters}
    clusters = tuple(envoy_cluster(c) for c in ir.clusters if c.name in used)
    clusters += tuple(envoy_cluster(c) for c in jwt_authn.clusters(ir) if c.name not in used)
    clusters += tuple(envoy_cluster(c) for c in oauth2.clusters(ir) if c.name not in used)
    platform = global_rate_limit.cluster(ir, ir.filter_routes())
    clusters += (platform,) if platform else ()
    return Resources(tuple(listeners), tuple(routes), clusters, oauth2.secrets(ir))
