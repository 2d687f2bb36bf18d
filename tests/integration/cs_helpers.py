"""Client-Server helpers for the directory, device, key and TURN tests: nio
clients, plus raw HTTP where the exact wire format is under test."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import nio

from tests.harness import HomeserverProcess, http_json

CS = "/_matrix/client/v3"
PASSWORD = "correct horse"
ALGORITHMS = ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]


async def register(server: HomeserverProcess, name: str, **kwargs: Any) -> nio.AsyncClient:
    client = nio.AsyncClient(server.base_url, name, **kwargs)
    response = await client.register(name, PASSWORD)
    assert isinstance(response, nio.RegisterResponse), response
    return client


async def login(server: HomeserverProcess, user_id: str, device_name: str,
                **kwargs: Any) -> nio.AsyncClient:
    client = nio.AsyncClient(server.base_url, user_id, **kwargs)
    response = await client.login(PASSWORD, device_name=device_name)
    assert isinstance(response, nio.LoginResponse), response
    return client


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


async def raw(server: HomeserverProcess, method: str, path: str, body: Any = None,
              token: str | None = None, query: dict[str, Any] | None = None
              ) -> tuple[int, Any]:
    """A request on a worker thread, so the event loop (and nio) keep running."""
    url = f"{server.base_url}{CS}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(
            {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in query.items()})
    return await asyncio.to_thread(http_json, method, url, body, token, None, 30)


async def ok(server: HomeserverProcess, method: str, path: str, body: Any = None,
             token: str | None = None, query: dict[str, Any] | None = None) -> Any:
    status, answer = await raw(server, method, path, body, token, query)
    assert status == 200, (method, path, status, answer)
    return answer


async def error(server: HomeserverProcess, method: str, path: str, status: int, errcode: str,
                body: Any = None, token: str | None = None) -> dict[str, Any]:
    got, answer = await raw(server, method, path, body, token)
    assert (got, answer.get("errcode") if isinstance(answer, dict) else answer) == \
        (status, errcode), (method, path, got, answer)
    return answer  # type: ignore[no-any-return]


async def sync(server: HomeserverProcess, token: str, since: str | None = None,
               timeout_ms: int = 0) -> dict[str, Any]:
    query: dict[str, Any] = {"timeout": timeout_ms}
    if since:
        query["since"] = since
    return await ok(server, "GET", "/sync", token=token, query=query)  # type: ignore


def device_keys(client: nio.AsyncClient, curve: str = "curve") -> dict[str, Any]:
    """Shaped as the spec's `DeviceKeys` example (the server checks no signature)."""
    device = client.device_id
    return {"user_id": client.user_id, "device_id": device, "algorithms": ALGORITHMS,
            "keys": {f"curve25519:{device}": f"{curve}{device}",
                     f"ed25519:{device}": f"ed{device}"},
            "signatures": {client.user_id: {f"ed25519:{device}": "sig"}}}
