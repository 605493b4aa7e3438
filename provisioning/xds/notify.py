"""Telling xDS servers that a gateway's current revision changed.

With Redis (``REDIS_URL``) a message is published on ``<cache prefix>:xds:<tenant/gateway>``
once the transaction that changed the current revision commits; the servers subscribe and
re-read that gateway at once. Without Redis nothing is sent and the servers poll. A lost
message costs at most one poll interval, so publishing never fails the write.
"""

import logging

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

_client = None


def channel_prefix() -> str:
    return f"{settings.CACHE_KEY_PREFIX}:xds:"


def channel(gateway_key: str) -> str:
    return channel_prefix() + gateway_key


def _redis():
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
        )
    return _client


def publish(gateway_key: str) -> None:
    if not settings.REDIS_URL:
        return
    try:
        _redis().publish(channel(gateway_key), b"1")
    except Exception as error:  # the servers' polling catches up
        log.warning("xds: could not publish a change of %s: %s", gateway_key, error)


def notify_changed(gateway_key: str) -> None:
    """After the current transaction commits (never for a rolled-back one)."""
    if settings.REDIS_URL:
        transaction.on_commit(lambda: publish(gateway_key))
