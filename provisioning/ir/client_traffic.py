"""ClientTrafficPolicy → IR, and the rule for listeners that share a port. Pure: shared by the
compiler and by the policies' status.

A ClientTrafficPolicy targets the gateway or its listeners; a listener's own policy replaces
the gateway's, whole. Listeners on one port are one Envoy listener:

- HTTP listeners on a port share one filter chain and one HTTP connection manager, so every
  setting is shared: they must all have the same effective settings.
- HTTPS listeners each have their own filter chain (selected by SNI), which carries their own
  connection manager, TLS settings and connection limit; only ``connection.bufferLimit`` is a
  setting of the whole Envoy listener, so it must be the same on every HTTPS listener of the
  port.

Listener-level targets are decided oldest policy first: a policy takes the listeners it
targets on a port only if the port's listeners then agree on what they share (so a policy for
one HTTP listener of a shared port must target all of them, or set what the others get); else
those targets are ``Conflicted`` and the listeners keep the gateway's policy.
"""

from dataclasses import replace

from provisioning.ir.durations import to_ms
from provisioning.ir.policies import (
    ACCEPTED,
    CONFLICTED,
    TARGET_NOT_FOUND,
    Resolution,
    TargetResult,
    describe,
    scope_of,
)
from provisioning.ir.quantities import to_bytes
from provisioning.ir.types import ClientTraffic, Listener

KIND = "ClientTrafficPolicy"


def _ms(value: str | None) -> int | None:
    return None if value is None else to_ms(value)


def _bytes(value: str | None) -> int | None:
    return None if value is None else to_bytes(value)


def _seconds(value: str | None) -> int | None:
    return None if value is None else _ms(value) // 1000


def compile_spec(spec: dict) -> ClientTraffic:
    http_timeout = (spec.get("timeout") or {}).get("http") or {}
    connection = spec.get("connection") or {}
    limit = connection.get("connectionLimit") or {}
    xff = (spec.get("clientIPDetection") or {}).get("xForwardedFor") or {}
    tls = spec.get("tls") or {}
    http2 = spec.get("http2") or {}
    headers = spec.get("headers") or {}
    path = spec.get("path") or {}
    keepalive = spec.get("tcpKeepalive")
    return ClientTraffic(
        request_received_timeout_ms=_ms(http_timeout.get("requestReceivedTimeout")),
        idle_timeout_ms=_ms(http_timeout.get("idleTimeout")),
        connection_limit=limit.get("value"),
        connection_close_delay_ms=_ms(limit.get("closeDelay")),
        buffer_limit_bytes=_bytes(connection.get("bufferLimit")),
        xff_num_trusted_hops=xff.get("numTrustedHops"),
        tls_min_version=tls.get("minVersion"), tls_max_version=tls.get("maxVersion"),
        ciphers=tuple(tls.get("ciphers", [])), ecdh_curves=tuple(tls.get("ecdhCurves", [])),
        alpn_protocols=tuple(tls.get("alpnProtocols", [])),
        h2_initial_stream_window=_bytes(http2.get("initialStreamWindowSize")),
        h2_initial_connection_window=_bytes(http2.get("initialConnectionWindowSize")),
        h2_max_concurrent_streams=http2.get("maxConcurrentStreams"),
        disable_rate_limit_headers=headers.get("disableRateLimitHeaders", False),
        preserve_request_id=headers.get("preserveXRequestID", False),
        escaped_slashes=path.get("escapedSlashesAction"),
        merge_slashes=not path.get("disableMergeSlashes", False),
        tcp_keepalive=None if keepalive is None else (
            keepalive.get("probes"), _seconds(keepalive.get("idleTime")),
            _seconds(keepalive.get("interval"))),
    )  # fmt: skip


def _shared(settings: ClientTraffic | None, protocol: str):
    """What the listeners of one port share."""
    if protocol == "HTTPS":
        return (settings.buffer_limit_bytes, settings.tcp_keepalive) if settings else (None, None)
    return settings


def _effective(claims: dict, listener: str) -> str | None:
    return claims.get((KIND, ("listener", listener))) or claims.get((KIND, ("gateway",)))


def _why(listener: str, port: int, protocol: str, others: list[str]) -> str:
    if protocol == "HTTPS":
        shared = "connection.bufferLimit and tcpKeepalive, settings of the whole port"
    else:
        shared = "every setting: HTTP listeners on one port share one connection manager"
    return (f"listener {listener!r} shares port {port} with {', '.join(map(repr, others))}, "
            f"which would get different {KIND} settings; listeners on one port must agree on "
            f"{shared}")  # fmt: skip


def _agree(claims: dict, compiled: dict, names: list[str], protocol: str) -> bool:
    shared = [_shared(compiled.get(_effective(claims, name)), protocol) for name in names]
    return all(part == shared[0] for part in shared)


def settle_ports(resolution: Resolution, policies: list[dict], listeners: list[dict]) -> Resolution:
    """``resolution`` with ClientTrafficPolicy's listener-level targets decided again, oldest
    policy first: a policy takes the listeners it targets on a port (those no older policy
    holds) only if the listeners of that port then agree on what they share; else those
    targets are ``Conflicted`` and the listeners stay free for younger policies. ``policies``
    oldest first; ``listeners``: the gateway's listener specs (``name``, ``port``,
    ``protocol``)."""
    mine = [p for p in policies if p["kind"] == KIND]
    if not mine:
        return resolution
    compiled = {p["name"]: compile_spec(p["spec"]) for p in mine}
    ports: dict[int, list[str]] = {}
    for listener in listeners:
        ports.setdefault(listener["port"], []).append(listener["name"])
    port_of = {listener["name"]: listener for listener in listeners}
    claims = {key: name for key, name in resolution.claims.items()
              if key[0] != KIND or key[1][0] != "listener"}  # fmt: skip
    results = dict(resolution.results)
    for policy in mine:
        name = policy["name"]
        outcome = list(resolution.results.get(name, []))
        wanted: dict[int, list[int]] = {}  # port → indexes of the targets on it
        for index, result in enumerate(outcome):
            scope = scope_of(result.ref)
            if scope[0] != "listener" or result.reason == TARGET_NOT_FOUND:
                continue
            holder = claims.get((KIND, scope))
            if holder is not None:
                message = f"{KIND} {holder!r} already targets {describe(scope)}"
                outcome[index] = TargetResult(result.ref, CONFLICTED, message)
                continue
            wanted.setdefault(port_of[scope[1]]["port"], []).append(index)
        for port, indexes in sorted(wanted.items()):
            trial = dict(claims)
            for index in indexes:
                trial[(KIND, scope_of(outcome[index].ref))] = name
            protocol = port_of[ports[port][0]]["protocol"]
            if _agree(trial, compiled, ports[port], protocol):
                claims = trial
                for index in indexes:
                    ref = outcome[index].ref
                    outcome[index] = TargetResult(ref, ACCEPTED, f"applied to "
                                                  f"{describe(scope_of(ref))}")  # fmt: skip
                continue
            for index in indexes:
                listener = scope_of(outcome[index].ref)[1]
                others = [other for other in ports[port] if other != listener]
                message = _why(listener, port, protocol, others)
                outcome[index] = TargetResult(outcome[index].ref, CONFLICTED, message)
        results[name] = outcome
    for policy in mine:
        results[policy["name"]] = [
            _stream_note(
                _tls_note(policy, _overridden(policy["name"], result, claims), claims, listeners),
                policy, claims, listeners,
            )
            for result in results[policy["name"]]
        ]  # fmt: skip
    return replace(resolution, claims=claims, results=results)


def _tls_note(policy: dict, result: TargetResult, claims: dict, listeners: list[dict]):
    """An accepted target's message says which of its listeners ``tls`` does nothing for."""
    if result.reason != ACCEPTED or not policy["spec"].get("tls"):
        return result
    scope = scope_of(result.ref)
    plain = [
        listener["name"] for listener in listeners
        if listener.get("protocol") == "HTTP"
        and (scope == ("listener", listener["name"])
             or (scope == ("gateway",) and _effective(claims, listener["name"]) == policy["name"]))
    ]  # fmt: skip
    if not plain:
        return result
    names = ", ".join(map(repr, plain))
    return replace(result, message=f"{result.message}; tls has no effect on HTTP listener(s) "
                                   f"{names}")  # fmt: skip


def _stream_note(result: TargetResult, policy: dict, claims: dict, listeners: list[dict]):
    """TCP and TLS listeners proxy whole connections: no setting of a ClientTrafficPolicy is
    applied to them yet (docs/tcp-tls.md), and an accepted target's message says so."""
    if result.reason != ACCEPTED:
        return result
    scope = scope_of(result.ref)
    streams = [
        listener["name"] for listener in listeners
        if listener.get("protocol") in ("TCP", "TLS")
        and (scope == ("listener", listener["name"])
             or (scope == ("gateway",) and _effective(claims, listener["name"]) == policy["name"]))
    ]  # fmt: skip
    if not streams:
        return result
    names = ", ".join(map(repr, streams))
    return replace(result, message=f"{result.message}; not applied to TCP/TLS listener(s) "
                                   f"{names}")  # fmt: skip


def _overridden(policy: str, result: TargetResult, claims: dict) -> TargetResult:
    if result.reason != ACCEPTED or scope_of(result.ref) != ("gateway",):
        return result
    overriding = sorted(f"listener {other[1]!r}" for (kind, other), name in claims.items()
                        if kind == KIND and other[0] == "listener" and name != policy)  # fmt: skip
    return replace(result, overridden_for=tuple(overriding))


def attach(listeners: tuple[Listener, ...], specs: list[dict], resolution: Resolution,
           policies: list[dict]) -> tuple[Listener, ...]:  # fmt: skip
    """``listeners`` (built from ``specs``, in order) with their ClientTrafficPolicy's
    settings. ``resolution`` must have been settled (``settle_ports``)."""
    specs_by_name = {p["name"]: p["spec"] for p in policies if p["kind"] == KIND}
    result = []
    for listener, spec in zip(listeners, specs, strict=True):
        policy = _effective(resolution.claims, spec["name"])
        if policy is not None:
            listener = replace(listener, client_traffic=compile_spec(specs_by_name[policy]))
        result.append(listener)
    return tuple(result)
