"""Running Django ORM work from the xDS server's event loop.

The work runs in a small pool of threads of our own (``sync_to_async(thread_sensitive=False)``
with that pool), so the loop never blocks on the database and ``close`` can close every
thread's connection. A call on a connection idle for more than ``CHECK_AFTER_IDLE`` seconds
starts with ``close_old_connections`` (an expired connection is closed, and the next query
checks the connection's health first, so one broken by a database outage is replaced); a call
that fails drops its connection. A connection used a moment ago skips the check: a change's
reads follow each other within milliseconds, and each check is a round trip.
"""

import asyncio
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection, connections

WORKERS = 4
CHECK_AFTER_IDLE = 1.0
_used = threading.local()  # per thread: when its connection last served a call


def guarded(function, *args):
    if time.monotonic() - getattr(_used, "at", 0.0) > CHECK_AFTER_IDLE:
        close_old_connections()
    try:
        result = function(*args)
    except Exception:
        # Whatever state the connection is in after an error, do not reuse it.
        connection.close()
        _used.at = 0.0
        raise
    if connection.errors_occurred:  # an error the function handled itself
        close_old_connections()
        _used.at = 0.0
    else:
        _used.at = time.monotonic()
    return result


class DatabaseThreads:
    def __init__(self, workers: int = WORKERS):
        self.workers = workers
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xds-db")

    async def run(self, function, *args):
        call = sync_to_async(guarded, thread_sensitive=False, executor=self.executor)
        return await call(function, *args)

    def close(self) -> None:
        """Closes each thread's connection (a barrier makes every worker run one closing task),
        then the pool."""
        barrier = threading.Barrier(self.workers)

        def close_connections():
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)
            connections.close_all()

        futures = [self.executor.submit(close_connections) for _ in range(self.workers)]
        for future in futures:
            future.result(timeout=10)
        self.executor.shutdown(wait=True)


class WriteBatches:
    """``function(items)`` on the database threads, one batch at a time: what arrives while a
    batch is being written waits and goes in the next one. ``await add(item)`` returns once
    the batch that held the item is written, so a caller sees its own write done, and a
    thousand replicas ACKing at once cost a few batches, not a thousand round trips each.

    A batch that fails is written again item by item, so one bad item fails alone."""

    def __init__(self, database: DatabaseThreads, function, limit: int = 500):
        self.database = database
        self.function = function
        self.limit = limit
        self._pending: list[tuple[object, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def add(self, item) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        await future

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.limit], self._pending[self.limit :]
            try:
                await self.database.run(self.function, [item for item, _ in batch])
            except Exception as error:
                if len(batch) == 1:
                    _settle(batch[0][1], error)
                    continue
                for item, future in batch:
                    try:
                        await self.database.run(self.function, [item])
                    except Exception as alone:
                        _settle(future, alone)
                    else:
                        _settle(future, None)
            else:
                for _, future in batch:
                    _settle(future, None)


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():  # its caller was cancelled; the item was written all the same
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
