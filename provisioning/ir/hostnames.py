"""Gateway API hostname matching: listener hostname × route hostnames → virtual host domains.

A wildcard ``*.example.com`` matches any name with at least one more label in front
(``a.example.com``, ``a.b.example.com``), never ``example.com`` itself.
"""


def matches(pattern: str, name: str) -> bool:
    """Whether hostname ``name`` (possibly a wildcard) falls under ``pattern``."""
    if pattern == "*" or pattern == name:
        return True
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return False


def intersect(listener_hostname: str | None, route_hostnames: list[str]) -> list[str]:
    """The domains a route gets on a listener; empty when they do not overlap."""
    listener = listener_hostname or "*"
    if not route_hostnames:
        return [listener]
    result = []
    for host in route_hostnames:
        if matches(listener, host):
            result.append(host)
        elif matches(host, listener):
            result.append(listener)
    return sorted(set(result), key=result.index)


def specificity(hostname: str | None) -> tuple[int, int]:
    """Sort key: exact names first, then longer wildcards, the catch-all last."""
    if not hostname or hostname == "*":
        return (2, 0)
    if hostname.startswith("*."):
        return (1, -len(hostname))
    return (0, -len(hostname))
