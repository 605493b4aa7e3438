"""Each tenant's share of the main queue: a tenant that sends more reconciles than
``GANTRY_TENANT_RECONCILE_BURST`` within ``GANTRY_TENANT_RECONCILE_WINDOW`` seconds (changes to
many of its gateways one by one: a script, a flood) has the rest sent at a lower message
priority, so another tenant's change is not queued behind them. docs/delivery.md#fair-shares

Counted in the shared cache's Redis (production: one round trip, ``SET NX EX`` and ``INCR``,
per reconcile sent; without Redis, in each process's cache). If it cannot be reached, the
reconcile is sent at full priority: a change is never held back for want of a count.
"""

import functools
import logging
import time

from django.conf import settings
from django.core.cache import cache

from config.recent import RecentlyUsed

log = logging.getLogger(__name__)

DEMOTED = 3  # kombu's second priority step: after every tenant's reconciles at full priority
FLOODING = 6  # past ten times the burst: after small fan-outs too (provisioning.tasks)
# A gateway never moves to another tenant: its tenant is looked up once per process.
_tenants = RecentlyUsed(lambda: 10_000)


def key(tenant_id: int) -> str:
    """The cache key counting the tenant's reconciles in the window of now."""
    window = settings.GANTRY_TENANT_RECONCILE_WINDOW
    return f"fair-share:{tenant_id}:{window}:{int(time.time() // window)}"


def tenant_of(gateway_id: int) -> int | None:
    tenant = _tenants.get(gateway_id)
    if tenant is None:
        from gateways.models import Gateway

        tenant = Gateway.objects.filter(pk=gateway_id).values_list("tenant_id", flat=True).first()
        if tenant is not None:
            _tenants.put(gateway_id, tenant)
    return tenant


def priority(gateway_id: int) -> int | None:
    """The priority of a reconcile of the gateway sent now, counted against its tenant's
    burst: ``None`` (full) within it, ``DEMOTED`` past it, ``FLOODING`` past ten times it."""
    try:
        tenant = tenant_of(gateway_id)
        if tenant is None:
            return None  # deleted meanwhile: its reconcile is a no-op
        count = _count(key(tenant), settings.GANTRY_TENANT_RECONCILE_WINDOW + 1)
    except Exception as error:  # noqa: BLE001 — never hold a change back for a count
        log.warning("tenant reconcile count unavailable (%s): sent at full priority", error)
        return None
    burst = settings.GANTRY_TENANT_RECONCILE_BURST
    if count <= burst:
        return None
    return DEMOTED if count <= 10 * burst else FLOODING


def _count(name: str, ttl: int) -> int:
    """Adds one to the counter ``name`` (made with ``ttl`` seconds to live): with Redis, one
    round trip; otherwise in this process's cache."""
    if settings.REDIS_URL:  # the cache's Redis, under the cache's key prefix
        pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
        pipe.set(cache.make_key(name), 0, ex=ttl, nx=True)
        pipe.incr(cache.make_key(name))
        return pipe.execute()[1]
    cache.add(name, 0, timeout=ttl)
    try:
        return cache.incr(name)
    except ValueError:  # expired between add and incr: this is the window's first
        cache.add(name, 1, timeout=ttl)
        return 1


@functools.cache
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
