"""Telling xDS servers that a gateway's current revision changed.

The notifier is ``GANTRY_XDS_NOTIFIER`` if set, else ``redis`` when ``REDIS_URL`` is set, else
``postgres`` on PostgreSQL, else ``local`` (the embedded default).

- ``redis``: a message on ``<cache prefix>:xds:<tenant/gateway>`` once the transaction that
  changed the current revision commits; the servers subscribe to the pattern.
- ``postgres``: ``pg_notify('gantry_xds', '<tenant/gateway>')`` inside that transaction, which
  PostgreSQL delivers at commit (and never for a rollback); the servers ``LISTEN``.
- ``local``: after commit, a UDP datagram to the xDS server on this host
  (``GANTRY_XDS_ADDRESS``:``GANTRY_XDS_PORT``, the same number as its gRPC port); one server.
- ``none``: nothing; the servers poll.

A lost message costs at most one poll interval, so notifying never fails the write.
"""

import logging
import socket

from django.conf import settings
from django.db import connection, transaction

log = logging.getLogger(__name__)

_client = None
PG_CHANNEL = "gantry_xds"
NOTIFIERS = ("redis", "postgres", "local", "none")


def notifier() -> str:
    configured = settings.GANTRY_XDS_NOTIFIER
    if configured:
        return configured
    if settings.REDIS_URL:
        return "redis"
    return "postgres" if connection.vendor == "postgresql" else "local"


def send_local(gateway_key: str) -> None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(
                gateway_key.encode(), (settings.GANTRY_XDS_ADDRESS, settings.GANTRY_XDS_PORT)
            )
    except OSError as error:  # the server's polling catches up
        log.warning("xds: could not notify a change of %s: %s", gateway_key, error)


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
    kind = notifier()
    if kind == "redis":
        transaction.on_commit(lambda: publish(gateway_key))
    elif kind == "local":
        transaction.on_commit(lambda: send_local(gateway_key))
    elif kind == "postgres":
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [PG_CHANNEL, gateway_key])
        except Exception as error:  # the servers' polling catches up
            log.warning("xds: could not notify a change of %s: %s", gateway_key, error)
