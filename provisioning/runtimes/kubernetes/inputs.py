"""What rendering takes: plain frozen dataclasses, built from the database by the driver (or by
tests), so rendering is a pure function of them."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterSettings:
    """How a registered cluster runs gateways."""

    exposure: str  # "LoadBalancer" | "NodePort"
    envoy_image: str
    xds_address: str
    xds_port: int
    # The egress policy's ranges (GANTRY_EGRESS_*): what gateways may never reach (the safe
    # defaults are added whatever this says), and the operator's exceptions.
    denied_cidrs: tuple[str, ...] = ()
    allowed_cidrs: tuple[str, ...] = ()
    # The platform's own image: the pods' init container enrolls with it (GANTRY_PLATFORM_IMAGE).
    platform_image: str = "gantry:0.1.0"


@dataclass(frozen=True)
class TenantQuota:
    """The plan's limits, as the tenant namespace's ResourceQuota and LimitRange need them."""

    max_gateways: int
    max_replicas_per_gateway: int
    max_vcpu: int  # of the largest size the plan allows
    max_memory_gib: int
    min_vcpu: int  # of the smallest
    min_memory_gib: int


@dataclass(frozen=True)
class TenantInput:
    slug: str
    quota: TenantQuota


@dataclass(frozen=True)
class ListenerPort:
    name: str
    port: int
    protocol: str  # HTTP | HTTPS


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int = 70


@dataclass(frozen=True)
class BackendAddress:
    """Where the gateway's Envoy sends traffic: an IP or a DNS name, and a port."""

    host: str
    port: int


@dataclass(frozen=True)
class DiscoveredPeers:
    """Pods of a granted namespace the gateway's backends discover (docs/discovery.md), on the
    target ports their EndpointSlices name."""

    namespace: str
    ports: tuple[int, ...]


@dataclass(frozen=True)
class GatewayInput:
    tenant: str
    name: str
    vcpu: int
    memory_gib: int
    replicas: int
    listeners: tuple[ListenerPort, ...]
    backends: tuple[BackendAddress, ...] = ()
    autoscaling: Autoscaling | None = None
    discovered: tuple[DiscoveredPeers, ...] = ()
    # The platform's rate limit service (host, port), when a policy has global rate limits.
    rate_limit_service: tuple[str, int] | None = None

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(sorted({listener.port for listener in self.listeners}))
