"""Where the counts live. ``RedisCounters``: every service process and every replica share them
(the production store). ``MemoryCounters``: one process's own, shared by every replica that asks
that process — the zero-setup default of ``make run``, where one service runs."""

import asyncio
import hashlib
import time

import redis.asyncio as redis

from provisioning.ratelimit.limits import Limit, window_start


class CountersUnavailable(Exception):
    """The store cannot be reached: the service answers UNAVAILABLE and each gateway's filter
    applies its failure mode (open: let through; closed: refuse)."""


def counter_key(prefix: str, domain: str, limit: Limit, start: int) -> str:
    digest = hashlib.blake2b(f"{domain}\x1d{limit.key}".encode(), digest_size=16).hexdigest()
    return f"{prefix}:rl:{digest}:{start}"


# One call for many counters: KEYS are the counters, ARGV their hits and seconds to live.
# INCRBY is atomic, so replicas counting at once never lose a hit; EXPIRE NX sets a counter's
# lifetime once, when its window's first hit creates it.
HIT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCRBY', key, ARGV[2 * i - 1])
  redis.call('EXPIRE', key, ARGV[2 * i], 'NX')
end
return counts
"""


class RedisCounters:
    """Counts in Redis. Calls that arrive together (Envoy asks for many requests at once) are
    counted in one round trip: the first schedules a flush for the next turn of the event
    loop, and every call until then joins it."""

    def __init__(self, url: str, prefix: str, timeout: float = 0.05):
        self.prefix = prefix
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        self.script = self.client.register_script(HIT_SCRIPT)
        self.pending: list[tuple[list[str], list[int], asyncio.Future]] = []
        self.flushing: set[asyncio.Task] = set()  # held: the loop keeps tasks weakly

    async def hit(self, domain: str, limits: list[Limit], hits: int, now: float) -> list[int]:
        """Adds ``hits`` to each limit's counter for the window ``now`` is in; the counts after."""
        keys, args = [], []
        for limit in limits:
            start = window_start(now, limit.window)
            keys.append(counter_key(self.prefix, domain, limit, start))
            # Kept one window past its end: a late replica's clock may still name it.
            args += [hits, start + 2 * limit.window - int(now)]
        future = asyncio.get_running_loop().create_future()
        self.pending.append((keys, args, future))
        if len(self.pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        task = asyncio.ensure_future(self._count(batch))
        self.flushing.add(task)
        task.add_done_callback(self.flushing.discard)

    async def _count(self, batch) -> None:
        keys = [key for item in batch for key in item[0]]
        args = [arg for item in batch for arg in item[1]]
        try:
            counts = await self.script(keys=keys, args=args)
        except (redis.RedisError, OSError) as error:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(CountersUnavailable(str(error)))
            return
        position = 0
        for item_keys, _, future in batch:
            if not future.done():
                future.set_result([int(c) for c in counts[position : position + len(item_keys)]])
            position += len(item_keys)

    async def close(self) -> None:
        await self.client.aclose()


class MemoryCounters:
    SWEEP_SECONDS = 10.0

    def __init__(self):
        self.counts: dict[tuple[str, str, int], tuple[int, float]] = {}
        self.swept = time.monotonic()

    async def hit(self, domain: str, limits: list[Limit], hits: int, now: float) -> list[int]:
        self._sweep(now)
        counts = []
        for limit in limits:
            start = window_start(now, limit.window)
            key = (domain, limit.key, start)
            count = self.counts.get(key, (0, 0.0))[0] + hits
            self.counts[key] = (count, start + limit.window)
            counts.append(count)
        return counts

    def _sweep(self, now: float) -> None:
        if time.monotonic() - self.swept < self.SWEEP_SECONDS:
            return
        self.swept = time.monotonic()
        self.counts = {key: value for key, value in self.counts.items() if value[1] > now}

    async def close(self) -> None:
        self.counts.clear()
