"""The benchmark's upstream, run as its own process: ``python upstream.py`` prints its port.

``/`` answers a small body (keep-alive), ``/stream`` sends a server-sent event every 100 ms
until the client goes (at most an hour), ``/ws`` echoes WebSocket messages.
"""

import asyncio
import sys

from aiohttp import WSMsgType, web

BODY = b"x" * 256


async def plain(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="text/plain")


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    for n in range(36_000):
        await response.write(b"id: %d\ndata: chunk %d\n\n" % (n, n))
        await asyncio.sleep(0.1)
    return response


async def echo(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse()
    await socket.prepare(request)
    async for message in socket:
        if message.type == WSMsgType.TEXT:
            await socket.send_str(message.data)
    return socket


async def main() -> None:
    app = web.Application()
    app.router.add_get("/", plain)
    app.router.add_get("/stream", stream)
    app.router.add_get("/ws", echo)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
