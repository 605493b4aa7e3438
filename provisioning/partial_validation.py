"""Validating only what changed since the last config Envoy accepted for a gateway.

A change to one route of a gateway with 10,000 routes changes one virtual host; parsing the
other 9,999 again (in Python to protobuf, then in Envoy) took seconds and told nothing new.
When a candidate differs from the last config this process's Envoy accepted for the gateway
only in the virtual hosts of its route configurations (listeners, clusters and secrets equal,
the same route configuration names), the candidate is checked with every route configuration
holding only its new and changed virtual hosts, and a changed virtual host whose own fields
(all but its routes) are as accepted holding only its new and changed routes. That part is a
config of its own, with the same listeners and clusters, so Envoy checks of it what it would
of the whole:

- each changed virtual host and route as Envoy would parse it among the others (its routes,
  matchers, per-filter configs against the same listener's filter chain and its virtual
  host's, the clusters it names): Envoy checks a route on its own, so the routes accepted
  before in the same virtual host tell nothing new (a one-route change on a host of 200
  routes parses one in Python and in Envoy, not 200);
- what concerns the whole route configuration (unique virtual host names, no domain twice) is
  checked here, over all of them: a duplicate sends the candidate to a whole check.

Anything else (the first check of a gateway in this process, a listener, cluster or secret
changed, a route configuration added or removed) is a whole check. The bases are kept per
process, for the last ``GANTRY_INCREMENTAL_GATEWAYS`` gateways validated (least recently used
dropped first); a rejected candidate is never a base.
"""

from django.conf import settings

from config.recent import RecentlyUsed
from provisioning.translate import Resources


def changed_part(base: Resources, candidate: Resources) -> Resources | None:
    """What of ``candidate`` must be checked when ``base`` was accepted: its listeners,
    clusters and secrets with route configurations holding only the virtual hosts not in
    ``base``; None when the whole candidate must be checked."""
    if (
        base.listeners != candidate.listeners
        or base.clusters != candidate.clusters
        or base.secrets != candidate.secrets
    ):
        return None
    before = {config["name"]: config for config in base.routes}
    if len(before) != len(base.routes) or set(before) != {c["name"] for c in candidate.routes}:
        return None
    routes = []
    for config in candidate.routes:
        old = before[config["name"]]
        if {k: v for k, v in config.items() if k != "virtual_hosts"} != {
            k: v for k, v in old.items() if k != "virtual_hosts"
        }:
            return None
        vhosts = config.get("virtual_hosts", [])
        if not _distinct(vhosts):
            return None
        known = {vhost["name"]: vhost for vhost in old.get("virtual_hosts", [])}
        changed = [
            _changed_routes(known.get(vhost["name"]), vhost)
            for vhost in vhosts
            if known.get(vhost["name"]) != vhost
        ]
        routes.append({**config, "virtual_hosts": changed})
    return Resources(candidate.listeners, tuple(routes), candidate.clusters, candidate.secrets)


def _changed_routes(old: dict | None, new: dict) -> dict:
    """Virtual host ``new`` with only the routes ``old`` (the accepted one of its name) lacks,
    when their own fields are equal; else ``new`` whole."""
    if old is None or _head(old) != _head(new):
        return new
    before: dict = {}
    for route in old.get("routes", ()):
        before.setdefault(route.get("name"), []).append(route)
    routes = [
        route for route in new.get("routes", ()) if route not in before.get(route.get("name"), ())
    ]
    return {**new, "routes": routes}


def _head(vhost: dict) -> dict:
    return {key: value for key, value in vhost.items() if key != "routes"}


def _distinct(vhosts: list[dict]) -> bool:
    """No virtual host name and no domain twice in one route configuration (Envoy refuses
    both, and a part holding one of the two would not show it)."""
    names = [vhost["name"] for vhost in vhosts]
    domains = [domain for vhost in vhosts for domain in vhost.get("domains", [])]
    return len(set(names)) == len(names) and len(set(domains)) == len(domains)


class Bases:
    """The last accepted config of each gateway recently validated in this process."""

    def __init__(self, size: int | None = None):
        self._accepted = RecentlyUsed(
            lambda: settings.GANTRY_INCREMENTAL_GATEWAYS if size is None else size
        )

    def get(self, key) -> Resources | None:
        return self._accepted.get(key)

    def accepted(self, key, resources: Resources) -> None:
        self._accepted.put(key, resources)

    def forget(self, key=None) -> None:
        if key is None:
            self._accepted.clear()
        else:
            self._accepted.pop(key)


bases = Bases()
