"""WebSockets through real Envoy: every HTTP listener proxies the upgrade by default."""

import asyncio
import threading

import aiohttp
import pytest
from aiohttp import web

from provisioning.ir.build import DesiredState
from tests.provisioning.harness import running_envoy

pytestmark = pytest.mark.slow


class EchoServer:
    """aiohttp on a thread of its own: ``/ws`` echoes each message, ``/`` answers ``plain``."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the echo server did not start"

    async def _echo(self, request):
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                await socket.send_str("echo:" + message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await socket.send_bytes(message.data)
        return socket

    async def _plain(self, request):
        return web.Response(text="plain")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/ws", self._echo)
        app.router.add_get("/", self._plain)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def close(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def gateway():
    server = EchoServer()
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": "all", "spec": {"rules": [{"backendRefs": [{"name": "echo"}]}]}}],
        backends={"echo": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": server.port}}]}},
    )
    with running_envoy(state) as ports:
        yield f"http://127.0.0.1:{ports[80]}"
    server.close()


async def _talk(base: str) -> tuple[int, list]:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(
            base + "/ws", timeout=aiohttp.ClientWSTimeout(ws_close=5)
        ) as ws:
            answers = []
            for i in range(20):
                await ws.send_str(f"hello {i}")
                answers.append((await ws.receive(timeout=5)).data)
            await ws.send_bytes(b"\x00\xffbinary")
            answers.append((await ws.receive(timeout=5)).data)
            status = ws._response.status
        async with session.get(base + "/") as plain:
            answers.append(await plain.text())
    return status, answers


def test_a_websocket_echoes_through_envoy(gateway):
    status, answers = asyncio.run(_talk(gateway))
    assert status == 101
    assert answers[:20] == [f"echo:hello {i}" for i in range(20)]
    assert answers[20] == b"\x00\xffbinary"
    assert answers[21] == "plain"  # plain requests share the listener and the route
