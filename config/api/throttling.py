"""API request throttling with ``Retry-After``: fixed windows counted with an atomic ``INCR``
in the shared cache (Redis in production).

- ``PerCredentialThrottle``: every request, keyed by API token, else by user, else by client
  address; ``GANTRY_API_RATE``.
- ``anonymous_request``: requests that carry no credentials, per client address
  (``GANTRY_API_ANON_RATE``). Called by ``AnonymousThrottleAuthentication``, the last
  authentication class, because DRF checks permissions (a 401) before throttles: an
  unauthenticated caller would otherwise never be throttled.
- ``failed_authentication`` / ``check_failures``: unknown, revoked or expired tokens, per client
  address (``GANTRY_API_AUTH_FAILURE_RATE``); once past it, even a good token from that address
  waits, so guessing costs one window per few tries.

The client address is ``request.client_ip`` (``config.middleware.client_address``): the TCP
peer, or the address ``GANTRY_TRUSTED_PROXY_COUNT`` hops from the right of X-Forwarded-For.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    count, _, unit = rate.partition("/")
    unit = unit.rstrip("s")
    if unit[:1] in ("s", "m", "h", "d") and unit not in _UNITS:
        unit = {"s": "second", "m": "minute", "h": "hour", "d": "day"}[unit[:1]]
    return int(count), _UNITS[unit]


@dataclass(frozen=True)
class Count:
    allowed: bool
    wait: float  # seconds until the window resets


def _window(key: str, rate: str, add: int) -> Count:
    """Adds ``add`` to this window's counter for ``key`` (0: only reads it)."""
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now // period)
    name = f"throttle:{key}:{period}:{window}"
    wait = max(1.0, (window + 1) * period - now)
    if not add:
        return Count(allowed=(cache.get(name) or 0) < limit, wait=wait)
    cache.add(name, 0, timeout=period + 1)
    try:
        count = cache.incr(name, add)
    except ValueError:  # the key expired between add and incr
        cache.add(name, add, timeout=period + 1)
        count = add
    return Count(allowed=count <= limit, wait=wait)


def client_address(request) -> str:
    return getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR") or "unknown"


def anonymous_request(request) -> None:
    """Throttled (429) past ``GANTRY_API_ANON_RATE`` requests without credentials."""
    count = _window(f"anon:{client_address(request)}", settings.GANTRY_API_ANON_RATE, 1)
    if not count.allowed:
        raise Throttled(wait=count.wait)


def check_failures(request) -> None:
    """Throttled (429) while the address is past its failed-authentication allowance."""
    key = f"authfail:{client_address(request)}"
    count = _window(key, settings.GANTRY_API_AUTH_FAILURE_RATE, 0)
    if not count.allowed:
        raise Throttled(wait=count.wait, detail="too many failed authentications from here")


def failed_authentication(request) -> None:
    """Counts a failure; Throttled (429) if it takes the address past its allowance."""
    key = f"authfail:{client_address(request)}"
    count = _window(key, settings.GANTRY_API_AUTH_FAILURE_RATE, 1)
    if not count.allowed:
        raise Throttled(wait=count.wait, detail="too many failed authentications from here")


class AnonymousThrottleAuthentication(BaseAuthentication):
    """Authenticates nobody: reached only when no other class recognised credentials."""

    def authenticate(self, request):
        anonymous_request(request)
        return


class AnonymousThrottleScheme(OpenApiAuthenticationExtension):
    """No security scheme in the OpenAPI schema: it is a throttle, not a way to sign in."""

    target_class = AnonymousThrottleAuthentication
    name: list = []

    def get_security_definition(self, auto_schema):
        return []

    def get_security_requirement(self, auto_schema):
        return None


class PerCredentialThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        count = _window(self._identity(request), settings.GANTRY_API_RATE, 1)
        self._wait = count.wait
        return count.allowed

    def wait(self) -> float:
        return self._wait

    def _identity(self, request) -> str:
        token = getattr(request, "auth", None)
        if token is not None and getattr(token, "prefix", None):
            return f"token:{token.prefix}"
        if request.user and request.user.is_authenticated:
            return f"user:{request.user.pk}"
        return f"addr:{client_address(request)}"
