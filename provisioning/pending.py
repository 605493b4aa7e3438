"""Writes that find a reconcile of their gateway already waiting send none of their own.

A reconcile reads the gateway's whole desired state when it begins, so one that was sent and
has not begun will carry every write committed before it begins. ``claim`` (after a write's
commit) records the one sent; ``release`` (as any reconcile of the gateway begins, before it
reads anything: the heal's too) forgets it, so a write committed after that sends a new one.
A burst of writes to one gateway (a deploy script creating 300 routes) then costs a few
reconciles, not 300 that other gateways' changes queue behind.

Never a change lost: a write is either committed before the waiting reconcile's ``release``
(which comes before its read), or it sees no mark and sends its own. A mark older than
``GANTRY_RECONCILE_PENDING_SECONDS`` is taken for a lost message: the next write sends again.
"""

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from provisioning.models import PendingReconcile

TABLE = PendingReconcile._meta.db_table
# PostgreSQL: the statement's own transaction commits without waiting for the disk (a mark is
# not worth a flush of the log on a change's way; a mark lost to a database crash costs a
# reconcile sent twice, or one sent once the mark goes stale). One statement, one round trip.
ASYNC_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"
# Insert the mark; an existing one is replaced only when stale, or when it is a fan-out's and
# this caller's is not (the gateway's own write is then sent to the main queue rather than
# wait behind the fan-out queue). A row comes back when this caller is to send. (The table's
# name is the model's; every value is a parameter.)
CLAIM = (
    f"INSERT INTO {TABLE} (gateway_id, sent_at, fanout) "  # noqa: S608
    f"SELECT %s, %s, %s WHERE {{commit}} "
    f"ON CONFLICT (gateway_id) DO UPDATE SET sent_at = excluded.sent_at, "
    f"fanout = excluded.fanout WHERE {TABLE}.sent_at < %s "
    f"OR ({TABLE}.fanout AND NOT excluded.fanout) RETURNING gateway_id"
)
RELEASE = f"DELETE FROM {TABLE} WHERE gateway_id = %s AND {{commit}}"  # noqa: S608


def _execute(template: str, params: list):
    """The first row the statement returns, if any. Outside a transaction, one statement in one
    round trip, committed asynchronously on PostgreSQL (``ASYNC_COMMIT``); inside one, in a
    savepoint (an error leaves the caller's transaction usable) and the caller's commit."""
    if connection.in_atomic_block:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(template.format(commit="1 = 1"), params)
            return cursor.fetchone() if cursor.description else None
    asynchronous = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute(template.format(commit=ASYNC_COMMIT if asynchronous else "1 = 1"), params)
        return cursor.fetchone() if cursor.description else None


def claim(gateway_id: int, fanout: bool = False) -> bool:
    """Whether the caller should send a reconcile of the gateway: none is waiting, or the one
    waiting is in the fan-out queue and this one (``fanout`` false) is not."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.GANTRY_RECONCILE_PENDING_SECONDS)
    try:
        return _execute(CLAIM, [gateway_id, now, fanout, stale]) is not None
    except IntegrityError:  # the gateway was deleted meanwhile: the reconcile is a no-op
        return True


def release(gateway_id: int) -> None:
    """A reconcile of the gateway begins: later writes send their own."""
    _execute(RELEASE, [gateway_id])
