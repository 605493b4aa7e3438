"""Reading the JSON columns of many rows fast: per process, what each text last read for a
gateway decoded to (``decoder``), or what each route spec of a digest decoded to
(``route_specs``: the spec is not even read when its digest is known).

A gateway with 10,000 routes made every route write and every reconcile decode 10,000 specs
(and statuses) again, most of their time. The database returns a column's JSON text
(``Cast(field, TextField())``) and ``decoder`` decodes each distinct text once; the next read
decodes only texts it has not seen. Keyed by content, so never stale. A key (purpose,
gateway) keeps only the texts its last read used, so each reader has a purpose of its own;
for the ``GANTRY_INCREMENTAL_GATEWAYS`` gateways read most recently. What comes back is shared
between reads: never change it in place.
"""

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings

from config.recent import RecentlyUsed
from config.statements import Statement

# A few purposes per gateway.
_decoded = RecentlyUsed(lambda: settings.GANTRY_INCREMENTAL_GATEWAYS * 4)


class Decoder:
    """``decoder(text)``: the decoded value; ``keep()`` once the read is done."""

    def __init__(self, key: tuple, decode: Callable[[str], Any]):
        self.key, self.decode = key, decode
        self._known = _decoded.get(key, {})
        self._seen: dict[str, Any] = {}

    def __call__(self, text: str) -> Any:
        value = self._seen.get(text)
        if value is None:
            value = self._known.get(text)
            if value is None:
                value = self.decode(text)
            self._seen[text] = value
        return value

    def keep(self) -> None:
        _decoded.put(self.key, self._seen)


def decoder(purpose: str, gateway_id: int, decode: Callable[[str], Any] = json.loads) -> Decoder:
    return Decoder((purpose, gateway_id), decode)


def _spec_texts(pks):
    from django.db.models import TextField
    from django.db.models.functions import Cast

    from gateways.models import Route

    return Route.objects.filter(pk__in=pks).values_list(
        "pk", "spec_digest", Cast("spec", TextField())
    )


_SPEC_TEXTS = Statement(_spec_texts)  # compiled once per process (config/statements.py)


def route_specs(purpose: str, gateway_id: int, rows: list[tuple[int, str]],
                decode: Callable[[str], Any] = json.loads) -> dict[int, Any]:  # fmt: skip
    """Route pk → ``decode(its spec's JSON text)``, for ``rows`` of (pk, ``spec_digest``) of
    one gateway's routes: only the specs of digests this process has not decoded for
    (``purpose``, gateway) are read from the database (one query). A reconcile of a gateway of
    10,000 routes after a one-route change reads one spec, not 10,000 (casting them to text
    was most of the load)."""
    key = (purpose, gateway_id)
    known = _decoded.get(key, {})
    missing = [pk for pk, digest in rows if digest not in known]
    by_pk: dict[int, Any] = {}
    if missing:
        for pk, digest, text in _SPEC_TEXTS.rows(pks=missing):
            if digest not in known:
                known[digest] = decode(text)
            by_pk[pk] = known[digest]
    seen: dict[str, Any] = {}
    found: dict[int, Any] = {}
    for pk, digest in rows:
        # A row rewritten between the two reads (by a writer without the gateway's lock)
        # has the spec read second.
        value = by_pk[pk] if pk in by_pk else known[digest]
        seen[digest] = found[pk] = value
    _decoded.put(key, seen)
    return found


def forget() -> None:
    _decoded.clear()


def mentioning(rows, field: str, name: str):
    """``rows`` (a queryset) narrowed to those whose JSON ``field`` holds ``name`` as a string
    somewhere: a superset of those naming it in any one place, found by the database without
    sending or decoding the others. For names JSON never escapes (DNS labels)."""
    from django.db.models import TextField
    from django.db.models.functions import Cast

    return rows.annotate(_text=Cast(field, TextField())).filter(_text__contains=f'"{name}"')
