"""Reading the JSON columns of many rows fast: per process, what each text last read for a
gateway decoded to.

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


def forget() -> None:
    _decoded.clear()
