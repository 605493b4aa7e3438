"""A streaming response and a WebSocket held open on a thread of their own (asyncio)."""

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Watch:
    """What one long-lived connection saw: message times and how it ended."""

    name: str
    times: list[float] = field(default_factory=list)
    error: str = ""
    open_at_end: bool = False

    def longest_gap(self, since: float, until: float) -> float:
        marks = [since] + [t for t in self.times if since <= t <= until] + [until]
        return max(b - a for a, b in zip(marks, marks[1:], strict=False))

    def count(self, since: float, until: float) -> int:
        return sum(1 for t in self.times if since <= t <= until)


class LongLived:
    """Opens ``/stream`` and ``/ws`` on ``base`` (with ``headers``, e.g. a ``Host``); the
    WebSocket sends an echo every 100 ms."""

    def __init__(self, base: str, headers: dict | None = None):
        self.base = base.rstrip("/")
        self.headers = headers or {}
        self.stream, self.websocket = Watch("stream"), Watch("websocket")
        self.loop = asyncio.new_event_loop()
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self, timeout: float = 10) -> "LongLived":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not (self.stream.times and self.websocket.times):
            if time.monotonic() > deadline or self.stream.error or self.websocket.error:
                raise RuntimeError(f"long-lived clients did not start: {self.stream.error} "
                                   f"{self.websocket.error}")  # fmt: skip
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stopping.set)
            self.thread.join(15)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self.stopping = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(self._stream(session), self._websocket(session))

    async def _stream(self, session: aiohttp.ClientSession) -> None:
        try:
            async with session.get(self.base + "/stream", headers=self.headers) as response:
                response.raise_for_status()
                while not self.stopping.is_set():
                    reading = asyncio.ensure_future(response.content.readany())
                    stop = asyncio.ensure_future(self.stopping.wait())
                    await asyncio.wait({reading, stop}, timeout=5,
                                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                    stop.cancel()
                    if not reading.done():
                        reading.cancel()
                        if self.stopping.is_set():
                            break
                        raise TimeoutError("no chunk for 5 s")
                    if not reading.result():
                        raise ConnectionError("the stream ended")
                    self.stream.times.append(time.monotonic())
                self.stream.open_at_end = True
        except Exception as error:  # noqa: BLE001 (any end of the stream is the finding)
            self.stream.error = f"{type(error).__name__}: {error}"

    async def _websocket(self, session: aiohttp.ClientSession) -> None:
        try:
            async with session.ws_connect(self.base + "/ws", headers=self.headers) as ws:
                n = 0
                while not self.stopping.is_set():
                    n += 1
                    await ws.send_str(f"echo {n}")
                    message = await ws.receive(timeout=5)
                    if message.type != aiohttp.WSMsgType.TEXT or message.data != f"echo {n}":
                        raise ConnectionError(f"got {message.type.name} {message.data!r}")
                    self.websocket.times.append(time.monotonic())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), 0.1)
                self.websocket.open_at_end = not ws.closed
        except Exception as error:  # noqa: BLE001
            self.websocket.error = f"{type(error).__name__}: {error}"
