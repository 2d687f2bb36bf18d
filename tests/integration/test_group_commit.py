"""Concurrent sends share commits (group commit) without losing order or idempotency."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.harness import HomeserverProcess


async def _json(session: aiohttp.ClientSession, method: str, url: str, token: str,
                body: Any = None) -> Any:
    async with session.request(method, url, json=body,
                               headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def test_concurrent_sends_and_retries_in_flight(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        base = f"{server.base_url}/_matrix/client/v3"
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/register", json={
                    "username": unique, "password": "pw",
                    "auth": {"type": "m.login.dummy"}}) as response:
                token = (await response.json())["access_token"]
            room = (await _json(http, "POST", f"{base}/createRoom", token, {}))["room_id"]
            send = f"{base}/rooms/{room}/send/m.room.message"

            def put(txn: str, body: str) -> Any:
                return _json(http, "PUT", f"{send}/{txn}", token,
                             {"msgtype": "m.text", "body": body})

            # 40 distinct messages and 10 copies of one retried transaction, all at once.
            answers = await asyncio.gather(
                *[put(f"t{i}", f"m{i}") for i in range(40)],
                *[put("retried", "once") for _ in range(10)])
            distinct = [a["event_id"] for a in answers[:40]]
            retried = {a["event_id"] for a in answers[40:]}
            assert len(set(distinct)) == 40
            assert len(retried) == 1  # every retry answered with the one event
            messages = await _json(http, "GET", f"{base}/rooms/{room}/messages?dir=b&limit=100",
                                   token)
            bodies = [e["content"]["body"] for e in messages["chunk"]
                      if e["type"] == "m.room.message"]
            assert sorted(bodies) == sorted([f"m{i}" for i in range(40)] + ["once"])
            ids = [e["event_id"] for e in messages["chunk"]]
            assert len(ids) == len(set(ids))  # no event twice

    asyncio.run(scenario())
