"""A per-process map that keeps the entries used most recently (the incremental reconcile's
caches: one entry per gateway)."""

import threading
from collections import OrderedDict
from collections.abc import Callable


class RecentlyUsed:
    """At most ``size()`` entries; using or setting one makes it the newest, and the oldest
    go first. Safe to share between threads."""

    def __init__(self, size: Callable[[], int]):
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict = OrderedDict()

    def get(self, key, default=None):
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key, value) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > max(self._size(), 0):
                self._entries.popitem(last=False)

    def setdefault(self, key, make: Callable):
        """The entry of ``key``, made (and kept) if there is none."""
        with self._lock:
            if key not in self._entries:
                self._entries[key] = make()
            self._entries.move_to_end(key)
            value = self._entries[key]
            while len(self._entries) > max(self._size(), 0):
                self._entries.popitem(last=False)
            return value

    def pop(self, key) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
