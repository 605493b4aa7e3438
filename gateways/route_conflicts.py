"""Which routes of a gateway claim a (hostname, match) that an older route already claims.

Gateway API merges all routes of a hostname, and for identical matches the older route wins:
the newer route's rule never sees a request. That is almost always a mistake, so the newer
route reports it in a ``Conflicted`` condition naming the hostname, the match and the winner.
"""

import json

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


def find_conflicts(routes: list[tuple[str, dict]]) -> dict[str, list[str]]:
    """Route name → what it claims that an older route claimed first (``routes`` oldest first)."""
    owner: dict[tuple[str, str], str] = {}
    found: dict[str, list[str]] = {}
    for name, spec in routes:
        for claim in claims(spec):
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
