"""Incremental compile: what a gateway's last compile built, kept so the next one rebuilds only
what a change touches.

On a gateway with 10,000 routes a one-route change rebuilt 20,000 IR routes and their Envoy
routes (about 2 s); with this it rebuilds one route and its virtual host. Three layers, each
reused only when its inputs are the very ones it was built from:

- a route's domains on a listener and its IR routes there: when the stored route (name, kind,
  spec) is equal and at the same place among the gateway's routes (its index orders
  equal-precedence routes);
- a virtual host's IR (its routes in precedence order): when it is made of the same IR routes;
- a virtual host's Envoy config: when it is the same IR virtual host, with the same
  rate-limit-headers setting of its listener.

Everything else of the gateway (listener specs, backends, policies and how they resolve,
certificates, consumers, secrets, egress, the compile's own parameters) is the memo's context:
when any of it differs, nothing is reused. Whole-gateway parts (HTTP filters, clusters,
listeners) are computed every time, from each virtual host's summaries of its routes
(``VirtualHost.filter_routes`` and ``clusters``, computed once per IR virtual host: a reused one
brings its own). Tests compile random change sequences both
ways and compare the output with a whole compile's (tests/provisioning/test_incremental.py).

What a compile returns is shared with the memo (and with the next compile's output): it is
never changed in place (every consumer copies what it alters; tests included).

Memos are kept per process for the ``GANTRY_INCREMENTAL_GATEWAYS`` gateways compiled most recently.
"""

from bisect import bisect_left
from itertools import compress, count
from operator import is_, is_not

from django.conf import settings

from config.recent import RecentlyUsed
from provisioning.canonical_json import dumps


class CompileMemo:
    """One gateway's. ``begin`` a compile with its context, ``finish`` it once it succeeded:
    what the compile used or built becomes the memo (what it did not use is dropped)."""

    def __init__(self):
        self.context = None
        self._old: dict = {}
        self._new: dict = {}
        # listener → the indices ``routes`` placed anew in this compile, when it compared
        # position by position with the last one (else None)
        self._moved: dict[str, list[int] | None] = {}
        self._texts: dict[int, tuple[dict, str]] = {}  # id(virtual host) → (it, its JSON)
        # (id, parts) of the last revision stored from this memo's compile: while it is the
        # gateway's latest compiled revision (never pruned), those parts are in the database
        self.stored: tuple[int, frozenset[str]] | None = None

    def begin(self, context) -> None:
        if context != self.context:
            self._old = {}
        self.context = context
        self._new = {}
        self._moved = {}

    def finish(self) -> None:
        self._old, self._new = self._new, {}

    def parts_of(self, revision_id: int) -> frozenset[str] | None:
        """The parts of revision ``revision_id`` if it is the one last stored from here."""
        if self.stored is not None and self.stored[0] == revision_id:
            return self.stored[1]
        return None

    def routes(self, listener: str, routes: list[dict], place, build) -> list[tuple]:
        """(domains, is gRPC, IR routes) of each of ``routes`` on ``listener``, in order:
        ``place(route)``'s domains there (none: not on it) and gRPC flag, and ``build(route,
        index)``'s IR routes; or the last compile's, for a route equal to the one it had at the
        same index. Nothing is made for a reused route, and when the gateway has as many routes
        as last time, only those that are not the very same objects are even compared (the
        load shares unchanged routes between compiles): a one-route change costs one pass
        over the list in C, not one in Python."""
        found = self._old.get(("routes", listener))
        if found is not None and len(found[0]) == len(routes):
            old_routes, old_placed = found
            result = list(old_placed)
            placed_anew = []
            for index in compress(count(), map(is_not, routes, old_routes)):
                if routes[index] != old_routes[index]:
                    result[index] = _place(routes[index], index, place, build)
                    placed_anew.append(index)
            self._moved[listener] = placed_anew
        else:
            self._moved[listener] = None
            by_name = {}
            if found is not None:
                for index, (route, placed) in enumerate(zip(*found, strict=True)):
                    by_name[route["name"]] = (index, route, placed)
            result = []
            for index, route in enumerate(routes):
                hit = by_name.get(route["name"])
                if hit is not None and hit[0] == index and (hit[1] is route or hit[1] == route):
                    result.append(hit[2])
                else:
                    result.append(_place(route, index, place, build))
        self._new["routes", listener] = (routes, result)
        return result

    def groups(self, listener: str, placed: list) -> tuple[dict[str, list], set[str]]:
        """(domain → the IR routes of each route on it, in order; the domains with a gRPC
        route) of ``placed`` (what ``routes`` just returned for ``listener``): the last
        compile's, with the lists of the domains of the routes placed anew copied and
        patched, when those routes kept their domains (else grouped anew). Unchanged domains
        keep their very lists, which ``virtual_host`` recognizes at once."""
        key = ("groups", listener)
        found, moved = self._old.get(key), self._moved.get(listener)
        groups = None
        if found is not None and moved is not None:
            old_placed = self._old["routes", listener][1]  # what ``found`` grouped
            groups = _patched(found, old_placed, moved, placed)
        if groups is None:
            groups = _grouped(placed)
        self._new[key] = groups
        return groups[0], groups[1]

    def virtual_host(self, listener: str, domain: str, parts: tuple, build):
        """The IR virtual host of ``domain`` made of ``parts``: (whether it has a gRPC route,
        the list of its routes' IR routes from ``groups``)."""
        key = ("host", listener, domain)
        found = self._old.get(key)
        if found is not None and _same(found[0], parts):
            built = found[1]
        else:
            built = build()
        self._new[key] = (parts, built)
        return built

    def envoy_host(self, vhost, flag, build):
        """The Envoy config of IR virtual host ``vhost`` (``flag``: its listener's setting)."""
        key = ("envoy", vhost.name)
        found = self._old.get(key)
        if found is not None and found[0] is vhost and found[1] == flag:
            built = found[2]
        else:
            built = build()
        self._new[key] = (vhost, flag, built)
        return built

    def keep_texts(self, resources) -> None:
        """Keeps the canonical JSON of each virtual host of ``resources`` (for ``text``),
        reusing the text the last call kept for the same dict object (compiled output never
        changes): a one-route change writes one virtual host's text."""
        texts: dict[int, tuple[dict, str]] = {}
        for config in resources.routes:
            for vhost in config.get("virtual_hosts", ()):
                texts[id(vhost)] = (vhost, self.text(vhost))
        self._texts = texts

    def text(self, value: dict) -> str:
        """The canonical JSON of a virtual host, as ``keep_texts`` kept it."""
        found = self._texts.get(id(value))
        return found[1] if found is not None and found[0] is value else dumps(value)


def _place(route: dict, index: int, place, build) -> tuple:
    domains, grpc = place(route)
    return (domains, grpc, tuple(build(route, index)) if domains else ())


def _same(old: tuple, new: tuple) -> bool:
    """The same flag and the very same IR routes (the same list: nothing to compare)."""
    if old[0] != new[0]:
        return False
    old_parts, new_parts = old[1], new[1]
    return old_parts is new_parts or (
        len(old_parts) == len(new_parts) and all(map(is_, old_parts, new_parts))
    )


def _grouped(placed: list) -> tuple[dict, set, dict]:
    """(domain → its routes' IR routes, gRPC domains, domain → those routes' indices)."""
    by_domain: dict[str, list] = {}
    indices: dict[str, list[int]] = {}
    grpc_domains: set[str] = set()
    for index, (domains, grpc_route, routes) in enumerate(placed):
        for domain in domains:
            by_domain.setdefault(domain, []).append(routes)
            indices.setdefault(domain, []).append(index)
            if grpc_route:
                grpc_domains.add(domain)
    return by_domain, grpc_domains, indices


def _patched(found: tuple, old_placed: list, placed_anew: list, placed: list) -> tuple | None:
    """``found`` (``_grouped`` of ``old_placed``) for ``placed``, which differs at
    ``placed_anew``; None when one of those routes changed domains or its gRPC flag."""
    by_domain, grpc_domains, indices = found
    copied: dict[str, list] = {}
    for index in placed_anew:
        old, new = old_placed[index], placed[index]
        if old[0] != new[0] or old[1] != new[1]:
            return None
        for domain in new[0]:
            parts = copied.get(domain)
            if parts is None:
                parts = copied[domain] = list(by_domain[domain])
            parts[bisect_left(indices[domain], index)] = new[2]
    if not copied:
        return found
    return {**by_domain, **copied}, grpc_domains, indices


class Memos:
    """Per process: the memos of the gateways compiled most recently."""

    def __init__(self, size: int | None = None):
        self._size = size
        self._memos = RecentlyUsed(self.size)

    def size(self) -> int:
        return settings.GANTRY_INCREMENTAL_GATEWAYS if self._size is None else self._size

    def get(self, key) -> CompileMemo | None:
        if self.size() <= 0:
            return None
        return self._memos.setdefault(key, CompileMemo)

    def forget(self) -> None:
        self._memos.clear()


memos = Memos()
