"""A full chat session driven by matrix-nio, an unmodified real client."""

from __future__ import annotations

import asyncio

import nio

from tests.harness import HomeserverProcess


async def _client(server: HomeserverProcess, name: str) -> nio.AsyncClient:
    client = nio.AsyncClient(server.base_url, name)
    response = await client.register(name, "correct horse")
    assert isinstance(response, nio.RegisterResponse), response
    return client


def test_register_create_send_sync_paginate(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice = await _client(server, f"{unique}a")
        try:
            space = await alice.room_create(space=True, name="Guild")
            assert isinstance(space, nio.RoomCreateResponse), space
            room = await alice.room_create(name="general", topic="chat")
            assert isinstance(room, nio.RoomCreateResponse), room
            first = await alice.sync(timeout=0)
            assert isinstance(first, nio.SyncResponse), first
            assert room.room_id in first.rooms.join
            sent = []
            for i in range(30):
                response = await alice.room_send(room.room_id, "m.room.message",
                                                 {"msgtype": "m.text", "body": f"msg {i}"})
                assert isinstance(response, nio.RoomSendResponse), response
                sent.append(response.event_id)
            second = await alice.sync(timeout=1000, since=first.next_batch)
            timeline = second.rooms.join[room.room_id].timeline
            assert timeline.limited
            seen = [e.event_id for e in timeline.events]
            token = timeline.prev_batch
            while True:
                page = await alice.room_messages(room.room_id, start=token, limit=10)
                assert isinstance(page, nio.RoomMessagesResponse), page
                seen = [e.event_id for e in reversed(page.chunk)] + seen
                if not page.end:
                    break
                token = page.end
            messages = [eid for eid in seen if eid in sent]
            assert messages == sent  # every message, once, in order
        finally:
            await alice.close()

    asyncio.run(scenario())
