"""Streams woken by one change share one /sync answer (handlers/sync.py
`_shared_build`); what is personal must still reach only its owner.

Four streams in one room, all at the same token when each message arrives:
Alice's two devices, Bob and Carol. The personal fields are the transaction
ID (the sending device only), unread counts (each user's own) and private
read receipts (their owner only).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.harness import HomeserverProcess
from tests.integration.test_stream import STREAM, Session, _call, _register

CS = "/_matrix/client/v3"


async def _login(s: Session, user_id: str) -> str:
    body = await _call(s.http, "POST", f"{s.base}{CS}/login", s.token, {
        "type": "m.login.password", "password": "pw",
        "identifier": {"type": "m.id.user", "user": user_id}})
    return str(body["access_token"])


class Listener:
    """A stream and every event and receipt it has been sent, by room."""

    def __init__(self, name: str, ws: aiohttp.ClientWebSocketResponse, room: str) -> None:
        self.name = name
        self.ws = ws
        self.room = room
        self.events: dict[str, dict[str, Any]] = {}
        self.unread: dict[str, Any] = {}
        self.receipts: list[dict[str, Any]] = []

    async def until_event(self, event_id: str) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while event_id not in self.events:
                self._take(await self.ws.receive_json())
        return self.events[event_id]

    async def until_receipt(self, event_id: str, receipt_type: str) -> None:
        async with asyncio.timeout(10):
            while not any(receipt_type in r.get(event_id, {}) for r in self.receipts):
                self._take(await self.ws.receive_json())

    def _take(self, frame: dict[str, Any]) -> None:
        room = frame["data"]["rooms"]["join"].get(self.room)
        if room is None:
            return
        for event in room["timeline"]["events"]:
            self.events[event["event_id"]] = event
            self.unread[event["event_id"]] = room["unread_notifications"]
        self.receipts += [e["content"] for e in room["ephemeral"]["events"]
                          if e["type"] == "m.receipt"]


async def _listen(s: Session, token: str, name: str, room: str) -> Listener:
    ws = await s.http.ws_connect(f"{s.base}{STREAM}",
                                 headers={"Authorization": f"Bearer {token}"})
    await ws.receive_json(timeout=10)
    return Listener(name, ws, room)


def test_personal_fields_stay_personal_in_shared_answers(sqlite_server: HomeserverProcess,
                                                         unique: str) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            alice = Session(sqlite_server, http, await _register(http, sqlite_server.base_url,
                                                                 unique + "a"))
            room = await alice.create_room()
            tokens = {"alice2": await _login(alice, unique + "a")}
            for name in ("bob", "carol"):
                tokens[name] = await _register(http, alice.base, unique + name[0] + "x")
                await _call(http, "POST", f"{alice.base}{CS}/join/{room}", tokens[name], {})
            listeners = {"alice1": await _listen(alice, alice.token, "alice1", room)}
            for name, token in tokens.items():
                listeners[name] = await _listen(alice, token, name, room)
            await scenario(alice, room, tokens, listeners)
            for listener in listeners.values():
                await listener.ws.close()

    async def scenario(alice: Session, room: str, tokens: dict[str, str],
                       listeners: dict[str, Listener]) -> None:
        first = await alice.send(room, "t1", "one")
        seen = {n: await lst.until_event(first) for n, lst in listeners.items()}
        assert seen["alice1"]["unsigned"]["transaction_id"] == "t1"
        for name in ("alice2", "bob", "carol"):
            assert "transaction_id" not in seen[name]["unsigned"], name
        assert listeners["bob"].unread[first]["notification_count"] == 1
        assert listeners["carol"].unread[first]["notification_count"] == 1
        assert listeners["alice1"].unread[first]["notification_count"] == 0

        # Bob reads the first message; Carol marks it read privately.
        await _call(alice.http, "POST", f"{alice.base}{CS}/rooms/{room}/receipt/m.read/{first}",
                    tokens["bob"], {})
        await _call(alice.http, "POST",
                    f"{alice.base}{CS}/rooms/{room}/receipt/m.read.private/{first}",
                    tokens["carol"], {})
        await listeners["carol"].until_receipt(first, "m.read.private")
        await listeners["carol"].until_receipt(first, "m.read")

        second = await alice.send(room, "t2", "two")
        for listener in listeners.values():
            await listener.until_event(second)
        assert listeners["bob"].unread[second]["notification_count"] == 1
        assert listeners["carol"].unread[second]["notification_count"] == 1  # read privately
        assert listeners["alice2"].unread[second]["notification_count"] == 0
        for name in ("alice1", "alice2", "bob"):
            assert not any("m.read.private" in r.get(first, {})
                           for r in listeners[name].receipts), name

    asyncio.run(main())
