"""Helpers for multi-user sessions: nio clients plus raw HTTP where the exact
wire format (status codes, `unsigned`, missing keys) is what is under test."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

import nio

from tests.harness import HomeserverProcess, http_json

CS = "/_matrix/client/v3"
# Big enough that no incremental sync in these tests is ever `limited`.
WIDE_FILTER = {"room": {"timeline": {"limit": 1000}}}


async def register(server: HomeserverProcess, name: str) -> nio.AsyncClient:
    client = nio.AsyncClient(server.base_url, name)
    response = await client.register(name, "correct horse")
    assert isinstance(response, nio.RegisterResponse), response
    return client


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


async def raw(client: nio.AsyncClient, method: str, path: str, body: Any = None,
              query: dict[str, Any] | None = None) -> tuple[int, Any]:
    """An authenticated request on a worker thread (the event loop keeps running)."""
    url = f"{client.homeserver}{CS}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(
            {k: json.dumps(v) if isinstance(v, dict) else v for k, v in query.items()})
    return await asyncio.to_thread(http_json, method, url, body, client.access_token, None, 30)


async def ok(client: nio.AsyncClient, method: str, path: str, body: Any = None,
             query: dict[str, Any] | None = None) -> Any:
    status, answer = await raw(client, method, path, body, query)
    assert status == 200, (method, path, status, answer)
    return answer


async def refused(client: nio.AsyncClient, method: str, path: str, body: Any = None,
                  status: int = 403, errcode: str = "M_FORBIDDEN") -> None:
    got, answer = await raw(client, method, path, body)
    assert got == status, (method, path, got, answer)
    assert isinstance(answer, dict) and answer.get("errcode") == errcode, answer


async def sync(client: nio.AsyncClient, since: str | None = None, timeout: int = 0,
               sync_filter: dict[str, Any] | None = None) -> dict[str, Any]:
    query: dict[str, Any] = {"timeout": timeout, "filter": sync_filter or WIDE_FILTER}
    if since:
        query["since"] = since
    return await ok(client, "GET", "/sync", query=query)  # type: ignore[no-any-return]


async def sync_until(client: nio.AsyncClient, since: str | None, predicate: Any,
                     seconds: float = 15, sync_filter: dict[str, Any] | None = None
                     ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Long-poll until `predicate(response)` holds; returns the last response and
    every response seen (so callers can check nothing arrived twice)."""
    seen: list[dict[str, Any]] = []

    async def loop() -> dict[str, Any]:
        token = since
        while True:
            response = await sync(client, token, 2000, sync_filter)
            seen.append(response)
            token = response["next_batch"]
            if predicate(response):
                return response

    return await asyncio.wait_for(loop(), seconds), seen


def timeline(response: dict[str, Any], room_id: str, section: str = "join"
             ) -> list[dict[str, Any]]:
    room = response["rooms"][section].get(room_id)
    return room["timeline"]["events"] if room else []


async def send_text(client: nio.AsyncClient, room_id: str, body: str,
                    txn_id: str | None = None) -> str:
    response = await client.room_send(room_id, "m.room.message",
                                      {"msgtype": "m.text", "body": body}, tx_id=txn_id)
    assert isinstance(response, nio.RoomSendResponse), response
    return response.event_id


async def all_messages(client: nio.AsyncClient, room_id: str, limit: int = 100,
                       backwards: bool = True) -> list[dict[str, Any]]:
    """Paginate /messages to the end; events in chronological order."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(1000):
        query: dict[str, Any] = {"dir": "b" if backwards else "f", "limit": limit}
        if token:
            query["from"] = token
        page = await ok(client, "GET", f"/rooms/{q(room_id)}/messages", query=query)
        events += page["chunk"]
        if not page["chunk"] or "end" not in page:
            break
        token = page["end"]
    return list(reversed(events)) if backwards else events


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"].get("body") for e in events
            if e["type"] == "m.room.message" and "body" in e.get("content", {})]
