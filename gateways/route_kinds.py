"""Which route kinds attach to which listener protocols (Gateway API ``supportedKinds``).

HTTP and HTTPS listeners take HTTPRoutes and GRPCRoutes; a TCP listener takes TCPRoutes, a
TLS listener (mode Passthrough) TLSRoutes, and a Dubbo listener (a Gantry extension,
docs/dubbo.md) DubboRoutes. A route naming a listener of another protocol is not
accepted there (``NotAllowedByListeners``); a route naming no listener attaches to every
listener whose protocol takes its kind.
"""

GROUP = "gateway.networking.k8s.io"
HTTP_KINDS = ("HTTPRoute", "GRPCRoute")
LISTENER_KINDS = {
    "HTTP": HTTP_KINDS,
    "HTTPS": HTTP_KINDS,
    "TCP": ("TCPRoute",),
    "TLS": ("TLSRoute",),
    "Dubbo": ("DubboRoute",),
}
STREAM_KINDS = ("TCPRoute", "TLSRoute")


def kinds_for(protocol: str) -> tuple[str, ...]:
    return LISTENER_KINDS.get(protocol, ())


def allows(listener: dict, kind: str) -> bool:
    """Whether ``listener`` (a gateway spec's listener) takes routes of ``kind``."""
    return kind in kinds_for(listener.get("protocol", "HTTP"))


def supported_kinds(listener: dict) -> list[dict]:
    """A listener status's ``supportedKinds``."""
    return [{"group": GROUP, "kind": kind} for kind in kinds_for(listener.get("protocol", "HTTP"))]
