"""IR types. Names are deterministic and hierarchical: ``<tenant>/<gateway>/…``."""

from dataclasses import dataclass, field


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
    percent: int = 100


@dataclass(frozen=True)
class DirectResponse:
    status: int
    body: str = ""


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
    timeout_ms: int | None = None
    backend_timeout_ms: int | None = None
    # Precedence tie-breakers (Gateway API): route creation order, then route name, rule order.
    order: tuple = ()


@dataclass(frozen=True)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class TLSCertificate:
    name: str
    certificate_chain: str
    private_key: str = field(repr=False)  # never printed
    dns_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Listener:
    """One gateway listener (several may share a port, told apart by hostname)."""

    name: str
    port: int
    protocol: str  # HTTP | HTTPS
    hostname: str | None
    certificates: tuple[TLSCertificate, ...] = ()
    virtual_hosts: tuple[VirtualHost, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int


@dataclass(frozen=True)
class Cluster:
    name: str  # <tenant>/backend/<backend>
    kind: str  # static | dns
    endpoints: tuple[Endpoint, ...]
    protocol: str = "HTTP/1.1"  # HTTP/1.1 | h2c | gRPC
    tls_sni: str | None = None
    tls_ca: str | None = None  # PEM bundle
    tls: bool = False
    invalid_backend: bool = False  # stands for missing backends: its requests answer 500


@dataclass(frozen=True)
class GatewayIR:
    name: str  # <tenant>/<gateway>
    listeners: tuple[Listener, ...]
    clusters: tuple[Cluster, ...]
