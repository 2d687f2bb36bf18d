"""Network faults for client tests, on loopback.

`TcpProxy` forwards connections to the homeserver and can cut them all at
once (a network-level drop). `NoStreamProxy` is an HTTP reverse proxy that
forwards everything except the WebSocket stream, whose upgrade it refuses.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

STREAM_PATH = "/_guildhall/client/v1/stream"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host",
              "content-length", "content-encoding"}


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.drops = 0
        self._server: asyncio.base_events.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # the test's event loop is shutting down
        finally:
            self._pairs.discard(pair)
            writer.transport.abort()
            up_writer.transport.abort()

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    def drop_all(self) -> int:
        """Reset every open connection, as a network failure would."""
        pairs = list(self._pairs)
        self._pairs.clear()
        for client_side, server_side in pairs:
            client_side.transport.abort()
            server_side.transport.abort()
        self.drops += 1
        return len(pairs)

    async def close(self) -> None:
        self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


class NoStreamProxy:
    """Forwards the Client-Server API; the stream upgrade gets a 404."""

    def __init__(self, target_url: str) -> None:
        self.target_url = target_url
        self.stream_refusals = 0
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> NoStreamProxy:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if request.path == STREAM_PATH:
            self.stream_refusals += 1
            return web.json_response({"errcode": "M_UNRECOGNIZED", "error": "no stream here"},
                                     status=404)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(request.method, self.target_url + request.path_qs,
                                         headers=headers, data=await request.read()) as answer:
            body = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=answer.status, body=body, headers=out)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


async def serve_well_known(body: Any, status: int = 200, port: int = 0
                           ) -> tuple[web.AppRunner, int]:
    """A tiny loopback server with `/.well-known/matrix/client` (raw bytes or JSON)."""

    async def well_known(_request: web.Request) -> web.Response:
        if isinstance(body, bytes):
            return web.Response(status=status, body=body, content_type="application/json")
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/.well-known/matrix/client", well_known)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, runner.addresses[0][1]
