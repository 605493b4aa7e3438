"""Per-credential request throttling with ``Retry-After``.

A fixed window counted with an atomic ``INCR`` in the shared cache (Redis in production), keyed
by API token, else by user, else by client address. ``GANTRY_API_RATE`` sets the rate.
"""

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    count, _, unit = rate.partition("/")
    unit = unit.rstrip("s")
    if unit[:1] in ("s", "m", "h", "d") and unit not in _UNITS:
        unit = {"s": "second", "m": "minute", "h": "hour", "d": "day"}[unit[:1]]
    return int(count), _UNITS[unit]


class PerCredentialThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        limit, period = parse_rate(settings.GANTRY_API_RATE)
        now = time.time()
        window = int(now // period)
        key = f"throttle:{self._identity(request)}:{period}:{window}"
        cache.add(key, 0, timeout=period + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # the key expired between add and incr
            cache.add(key, 1, timeout=period + 1)
            count = 1
        self._wait = (window + 1) * period - now
        return count <= limit

    def wait(self) -> float:
        return max(1.0, self._wait)

    def _identity(self, request) -> str:
        token = getattr(request, "auth", None)
        if token is not None and getattr(token, "prefix", None):
            return f"token:{token.prefix}"
        if request.user and request.user.is_authenticated:
            return f"user:{request.user.pk}"
        return f"addr:{getattr(request, 'client_ip', None) or self.get_ident(request)}"
