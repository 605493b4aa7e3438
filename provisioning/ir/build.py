"""Desired state (plain dicts, as stored) → IR. Pure: no database, no Envoy.

Tenant mistakes never raise here: a rule whose backends are all missing answers 500, as the
Gateway API says; the route's status conditions say why (computed where routes are written).
"""

from dataclasses import dataclass, field, replace

from gateways.egress import EgressPolicy
from gateways.route_conflicts import StreamClaim, stream_claims
from gateways.route_kinds import STREAM_KINDS, allows
from gateways.validation.gateways import DUBBO, accepts_kind
from gateways.validation.routes import DEFAULT_SESSION_NAMES, is_backend_kind
from provisioning.compile_memo import CompileMemo
from provisioning.ir import dubbo, grpc, hostnames
from provisioning.ir.client_traffic import attach as attach_client_traffic
from provisioning.ir.durations import to_ms
from provisioning.ir.egress import without_refused
from provisioning.ir.names import cluster_name
from provisioning.ir.policy_build import PolicyPlan, cors_filter, rule_retry, split_variant
from provisioning.ir.types import (
    Cluster,
    DirectResponse,
    DnsSettings,
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
    ServiceRef,
    SessionPersistence,
    StreamRoute,
    TLSCertificate,
    VirtualHost,
    WeightedBackend,
)


@dataclass(frozen=True)
class DesiredState:
    """Everything one gateway's configuration depends on, as stored."""

    tenant: str
    gateway: str
    spec: dict
    routes: list[dict] = field(default_factory=list)  # {"name", "spec", "kind"?}, oldest first
    backends: dict[str, dict] = field(default_factory=dict)  # name → spec
    certificates: dict[str, dict] = field(default_factory=dict)  # name → chain, key, dnsNames
    policies: list[dict] = field(default_factory=list)  # {"name", "kind", "spec"}, oldest first
    # Consumers the policies name: name → {"apiKeys": [key], "basicAuth": [{"hash"}]} (secrets)
    consumers: dict[str, dict] = field(default_factory=dict, repr=False)
    # Where gateways may send traffic; None: not checked here (the API checked it).
    egress: EgressPolicy | None = None
    # Backend host name → the addresses the platform resolved it to (provisioning.pinned_dns):
    # Envoy gets those addresses, never the name. None: Envoy resolves names itself.
    resolved: dict[str, tuple[str, ...]] | None = None
    # The DNS servers (address, port) gateways resolve backend names with; (): the host's.
    dns_resolvers: tuple[tuple[str, int], ...] = ()
    # SecurityPolicies' secrets: name → {"oidcClientSecret", "oidcHmacSecret"}.
    policy_secrets: dict[str, dict] = field(default_factory=dict, repr=False)
    # OpenID providers' discovered endpoints: issuer → {"authorizationEndpoint",
    # "tokenEndpoint", "authMethods"}, or {"error": why} (provisioning.oidc_discovery).
    oidc_providers: dict[str, dict] = field(default_factory=dict)


def build_clusters(state: DesiredState) -> tuple[Cluster, ...]:
    clusters = []
    for name in sorted(state.backends):
        spec = state.backends[name]
        endpoints = spec.get("endpoints", [])
        named = [e["fqdn"]["hostname"] for e in endpoints if "fqdn" in e]
        pinned = bool(named) and state.resolved is not None
        kind = "dns" if named and not pinned else "static"
        tls = spec.get("tls")
        ca = None
        if tls:
            refs = tls.get("caCertificateRefs", [])
            pems = [state.certificates[r["name"]]["certificatePem"] for r in refs
                    if r["name"] in state.certificates]  # fmt: skip
            ca = "".join(pems) or None
        service = spec.get("kubernetesService")
        if service is not None:  # endpoints by EDS (docs/discovery.md)
            kind = "eds"
            service = ServiceRef(
                cluster=service["cluster"], namespace=service["namespace"],
                name=service["name"], port=service["port"],
                assignment=cluster_name(state.tenant, name),
            )  # fmt: skip
        clusters.append(
            Cluster(
                name=cluster_name(state.tenant, name),
                kind=kind,
                service=service,
                endpoints=_endpoints(
                    endpoints,
                    state.resolved if pinned else None,
                    (spec.get("dns") or {}).get("resolution") == "Logical",
                ),
                verify_name=named[0] if pinned else None,
                protocol=spec.get("appProtocol", "HTTP/1.1"),
                tls=tls is not None,
                tls_sni=(tls or {}).get("sni"),
                tls_ca=ca,
                dns=_dns(spec.get("dns"), state.dns_resolvers) if kind == "dns" else None,
            )
        )
    return tuple(clusters)


def _dns(spec: dict | None, resolvers) -> DnsSettings:
    if spec is None:  # as before the backend's dns field existed: Envoy's defaults
        return DnsSettings(resolvers=tuple(resolvers))
    return DnsSettings(
        logical=spec.get("resolution") == "Logical",
        refresh_ms=to_ms(spec.get("refreshRate", "30s")),
        respect_ttl=spec.get("respectTtl", True),
        resolvers=tuple(resolvers),
    )


def _endpoints(
    endpoints: list[dict], resolved: dict | None, logical: bool = False
) -> tuple[Endpoint, ...]:
    """The backend's endpoints; with ``resolved``, each host name becomes its addresses."""
    found: list[Endpoint] = []
    for e in endpoints:
        if "ip" in e:
            found.append(Endpoint(e["ip"]["address"], e["ip"]["port"]))
        elif resolved is None:
            found.append(Endpoint(e["fqdn"]["hostname"], e["fqdn"]["port"]))
        else:
            name = e["fqdn"]["hostname"].lower().rstrip(".")
            addresses = resolved.get(name, ())
            if logical:  # as Envoy's LOGICAL_DNS: the first address only
                addresses = addresses[:1]
            found += [Endpoint(address, e["fqdn"]["port"]) for address in addresses]
    return tuple(found)


def _header_ops(config: dict | None) -> HeaderOps:
    if not config:
        return HeaderOps()
    return HeaderOps(
        set=tuple((h["name"].lower(), h["value"]) for h in config.get("set", [])),
        add=tuple((h["name"].lower(), h["value"]) for h in config.get("add", [])),
        remove=tuple(name.lower() for name in config.get("remove", [])),
    )


def _path_modifier(config: dict | None) -> tuple[str | None, str | None]:
    if not config:
        return None, None
    kind = config["type"]
    value = config["replaceFullPath"] if kind == "ReplaceFullPath" else config["replacePrefixMatch"]
    return kind, value


def _rule_actions(state: DesiredState, rule: dict) -> dict:
    """The IR fields a rule's filters and backendRefs contribute to each of its matches."""
    actions: dict = {"request_headers": HeaderOps(), "response_headers": HeaderOps()}
    mirrors = []
    for flt in rule.get("filters", []):
        kind = flt["type"]
        if kind == "RequestHeaderModifier":
            actions["request_headers"] = _header_ops(flt.get("requestHeaderModifier"))
        elif kind == "ResponseHeaderModifier":
            actions["response_headers"] = _header_ops(flt.get("responseHeaderModifier"))
        elif kind == "RequestRedirect":
            cfg = flt.get("requestRedirect", {})
            path_kind, path_value = _path_modifier(cfg.get("path"))
            actions["redirect"] = Redirect(
                scheme=cfg.get("scheme"), hostname=cfg.get("hostname"), port=cfg.get("port"),
                status_code=cfg.get("statusCode", 302), path_kind=path_kind, path_value=path_value,
            )  # fmt: skip
        elif kind == "URLRewrite":
            cfg = flt.get("urlRewrite", {})
            path_kind, path_value = _path_modifier(cfg.get("path"))
            actions["rewrite"] = Rewrite(cfg.get("hostname"), path_kind, path_value)
        elif kind == "RequestMirror":
            cfg = flt.get("requestMirror", {})
            ref = cfg.get("backendRef", {}).get("name")
            if ref in state.backends:
                fraction = cfg.get("fraction") or {"numerator": cfg.get("percent", 100)}
                mirrors.append(Mirror(cluster_name(state.tenant, ref), fraction["numerator"],
                                      fraction.get("denominator", 100)))  # fmt: skip
        elif kind == "CORS":
            actions["cors"] = cors_filter(flt["cors"])
    actions["mirrors"] = tuple(mirrors)
    if rule.get("retry"):
        actions["retry"] = rule_retry(rule["retry"])
    if rule.get("sessionPersistence"):
        actions["session"] = _session(rule["sessionPersistence"])
    timeouts = rule.get("timeouts", {})
    if "request" in timeouts:
        actions["timeout_ms"] = to_ms(timeouts["request"])
    if "backendRequest" in timeouts:
        actions["backend_timeout_ms"] = to_ms(timeouts["backendRequest"])
    if "redirect" not in actions:
        actions.update(_backend_actions(state, rule.get("backendRefs", [])))
    return actions


def invalid_backend_cluster(state: DesiredState) -> str:
    return f"{state.tenant}/{state.gateway}/invalid-backend"


def _backend_actions(state: DesiredState, refs: list[dict]) -> dict:
    """Weighted backends; the share of missing backends goes to a cluster that answers 500.

    Gateway API: requests that would go to an invalid backend get 500, in proportion to its
    weight; with no valid backend at all, every request does.
    """
    weighted = [ref for ref in refs if ref.get("weight", 1) > 0]
    usable = [ref for ref in weighted if ref["name"] in state.backends and is_backend_kind(ref)]
    valid = tuple(
        WeightedBackend(cluster_name(state.tenant, ref["name"]), ref.get("weight", 1),
                        *_backend_headers(ref))
        for ref in usable
    )  # fmt: skip
    if not valid:
        return {"direct_response": DirectResponse(500)}
    missing = sum(ref.get("weight", 1) for ref in weighted if not any(ref is u for u in usable))
    if missing:
        valid += (WeightedBackend(invalid_backend_cluster(state), missing),)
    sets = [state.backends[ref["name"]].get("grpcDescriptorSet") for ref in usable]
    return {"backends": valid, "transcoder": grpc.transcoder(sets)}


def _session(spec: dict) -> SessionPersistence:
    kind = spec.get("type", "Cookie")
    timeout = spec.get("absoluteTimeout")
    return SessionPersistence(
        kind, spec.get("sessionName") or DEFAULT_SESSION_NAMES[kind],
        None if timeout is None else to_ms(timeout) // 1000,
    )  # fmt: skip


def _backend_headers(ref: dict) -> tuple[HeaderOps, HeaderOps]:
    """A backendRef's own RequestHeaderModifier and ResponseHeaderModifier."""
    found = {item["type"]: item for item in ref.get("filters", [])}
    request = found.get("RequestHeaderModifier", {}).get("requestHeaderModifier")
    response = found.get("ResponseHeaderModifier", {}).get("responseHeaderModifier")
    return _header_ops(request), _header_ops(response)


def _match(raw: dict) -> dict:
    path = raw.get("path", {"type": "PathPrefix", "value": "/"})
    return {
        "path": PathMatch(path.get("type", "PathPrefix"), path.get("value", "/")),
        "headers": tuple(
            HeaderMatch(h["name"].lower(), h.get("type", "Exact"), h["value"])
            for h in raw.get("headers", [])
        ),
        "query_params": tuple(
            HeaderMatch(q["name"], q.get("type", "Exact"), q["value"])
            for q in raw.get("queryParams", [])
        ),
        "method": raw.get("method"),
    }


def build_routes(state: DesiredState, route: dict, index: int) -> list[Route]:
    base = f"{state.tenant}/{state.gateway}/route/{route['name']}"
    spec = grpc.http_spec(route["spec"]) if grpc.is_grpc(route) else route["spec"]
    result = []
    for r, rule in enumerate(spec.get("rules", [{}])):
        actions = _rule_actions(state, rule)
        if grpc.is_grpc(route):
            actions["grpc"] = True
        for m, raw in enumerate(rule.get("matches") or [{}]):
            result.append(
                Route(name=f"{base}/rule/{r}/match/{m}", order=(index, route["name"], r, m),
                      **_match(raw), **actions)
            )  # fmt: skip
    return result


def precedence(route: Route) -> tuple:
    """Gateway API order: Exact, then (ours) regular expressions, then longest prefix; then
    method, most header matches, most query matches; then oldest route, name, rule order."""
    rank = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}[route.path.kind]
    value = route.path.value.rstrip("/") if route.path.kind == "PathPrefix" else route.path.value
    return (rank, -len(value), route.method is None, -len(route.headers),
            -len(route.query_params), route.order)  # fmt: skip


def _attached(route: dict, listener: dict) -> bool:
    if not accepts_kind(listener, route.get("kind")):
        return False  # HTTP listeners take HTTP and gRPC routes, Dubbo listeners DubboRoutes
    refs = route["spec"].get("parentRefs")
    if not refs:
        return True
    return any(ref.get("sectionName") in (None, listener["name"]) for ref in refs)


def build_dubbo_listener(state: DesiredState, spec: dict) -> Listener:
    """A Dubbo listener: the DubboRoutes attached to it, most specific first (no policies)."""
    routes = []
    for index, route in enumerate(state.routes):
        if _attached(route, spec):
            base = f"{state.tenant}/{state.gateway}/route/{route['name']}"
            routes += dubbo.build_routes(base, route, index, state.backends, state.tenant,
                                         invalid_backend_cluster(state))  # fmt: skip
    return Listener(
        name=f"{state.tenant}/{state.gateway}/listener/{spec['name']}",
        port=spec["port"],
        protocol=spec["protocol"],
        hostname=None,
        dubbo_routes=tuple(sorted(routes, key=dubbo.precedence)),
    )


def _stream_backends(state: DesiredState, refs: list[dict]) -> tuple[WeightedBackend, ...]:
    """Weighted backends of a TCPRoute or TLSRoute rule; the share of missing (or refused, or
    another kind's) backends goes to the cluster without endpoints: those connections are
    closed at once, as Gateway API asks. With no usable backend, every connection is."""
    weighted = [ref for ref in refs if ref.get("weight", 1) > 0]
    usable = [ref for ref in weighted if ref["name"] in state.backends and is_backend_kind(ref)]
    valid = tuple(
        WeightedBackend(cluster_name(state.tenant, ref["name"]), ref.get("weight", 1))
        for ref in usable
    )
    missing = sum(ref.get("weight", 1) for ref in weighted if not any(ref is u for u in usable))
    if missing or not valid:
        valid += (WeightedBackend(invalid_backend_cluster(state), missing or 1),)
    return valid


def build_stream_routes(
    state: DesiredState, spec: dict, claims: list[StreamClaim]
) -> tuple[StreamRoute, ...]:
    """The TCPRoute or TLSRoute connections a TCP or TLS listener holds (``claims``: who won
    each port and SNI name, ``gateways.route_conflicts.stream_claims``)."""
    routes = {route["name"]: route for route in state.routes}
    prefix = {"TCPRoute": "tcproute", "TLSRoute": "tlsroute"}
    result = []
    for claim in claims:
        if claim.listener != spec["name"]:
            continue
        route = routes[claim.route]
        rules = route["spec"].get("rules", [])
        refs = rules[0].get("backendRefs", []) if rules else []
        name = f"{state.tenant}/{state.gateway}/{prefix[route['kind']]}/{route['name']}"
        result.append(StreamRoute(name, _stream_backends(state, refs), claim.server_name))
    return tuple(result)


def _http_routes(state, route: dict, index: int, spec: dict, plan: PolicyPlan | None) -> list:
    routes = build_routes(state, route, index)
    return routes if plan is None else plan.apply(routes, spec["name"], route)


def _placement(listener: dict, route: dict) -> tuple[tuple[str, ...], bool]:
    """The domains ``route`` gets on ``listener`` (none when it is not attached there), and
    whether it is a GRPCRoute."""
    if not _attached(route, listener) or not allows(listener, route.get("kind", "HTTPRoute")):
        return (), False
    domains = hostnames.intersect(listener.get("hostname"), route["spec"].get("hostnames", []))
    return tuple(domains), grpc.is_grpc(route)


def _virtual_host(name: str, domain: str, parts, grpc_here: bool) -> VirtualHost:
    ordered = tuple(sorted((r for part in parts for r in part), key=precedence))
    if grpc_here:
        ordered += (grpc.unimplemented_route(name),)
    return VirtualHost(name=name, domains=(domain,), routes=ordered)


def build_listener(
    state: DesiredState,
    spec: dict,
    plan: PolicyPlan | None = None,
    claims: list[StreamClaim] | None = None,
    memo: CompileMemo | None = None,
) -> Listener:
    if spec.get("protocol") == DUBBO:
        return build_dubbo_listener(state, spec)
    if spec["protocol"] in ("TCP", "TLS"):
        return Listener(
            name=f"{state.tenant}/{state.gateway}/listener/{spec['name']}",
            port=spec["port"], protocol=spec["protocol"], hostname=spec.get("hostname"),
            stream_routes=build_stream_routes(state, spec, claims or []),
        )  # fmt: skip
    memo = memo or CompileMemo()  # a memo of nothing: everything is built
    placed = memo.routes(
        spec["name"], state.routes, lambda route: _placement(spec, route),
        lambda route, index: _http_routes(state, route, index, spec, plan),
    )  # fmt: skip
    by_domain, grpc_domains = memo.groups(spec["name"], placed)
    vhosts = []
    for domain, parts in sorted(by_domain.items(), key=lambda kv: hostnames.specificity(kv[0])):
        name = f"{state.tenant}/{state.gateway}/listener/{spec['name']}/host/{domain}"
        grpc_here = domain in grpc_domains
        vhosts.append(memo.virtual_host(
            spec["name"], domain, (grpc_here, parts),
            lambda name=name, domain=domain, parts=parts, grpc_here=grpc_here:
                _virtual_host(name, domain, parts, grpc_here),
        ))  # fmt: skip
    vhosts = tuple(vhosts)
    certificates = tuple(
        TLSCertificate(
            name=f"{state.tenant}/certificate/{ref['name']}",
            certificate_chain=state.certificates[ref["name"]]["certificatePem"],
            private_key=state.certificates[ref["name"]]["privateKeyPem"],
            dns_names=tuple(state.certificates[ref["name"]].get("dnsNames", [])),
        )
        for ref in (spec.get("tls") or {}).get("certificateRefs", [])
        # A chain without a key (a CA bundle) cannot serve TLS: leave it out, never send
        # Envoy a certificate it would reject.
        if state.certificates.get(ref["name"], {}).get("privateKeyPem")
    )
    return Listener(
        name=f"{state.tenant}/{state.gateway}/listener/{spec['name']}",
        port=spec["port"],
        protocol=spec["protocol"],
        hostname=spec.get("hostname"),
        certificates=certificates,
        virtual_hosts=vhosts,
    )


def _usable_settings(settings, cluster: Cluster):
    """A gRPC health check needs HTTP/2 to the backend: Envoy refuses it on an HTTP/1.1 cluster,
    so on a backend without ``appProtocol`` gRPC or h2c the check is left out (docs/grpc.md)."""
    check = settings.active_health_check
    if check is not None and check.protocol == "GRPC" and cluster.protocol not in HTTP2:
        return replace(settings, active_health_check=None)
    return settings


def _variants(clusters: tuple[Cluster, ...], listeners, plan: PolicyPlan) -> tuple[Cluster, ...]:
    """The clusters BackendTrafficPolicies asked for: a backend's cluster with their settings."""
    by_name = {cluster.name: cluster for cluster in clusters}
    wanted = sorted({
        name for listener in listeners for vhost in listener.virtual_hosts
        for name in vhost.clusters if split_variant(name)
    })  # fmt: skip
    variants = []
    for name in wanted:
        base, policy = split_variant(name)
        if base in by_name:
            settings = _usable_settings(plan.settings[policy], by_name[base])
            variants.append(replace(by_name[base], name=name, settings=settings))
    return tuple(variants)


HTTP2 = ("h2c", "gRPC")


def _uses(listeners: tuple[Listener, ...], cluster: str) -> bool:
    """Whether a route of ``listeners`` sends requests to ``cluster`` (HTTP routes through
    their virtual hosts' summaries: kept per virtual host by an incremental compile)."""
    if any(cluster in vhost.clusters for listener in listeners for vhost in listener.virtual_hosts):
        return True
    return any(
        backend.cluster == cluster
        for listener in listeners
        for route in (*listener.stream_routes, *listener.dubbo_routes)
        for backend in route.backends
    )


def gateway_ir(state: DesiredState, memo: CompileMemo | None = None, context=()) -> GatewayIR:
    """``memo``: the gateway's last compile (``provisioning.compile_memo``), reused where its
    inputs are the same and updated (``context``: what else the output depends on)."""
    state, refused = without_refused(state)  # refused backends are treated as missing
    listener_specs = state.spec.get("listeners", [])
    names = [spec["name"] for spec in listener_specs]
    plan = PolicyPlan(state, names, refused) if state.policies else None
    if memo is not None:
        memo.begin((replace(state, routes=[]), refused, plan and plan.resolution, context))
    streams = [route for route in state.routes if route.get("kind") in STREAM_KINDS]
    claims, _ = stream_claims(listener_specs, streams)
    listeners = tuple(build_listener(state, spec, plan, claims, memo) for spec in listener_specs)
    if plan is not None:
        listeners = attach_client_traffic(listeners, listener_specs, plan.resolution,
                                          state.policies)  # fmt: skip
    clusters = build_clusters(state)
    if plan is not None:
        clusters += _variants(clusters, listeners, plan)
    invalid = invalid_backend_cluster(state)
    if _uses(listeners, invalid):
        # No endpoints: Envoy answers "no healthy upstream", which the listener maps to 500.
        clusters += (Cluster(name=invalid, kind="static", endpoints=(), invalid_backend=True),)
    return GatewayIR(
        name=f"{state.tenant}/{state.gateway}", listeners=listeners, clusters=clusters,
        api_keys=plan.api_keys() if plan else (),
        basic_auth_users=plan.basic_auth_users() if plan else (),
    )  # fmt: skip
