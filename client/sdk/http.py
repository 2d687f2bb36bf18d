"""The HTTP transport: one aiohttp session per client, Matrix errors as MatrixClientError."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from client.sdk.errors import MatrixClientError

logger = logging.getLogger(__name__)

CLIENT_V3 = "/_matrix/client/v3"
DEFAULT_TIMEOUT = 60.0
MAX_RATE_LIMIT_RETRIES = 5


def path_segment(value: str) -> str:
    """Percent-encode one path segment (room IDs, aliases, txn IDs contain ! # : @)."""
    return quote(value, safe="")


class HttpApi:
    """Requests against one homeserver with an optional access token."""

    def __init__(self, homeserver_url: str, access_token: str | None = None,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.homeserver_url = homeserver_url.rstrip("/")
        self.access_token = access_token
        self._session = session
        self._owns_session = session is None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
            self._owns_session = True
        return self._session

    def auth_headers(self) -> dict[str, str]:
        if not self.access_token:
            return {}
        return {"Authorization": f"Bearer {self.access_token}"}

    def url(self, path: str) -> str:
        return self.homeserver_url + path

    async def request(self, method: str, path: str, body: Any = None,
                      params: dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                      data: bytes | None = None, content_type: str | None = None) -> Any:
        """One JSON request; waits out 429s as the server asks (spec: M_LIMIT_EXCEEDED)."""
        for _ in range(MAX_RATE_LIMIT_RETRIES):
            try:
                return await self._request_once(method, path, body, params, timeout,
                                                data, content_type)
            except MatrixClientError as exc:
                if exc.status != 429:
                    raise
                await asyncio.sleep((exc.retry_after_ms or 1000) / 1000)
        return await self._request_once(method, path, body, params, timeout, data, content_type)

    async def _request_once(self, method: str, path: str, body: Any,
                            params: dict[str, str] | None, timeout: float,
                            data: bytes | None, content_type: str | None) -> Any:
        headers = self.auth_headers()
        if data is None and body is not None:
            data = json.dumps(body).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            async with self.session.request(
                    method, self.url(path), data=data, params=params, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                raw = await response.read()
                return decode_response(response.status, raw)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise MatrixClientError(
                f"cannot reach {self.homeserver_url}: {exc or type(exc).__name__}") from exc

    async def download(self, path: str, timeout: float = DEFAULT_TIMEOUT
                       ) -> tuple[bytes, str, str | None]:
        """GET raw bytes: (body, content type, Content-Disposition)."""
        try:
            async with self.session.get(self.url(path), headers=self.auth_headers(),
                                        timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                raw = await response.read()
                if response.status != 200:
                    decode_response(response.status, raw)
                return (raw, response.headers.get("Content-Type", "application/octet-stream"),
                        response.headers.get("Content-Disposition"))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise MatrixClientError(f"cannot reach {self.homeserver_url}: {exc}") from exc

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()


def decode_response(status: int, raw: bytes) -> Any:
    """The JSON body of a 2xx answer; a MatrixClientError for anything else."""
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = None
    if 200 <= status < 300:
        if body is None:
            raise MatrixClientError(f"the homeserver answered {status} with a non-JSON body",
                                    status=status)
        return body
    if isinstance(body, dict) and isinstance(body.get("errcode"), str):
        retry = body.get("retry_after_ms")
        raise MatrixClientError(str(body.get("error") or body["errcode"]), status=status,
                                errcode=body["errcode"],
                                retry_after_ms=retry if isinstance(retry, int) else None,
                                body=body)
    raise MatrixClientError(f"the homeserver answered HTTP {status}", status=status, body=body)
