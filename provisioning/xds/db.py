"""Running Django ORM work from the xDS server's event loop.

The work runs in a small pool of threads of our own (``sync_to_async(thread_sensitive=False)``
with that pool), so the loop never blocks on the database and ``close`` can close every
thread's connection. Each call starts and ends with ``close_old_connections``: a connection
broken by a database outage is dropped, and the next call connects again.
"""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection, connections

WORKERS = 4


def _guarded(function, *args):
    close_old_connections()
    try:
        return function(*args)
    except Exception:
        # Whatever state the connection is in after an error, do not reuse it.
        connection.close()
        raise
    finally:
        close_old_connections()


class DatabaseThreads:
    def __init__(self, workers: int = WORKERS):
        self.workers = workers
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xds-db")

    async def run(self, function, *args):
        call = sync_to_async(_guarded, thread_sensitive=False, executor=self.executor)
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
