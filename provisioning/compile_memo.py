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

from itertools import compress, count
from operator import is_not

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
        self._texts: dict[int, tuple[dict, str]] = {}  # id(virtual host) → (it, its JSON)
        # (id, parts) of the last revision stored from this memo's compile: while it is the
        # gateway's latest compiled revision (never pruned), those parts are in the database
        self.stored: tuple[int, frozenset[str]] | None = None

    def begin(self, context) -> None:
        if context != self.context:
            self._old = {}
        self.context = context
        self._new = {}

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
            for index in compress(count(), map(is_not, routes, old_routes)):
                if routes[index] != old_routes[index]:
                    result[index] = _place(routes[index], index, place, build)
        else:
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

    def virtual_host(self, listener: str, domain: str, parts: tuple, build):
        """The IR virtual host of ``domain`` made of ``parts`` (each a route's IR routes)."""
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
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))


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
