"""Which routes of a gateway claim a (hostname, match) that an older route already claims.

Gateway API merges all routes of a hostname, and for identical matches the older route wins:
the newer route's rule never sees a request. That is almost always a mistake, so the newer
route reports it in a ``Conflicted`` condition naming the hostname, the match and the winner.

TCPRoutes and TLSRoutes (``stream_claims``) claim a TCP listener whole, or an SNI name on a TLS
port; the older route keeps it.
"""

import json
from dataclasses import dataclass

from provisioning.ir.hostnames import intersect, specificity

MAX_LISTED = 5


def _match_key(match: dict) -> str:
    path = match.get("path", {"type": "PathPrefix", "value": "/"})
    value = path.get("value", "/")
    if path.get("type", "PathPrefix") == "PathPrefix":
        value = value.rstrip("/") or "/"
    key = {
        "path": [path.get("type", "PathPrefix"), value],
        "headers": sorted((h["name"].lower(), h.get("type", "Exact"), h["value"])
                          for h in match.get("headers", [])),
        "query": sorted((q["name"], q.get("type", "Exact"), q["value"])
                        for q in match.get("queryParams", [])),
        "method": match.get("method"),
    }  # fmt: skip
    return json.dumps(key, sort_keys=True)


def _describe(match_key: str) -> str:
    key = json.loads(match_key)
    text = f"{key['path'][0]} {key['path'][1]}"
    if key["method"]:
        text += f" {key['method']}"
    if key["headers"] or key["query"]:
        text += f" (+{len(key['headers'])} header, {len(key['query'])} query matches)"
    return text


def claims(spec: dict) -> list[tuple[str, str]]:
    """(hostname, match) pairs a route claims; no hostnames claims the catch-all ``*``."""
    hostnames = spec.get("hostnames") or ["*"]
    keys = [
        _match_key(match)
        for rule in spec.get("rules", [])
        for match in (rule.get("matches") or [{}])
    ]
    return [(host, key) for host in hostnames for key in dict.fromkeys(keys)]


def find_conflicts(routes: list[tuple[str, list]]) -> dict[str, list[str]]:
    """Route name → what it claims that an older route claimed first (``routes``: each
    route's name and ``claims``, oldest first)."""
    owner: dict[tuple[str, str], str] = {}
    found: dict[str, list[str]] = {}
    for name, claimed in routes:
        for claim in claimed:
            winner = owner.setdefault(claim, name)
            if winner != name:
                host, key = claim
                found.setdefault(name, []).append(
                    f"hostname {host} {_describe(key)} is already claimed by route {winner!r}"
                )
    return found


def conflict_condition(messages: list[str]) -> tuple[str, str, str]:
    if not messages:
        return "False", "NoConflicts", "no other route claims the same hostname and match"
    listed = "; ".join(messages[:MAX_LISTED])
    more = f"; and {len(messages) - MAX_LISTED} more" if len(messages) > MAX_LISTED else ""
    return "True", "RouteConflict", f"{listed}{more}. The older route's rule wins."


@dataclass(frozen=True)
class StreamClaim:
    """A TCPRoute's or TLSRoute's hold on a listener port: every connection to ``port`` (TCP,
    ``server_name`` None) or those whose SNI is ``server_name`` (``*``: any, or none)."""

    port: int
    listener: str
    server_name: str | None
    route: str


STREAM_KINDS = {"TCP": "TCPRoute", "TLS": "TLSRoute"}


def _attached(route: dict, listener: dict) -> bool:
    refs = route["spec"].get("parentRefs")
    return not refs or any(ref.get("sectionName") == listener["name"] for ref in refs)


def stream_claims(
    listeners: list[dict], routes: list[dict]
) -> tuple[list[StreamClaim], dict[str, list[str]]]:
    """Which TCPRoute or TLSRoute gets each (port, SNI name), and what the others lost.

    ``routes``: ``{"name", "kind", "spec"}``, oldest first. A TCP listener goes to its oldest
    TCPRoute. On a TLS port, each SNI name goes to the route of the most specific listener
    hostname that claims it, then the oldest route: Envoy picks one filter chain per name, so
    a name cannot be shared. Pure: translation builds filter chains from the claims, and the
    route services report the losses as ``Conflicted``.
    """
    owner: dict[tuple[int, str | None], str] = {}
    claims: list[StreamClaim] = []
    taken: set[tuple[int, str | None]] = set()
    lost: dict[str, list[str]] = {}
    ordered = sorted(listeners, key=lambda item: specificity(item.get("hostname")))
    for listener in ordered:
        kind = STREAM_KINDS.get(listener.get("protocol", ""))
        if kind is None:
            continue
        for route in routes:
            if route.get("kind") != kind or not _attached(route, listener):
                continue
            if kind == "TCPRoute":
                names: list[str | None] = [None]
            else:
                hostnames = route["spec"].get("hostnames", [])
                names = list(intersect(listener.get("hostname"), hostnames))
            for name in names:
                key = (listener["port"], name)
                winner = owner.setdefault(key, route["name"])
                if winner != route["name"]:
                    what = (
                        f"listener {listener['name']!r} (port {listener['port']})"
                        if name is None
                        else f"hostname {name} on port {listener['port']}"
                    )
                    message = f"{what} is already claimed by {kind} {winner!r}"
                    if message not in lost.get(route["name"], []):
                        lost.setdefault(route["name"], []).append(message)
                elif key not in taken:
                    taken.add(key)
                    claims.append(
                        StreamClaim(listener["port"], listener["name"], name, route["name"])
                    )
    return claims, lost


def stream_conflict_condition(messages: list[str]) -> tuple[str, str, str]:
    if not messages:
        return "False", "NoConflicts", "no other route claims the same listener or hostname"
    listed = "; ".join(messages[:MAX_LISTED])
    more = f"; and {len(messages) - MAX_LISTED} more" if len(messages) > MAX_LISTED else ""
    return "True", "RouteConflict", f"{listed}{more}. The older route keeps it."
