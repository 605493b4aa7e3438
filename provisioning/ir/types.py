"""IR types. Names are deterministic and hierarchical: ``<tenant>/<gateway>/…``."""

from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class PathMatch:
    kind: str  # Exact | PathPrefix | RegularExpression
    value: str


@dataclass(frozen=True)
class HeaderMatch:
    name: str
    kind: str  # Exact | RegularExpression
    value: str


@dataclass(frozen=True)
class HeaderOps:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)


@dataclass(frozen=True)
class WeightedBackend:
    cluster: str
    weight: int
    # A backendRef's own filters: headers changed only on the requests sent to this backend.
    request_headers: HeaderOps = field(default_factory=HeaderOps)
    response_headers: HeaderOps = field(default_factory=HeaderOps)


@dataclass(frozen=True)
class Redirect:
    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    status_code: int = 302
    path_kind: str | None = None  # ReplaceFullPath | ReplacePrefixMatch
    path_value: str | None = None


@dataclass(frozen=True)
class Rewrite:
    hostname: str | None = None
    path_kind: str | None = None
    path_value: str | None = None


@dataclass(frozen=True)
class Mirror:
    cluster: str
    numerator: int = 100  # of the requests, mirrored: numerator / denominator
    denominator: int = 100


@dataclass(frozen=True)
class DirectResponse:
    status: int
    body: str = ""


@dataclass(frozen=True)
class GrpcTranscoder:
    """gRPC-JSON transcoding to the route's backend: its descriptor set and services."""

    descriptor_set: str  # base64 FileDescriptorSet
    services: tuple[str, ...]


@dataclass(frozen=True)
class ApiKeyAuth:
    """SecurityPolicy apiKeyAuth on a route: which consumers' keys, looked for where."""

    clients: tuple[str, ...]  # consumers allowed; empty: any consumer with a key (filter-wide)
    headers: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    cookies: tuple[str, ...] = ()
    forward_header: str = "x-gantry-consumer"
    sanitize: bool = False


@dataclass(frozen=True)
class BasicAuthUser:
    username: str  # the consumer's name
    password_hash: str = field(repr=False)  # htpasswd {SHA}…, never printed


@dataclass(frozen=True)
class BasicAuth:
    """SecurityPolicy basicAuth on a route. ``users``: the allowed consumers that have a
    basic-auth password (none: every request is refused)."""

    users: tuple[BasicAuthUser, ...]
    forward_header: str = "x-gantry-consumer"


@dataclass(frozen=True)
class Cors:
    """SecurityPolicy cors on a route. ``origins``: (Exact | RegularExpression, value)."""

    origins: tuple[tuple[str, str], ...]
    methods: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_s: int | None = None
    allow_credentials: bool | None = None


@dataclass(frozen=True)
class JwtClaimMatch:
    """A claim (``path``: nested names) that is (or, ``array``, contains) one of ``values``."""

    path: tuple[str, ...]
    values: tuple[str, ...]
    array: bool = False


@dataclass(frozen=True)
class JwtPrincipal:
    """A verified token of ``provider`` (``<policy>/<provider>``, the key of its payload in
    jwt_authn's metadata) with every one of ``scopes`` and every one of ``claims``."""

    provider: str
    scopes: tuple[str, ...] = ()
    claims: tuple[JwtClaimMatch, ...] = ()


@dataclass(frozen=True)
class AuthorizationRule:
    """Matches when the client address is in one of ``cidrs`` (if any), every one of
    ``headers`` has one of its values, the authenticated consumer, read from
    ``consumer_header``, is one of ``consumers`` (if any), the request's verified token matches
    ``jwt`` (if any), and its method is one of ``methods`` (if any)."""

    allow: bool
    cidrs: tuple[tuple[str, int], ...] = ()  # (network address, prefix length)
    headers: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (lowercase name, values)
    methods: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    consumer_header: str = "x-gantry-consumer"
    jwt: JwtPrincipal | None = None


@dataclass(frozen=True)
class Authorization:
    """SecurityPolicy authorization on a route: the first matching rule decides."""

    default_allow: bool
    rules: tuple[AuthorizationRule, ...] = ()


@dataclass(frozen=True)
class JwtProvider:
    """One JWT provider of a SecurityPolicy; ``name`` is ``<policy>/<provider>``, unique in
    the gateway. Keys come from ``jwks_uri`` (fetched by Envoy) or ``local_jwks``."""

    name: str
    issuer: str | None = None
    audiences: tuple[str, ...] = ()
    jwks_uri: str | None = None
    local_jwks: str | None = None
    claim_to_headers: tuple[tuple[str, str], ...] = ()  # (header, claim)
    headers: tuple[tuple[str, str], ...] = ()  # (name, value prefix): where tokens are
    params: tuple[str, ...] = ()
    cookies: tuple[str, ...] = ()
    forward: bool = False
    # Authorization rules read claims from the payload Envoy keeps in the request's metadata;
    # ``space_delimited`` claims are split into lists there (OAuth 2.0 ``scope``).
    payload_in_metadata: bool = False
    space_delimited: tuple[str, ...] = ()


@dataclass(frozen=True)
class Jwt:
    """SecurityPolicy jwt on a route: a valid token of any of ``providers`` is required (or,
    ``optional``, no token at all); ``requirement``: the policy's name."""

    requirement: str
    providers: tuple[JwtProvider, ...]
    optional: bool = False


@dataclass(frozen=True)
class ExtAuth:
    """SecurityPolicy extAuth on a route: an HTTP authorization service (a tenant backend's
    cluster) asked about each request; ``policy``: the policy's name (one filter each)."""

    policy: str
    cluster: str
    uri: str  # scheme://host:port of the service's first endpoint, with the path
    path_prefix: str = ""
    headers_to_ext_auth: tuple[str, ...] = ()
    headers_to_backend: tuple[str, ...] = ()
    timeout_ms: int = 10_000
    fail_open: bool = False
    grpc: bool = False  # Envoy's gRPC authorization API (Authorization/Check) over the cluster


@dataclass(frozen=True)
class Retry:
    num_retries: int
    retry_on: tuple[str, ...]
    status_codes: tuple[int, ...] = ()
    per_try_timeout_ms: int | None = None
    backoff_base_ms: int | None = None
    backoff_max_ms: int | None = None


@dataclass(frozen=True)
class Fault:
    delay_ms: int | None = None
    delay_percent: float = 100
    abort_http_status: int | None = None
    abort_grpc_status: int | None = None
    abort_percent: float = 100


@dataclass(frozen=True)
class RateLimitSelector:
    """One condition of a rate limit rule: a request header (``header``: Exact,
    RegularExpression, or Distinct — a bucket per value; ``invert``: requests not matching) or
    the client address (``cidr``: in ``prefix``; Distinct: a bucket per address in it)."""

    kind: str  # header | cidr
    match: str = "Exact"  # Exact | RegularExpression | Distinct
    name: str = ""  # the header
    value: str = ""
    invert: bool = False
    prefix: tuple[str, int] | None = None  # (network address, prefix length)


@dataclass(frozen=True)
class RateLimitRule:
    """``requests`` per ``interval_ms`` for the requests every selector matches (all of them
    when there is none)."""

    requests: int
    interval_ms: int
    selectors: tuple[RateLimitSelector, ...] = ()


@dataclass(frozen=True)
class LocalRateLimit:
    """Token buckets per route and Envoy replica: a request counts against every rule it
    matches, and is refused when any of their buckets is empty."""

    rules: tuple[RateLimitRule, ...]


@dataclass(frozen=True)
class GlobalRateLimitRule:
    """A rule counted by the rate limit service, shared by every replica of the gateway: one
    count per route rule, or one for every route of the policy when ``shared``."""

    rule: RateLimitRule
    unit: str  # Second | Minute | Hour | Day (the service's window)
    shared: bool = False


@dataclass(frozen=True)
class GlobalRateLimit:
    """A request counts against every rule it matches and is refused (429) when any is over;
    while the service cannot count, ``fail_closed`` refuses (503), else lets through."""

    policy: str
    rules: tuple[GlobalRateLimitRule, ...]
    fail_closed: bool = False


@dataclass(frozen=True)
class Oidc:
    """A SecurityPolicy's ``oidc``: Envoy's oauth2 filter for the policy, its secrets sent to
    Envoy as SDS Secrets named ``<tenant>/<gateway>/oidc/<policy>/client-secret`` and
    ``…/hmac``."""

    policy: str
    client_id: str
    client_secret: str = field(repr=False)  # never printed
    hmac_secret: str = field(repr=False)  # the cookies' HMAC key, stable across revisions
    authorization_endpoint: str = ""
    token_endpoint: str = ""
    scopes: tuple[str, ...] = ("openid",)
    redirect_uri: str = ""
    redirect_path: str = "/oauth2/callback"
    logout_path: str = "/logout"
    cookie_domain: str | None = None
    forward_access_token: bool = False
    basic_auth: bool = True  # client_secret_basic, else client_secret_post


@dataclass(frozen=True)
class HashPolicy:
    kind: str  # SourceIP | Header | Cookie
    name: str = ""
    ttl_ms: int | None = None


@dataclass(frozen=True)
class SessionPersistence:
    """An HTTPRoute rule's sessionPersistence: requests carrying the session go to the
    endpoint that answered its first request."""

    kind: str  # Cookie | Header
    name: str
    ttl_s: int | None = None  # a Permanent cookie's lifetime; None: a session cookie


@dataclass(frozen=True)
class Route:
    """One match of one rule of one HTTPRoute, with everything its rule does."""

    name: str  # <tenant>/<gateway>/route/<route>/rule/<i>/match/<j>
    path: PathMatch
    headers: tuple[HeaderMatch, ...] = ()
    query_params: tuple[HeaderMatch, ...] = ()
    method: str | None = None
    backends: tuple[WeightedBackend, ...] = ()
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    request_headers: HeaderOps = field(default_factory=HeaderOps)
    response_headers: HeaderOps = field(default_factory=HeaderOps)
    mirrors: tuple[Mirror, ...] = ()
    direct_response: DirectResponse | None = None
    transcoder: GrpcTranscoder | None = None
    # A GRPCRoute's: no whole-request timeout unless one is set (streams last), and the
    # client's grpc-timeout honoured.
    grpc: bool = False
    timeout_ms: int | None = None
    backend_timeout_ms: int | None = None
    # Policies (the most specific of each kind): a policy that cannot be translated makes the
    # route answer 500 (fail closed), ``policy_error`` saying why.
    policy_error: str | None = None
    api_key_auth: ApiKeyAuth | None = None
    basic_auth: BasicAuth | None = None
    cors: Cors | None = None
    authorization: Authorization | None = None
    jwt: Jwt | None = None
    ext_auth: ExtAuth | None = None
    oidc: Oidc | None = None
    retry: Retry | None = None
    fault: Fault | None = None
    hash_policy: HashPolicy | None = None
    rate_limit: LocalRateLimit | None = None
    global_rate_limit: GlobalRateLimit | None = None
    session: SessionPersistence | None = None
    # Precedence tie-breakers (Gateway API): route creation order, then route name, rule order.
    order: tuple = ()


@dataclass(frozen=True)
class DubboRoute:
    """One match of one rule of one DubboRoute: the Dubbo calls to ``service`` (and ``method``,
    ``group``, ``version``, ``attachments`` where given) go to ``backends``."""

    name: str  # <tenant>/<gateway>/route/<route>/rule/<i>/match/<j>
    service: str
    backends: tuple[WeightedBackend, ...]
    method: str | None = None
    group: str | None = None
    version: str | None = None
    attachments: tuple[HeaderMatch, ...] = ()
    order: tuple = ()


# The name a GRPCRoute host's last route ends with (it answers gRPC UNIMPLEMENTED).
UNIMPLEMENTED_SUFFIX = "/grpc-unimplemented"
# The fields of a route the HTTP filter translators read (``provisioning.translate``): a route
# with none of them set, and not a host's gRPC UNIMPLEMENTED route, changes no HTTP filter.
FILTER_FIELDS = (
    "api_key_auth", "basic_auth", "cors", "authorization", "jwt", "ext_auth", "oidc", "fault",
    "rate_limit", "global_rate_limit", "session", "transcoder",
)  # fmt: skip


def shapes_filters(route: Route) -> bool:
    """Whether the HTTP filters of the route's listener depend on it."""
    return route.name.endswith(UNIMPLEMENTED_SUFFIX) or any(
        getattr(route, name) for name in FILTER_FIELDS
    )


@dataclass(frozen=True)
class VirtualHost:
    """Its summaries (``filter_routes``, ``clusters``) are computed once per object: an
    incremental compile reuses the virtual hosts a change did not touch, and with them what
    whole-gateway parts (HTTP filters, clusters) need of their routes."""

    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]

    @cached_property
    def filter_routes(self) -> tuple[Route, ...]:
        """Its routes the HTTP filters depend on (``shapes_filters``), in order."""
        return tuple(route for route in self.routes if shapes_filters(route))

    @cached_property
    def clusters(self) -> frozenset[str]:
        """The clusters its routes send requests to."""
        return frozenset(backend.cluster for route in self.routes for backend in route.backends)


@dataclass(frozen=True)
class TLSCertificate:
    name: str
    certificate_chain: str
    private_key: str = field(repr=False)  # never printed
    dns_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClientTraffic:
    """A ClientTrafficPolicy applied to a listener: how Envoy treats downstream connections."""

    request_received_timeout_ms: int | None = None
    idle_timeout_ms: int | None = None
    connection_limit: int | None = None
    connection_close_delay_ms: int | None = None
    buffer_limit_bytes: int | None = None
    xff_num_trusted_hops: int | None = None
    tls_min_version: str | None = None  # Auto | 1.0 | 1.1 | 1.2 | 1.3
    tls_max_version: str | None = None
    ciphers: tuple[str, ...] = ()
    ecdh_curves: tuple[str, ...] = ()
    alpn_protocols: tuple[str, ...] = ()
    h2_initial_stream_window: int | None = None
    h2_initial_connection_window: int | None = None
    h2_max_concurrent_streams: int | None = None
    disable_rate_limit_headers: bool = False
    preserve_request_id: bool = False
    escaped_slashes: str | None = None  # KeepUnchanged | RejectRequest | UnescapeAnd…
    merge_slashes: bool = True
    # tcpKeepalive: None (off) or (probes, idle seconds, interval seconds), None = the system's
    tcp_keepalive: tuple[int | None, int | None, int | None] | None = None


@dataclass(frozen=True)
class StreamRoute:
    """Where a TCPRoute or TLSRoute sends the connections it holds on a listener: all of them
    (TCP, ``server_name`` None), or those whose SNI is ``server_name`` (TLS; a leading ``*.``
    matches one or more labels; ``*`` any name, or none)."""

    name: str  # <tenant>/<gateway>/tcproute|tlsroute/<route>
    backends: tuple[WeightedBackend, ...]
    server_name: str | None = None


@dataclass(frozen=True)
class Listener:
    """One gateway listener (several may share a port, told apart by hostname)."""

    name: str
    port: int
    protocol: str  # HTTP | HTTPS | TCP | TLS | Dubbo
    hostname: str | None
    certificates: tuple[TLSCertificate, ...] = ()
    virtual_hosts: tuple[VirtualHost, ...] = ()
    client_traffic: ClientTraffic | None = None
    # TCP and TLS listeners: the connections their TCPRoutes or TLSRoutes hold.
    stream_routes: tuple[StreamRoute, ...] = ()
    dubbo_routes: tuple[DubboRoute, ...] = ()  # Dubbo listeners: in the order Envoy tries them


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int


@dataclass(frozen=True)
class ServiceRef:
    """A Kubernetes Service port whose endpoints the xDS server serves by EDS, under the
    ClusterLoadAssignment named ``assignment`` (the backend's cluster name, shared by its
    policy variants)."""

    cluster: str  # the registered cluster's name
    namespace: str
    name: str
    port: int
    assignment: str


@dataclass(frozen=True)
class ActiveHealthCheck:
    """HTTP: ``path``, ``method``, ``expected_statuses``; TCP: connect, write ``send`` (if
    any), and find ``receive`` (if any) in the answer."""

    path: str = "/"
    method: str | None = None
    timeout_ms: int = 1000
    interval_ms: int = 3000
    unhealthy_threshold: int = 3
    healthy_threshold: int = 1
    expected_statuses: tuple[int, ...] = ()
    protocol: str = "HTTP"  # HTTP | TCP | GRPC
    grpc_service: str | None = None  # GRPC: the service asked about (None: the whole server)
    send: bytes | None = None
    receive: bytes | None = None


@dataclass(frozen=True)
class OutlierDetection:
    interval_ms: int = 3000
    base_ejection_ms: int = 30000
    max_ejection_percent: int = 10
    consecutive_5xx: int = 5
    consecutive_gateway_errors: int = 0
    consecutive_local_origin_failures: int = 5
    split_external_local_origin_errors: bool = False


@dataclass(frozen=True)
class CircuitBreaker:
    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 1024
    max_requests_per_connection: int | None = None


@dataclass(frozen=True)
class ClusterSettings:
    """A BackendTrafficPolicy's cluster-level features (applied to a variant of each backend's
    cluster, so routes under different policies never share them)."""

    lb_policy: str = "RoundRobin"  # RoundRobin | LeastRequest | Random | ConsistentHash
    maglev_table_size: int | None = None
    slow_start_ms: int | None = None
    connect_timeout_ms: int | None = None
    idle_timeout_ms: int | None = None
    max_connection_duration_ms: int | None = None
    circuit_breaker: CircuitBreaker | None = None
    active_health_check: ActiveHealthCheck | None = None
    outlier_detection: OutlierDetection | None = None


@dataclass(frozen=True)
class ApiKeyCredential:
    client: str  # the consumer's name
    key: str = field(repr=False)  # never printed


@dataclass(frozen=True)
class DnsSettings:
    """How Envoy follows a backend's host names (when it resolves them itself)."""

    logical: bool = False  # LOGICAL_DNS: the first address of the one name
    refresh_ms: int | None = None  # None: Envoy's default (5 s)
    respect_ttl: bool = False
    resolvers: tuple[tuple[str, int], ...] = ()  # the operator's DNS servers; (): the host's


@dataclass(frozen=True)
class Cluster:
    name: str  # <tenant>/backend/<backend>
    kind: str  # static | dns | eds
    endpoints: tuple[Endpoint, ...]
    protocol: str = "HTTP/1.1"  # HTTP/1.1 | h2c | gRPC
    tls_sni: str | None = None
    tls_ca: str | None = None  # PEM bundle
    tls: bool = False
    invalid_backend: bool = False  # stands for missing backends: its requests answer 500
    # The host name TLS verifies when the platform resolved it (endpoints are its addresses).
    verify_name: str | None = None
    settings: ClusterSettings | None = None  # a BackendTrafficPolicy's variant
    dns: DnsSettings | None = None  # kind dns only
    service: ServiceRef | None = None  # kind eds: the Kubernetes Service it follows


@dataclass(frozen=True)
class RateLimitService:
    """Where the gateway's Envoys ask for global rate limits, and the token that proves which
    gateway asks (``provisioning.ratelimit.tokens``)."""

    host: str  # an IP address (local runtime) or a DNS name (a Kubernetes Service)
    port: int
    token: str
    timeout_ms: int = 100


@dataclass(frozen=True)
class GatewayIR:
    name: str  # <tenant>/<gateway>
    listeners: tuple[Listener, ...]
    clusters: tuple[Cluster, ...]
    api_keys: tuple[ApiKeyCredential, ...] = ()
    basic_auth_users: tuple[BasicAuthUser, ...] = ()
    rate_limit_service: RateLimitService | None = None

    def filter_routes(self) -> list[Route]:
        """Every listener's routes the HTTP filters depend on (``VirtualHost.filter_routes``):
        the translators of filters and of the clusters they call read only these."""
        return [r for lst in self.listeners for vhost in lst.virtual_hosts
                for r in vhost.filter_routes]  # fmt: skip
