"""Follow the homeserver: the WebSocket stream, else /sync long-polls, with backoff.

The loop only advances `since` after a body has been handled, and the stream
and /sync share tokens, so a reconnect (or a switch between the two) resumes
exactly where the last handled body ended: nothing lost, nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from client.sdk.errors import MatrixClientError
from client.sdk.http import CLIENT_V3, HttpApi

logger = logging.getLogger(__name__)

STREAM_PATH = "/_guildhall/client/v1/stream"
CLOSE_TOKEN_REVOKED = 4001
# After the stream upgrade fails, long-poll for this long before trying it again.
STREAM_RETRY_AFTER_S = 60.0

BodyHandler = Callable[[dict[str, Any], bool], Awaitable[None]]
FrameObserver = Callable[[Any], None]


class StreamUnavailable(Exception):
    """The server refused the WebSocket upgrade for a reason other than auth."""


class TokenRevoked(MatrixClientError):
    """The access token is no longer valid; following must stop."""


class Backoff:
    """Exponential delays with jitter, reset after a success."""

    def __init__(self, initial: float = 0.25, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2.0 ** self.attempt)
        self.attempt += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.attempt = 0


class SyncLoop:
    def __init__(self, http: HttpApi, handle_body: BodyHandler, *, use_stream: bool = True,
                 sync_filter: dict[str, Any] | None = None, long_poll_ms: int = 30_000,
                 max_backoff: float = 30.0) -> None:
        self.http = http
        self.handle_body = handle_body
        self.use_stream = use_stream
        self.sync_filter = sync_filter
        self.long_poll_ms = long_poll_ms
        self.backoff = Backoff(maximum=max_backoff)
        self.since: str | None = None
        self.transport: str | None = None  # "stream" or "sync", for callers and tests
        self.synced = asyncio.Event()
        self.last_error: BaseException | None = None
        # Sees every stream frame before it is handled (tests check frames against
        # schemas/frames/ with it); None on the hot path.
        self.on_frame: FrameObserver | None = None
        self._stream_retry_at = 0.0

    async def run(self) -> None:
        """Follow until cancelled, or until the token is revoked (raises TokenRevoked)."""
        while True:
            try:
                if self._stream_allowed():
                    await self._follow_stream()
                else:
                    await self.poll_once()
                    continue
            except StreamUnavailable as exc:
                logger.info("stream unavailable (%s); falling back to /sync", exc)
                self._stream_retry_at = time.monotonic() + STREAM_RETRY_AFTER_S
                continue
            except TokenRevoked:
                raise
            except MatrixClientError as exc:
                if exc.errcode == "M_UNKNOWN_TOKEN":
                    raise TokenRevoked(exc.message, exc.status, exc.errcode) from exc
                logger.info("sync failed: %s", exc)
                self.last_error = exc
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                logger.info("connection lost: %r", exc)
                self.last_error = exc
            await asyncio.sleep(self.backoff.next_delay())

    def _stream_allowed(self) -> bool:
        return self.use_stream and time.monotonic() >= self._stream_retry_at

    async def _handle(self, body: dict[str, Any]) -> None:
        await self.handle_body(body, self.since is None)
        if isinstance(body.get("next_batch"), str):
            self.since = body["next_batch"]
        self.backoff.reset()
        self.synced.set()

    # /sync -------------------------------------------------------------------------

    async def poll_once(self) -> None:
        self.transport = "sync"
        params = {"timeout": str(self.long_poll_ms if self.since else 0)}
        if self.since:
            params["since"] = self.since
        if self.sync_filter is not None:
            params["filter"] = json.dumps(self.sync_filter)
        body = await self.http.request("GET", f"{CLIENT_V3}/sync", params=params,
                                       timeout=self.long_poll_ms / 1000 + 30)
        await self._handle(body)

    # The stream ---------------------------------------------------------------------

    def _stream_params(self) -> dict[str, str]:
        params = {}
        if self.since:
            params["since"] = self.since
        if self.sync_filter is not None:
            params["filter"] = json.dumps(self.sync_filter)
        return params

    async def _follow_stream(self) -> None:
        try:
            socket = await self.http.session.ws_connect(
                self.http.url(STREAM_PATH), params=self._stream_params(),
                headers=self.http.auth_headers(), heartbeat=30, autoping=True,
                max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise TokenRevoked(f"stream refused: {exc.message}", 401,
                                   "M_UNKNOWN_TOKEN") from exc
            raise StreamUnavailable(f"HTTP {exc.status}") from exc
        async with socket:
            self.transport = "stream"
            await self._read_frames(socket)

    async def _read_frames(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        async for message in socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                frame = json.loads(message.data)
                if self.on_frame is not None:
                    self.on_frame(frame)
                if isinstance(frame, dict) and frame.get("type") == "sync":
                    await self._handle(frame["data"])
            elif message.type == aiohttp.WSMsgType.ERROR:
                raise ConnectionError(f"stream error: {socket.exception()}")
        if socket.close_code == CLOSE_TOKEN_REVOKED:
            raise TokenRevoked("access token revoked", 401, "M_UNKNOWN_TOKEN")
        raise ConnectionError(f"stream closed (code {socket.close_code})")
