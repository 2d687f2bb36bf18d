"""Two nio users sharing a room, and long-polls that must wake when one of them acts."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import nio

from tests.harness import HomeserverProcess
from tests.integration.sessions import register

LONG_POLL_MS = 10_000
# A woken long-poll must answer well before its timeout.
PROMPT_S = 3.0


@dataclass
class Pair:
    alice: nio.AsyncClient
    bob: nio.AsyncClient
    room_id: str

    async def close(self) -> None:
        await self.alice.close()
        await self.bob.close()


async def make_pair(server: HomeserverProcess, unique: str) -> Pair:
    alice = await register(server, f"{unique}a")
    bob = await register(server, f"{unique}b")
    room = await alice.room_create(name="general", invite=[bob.user_id])
    assert isinstance(room, nio.RoomCreateResponse), room
    joined = await bob.join(room.room_id)
    assert isinstance(joined, nio.JoinResponse), joined
    pair = Pair(alice, bob, room.room_id)
    await settle(alice, bob)
    return pair


async def with_pair(server: HomeserverProcess, unique: str,
                    scenario: Callable[[Pair], Awaitable[None]]) -> None:
    """Run `scenario` with a fresh pair, closing the clients however it ends."""
    pair = await make_pair(server, unique)
    try:
        await scenario(pair)
    finally:
        await pair.close()


async def settle(*clients: nio.AsyncClient) -> None:
    """Sync each client up to now (twice: the first syncs change presence)."""
    for _ in range(2):
        for client in clients:
            response = await client.sync(timeout=0)
            assert isinstance(response, nio.SyncResponse), response


async def long_poll(client: nio.AsyncClient, act: Callable[[], Awaitable[Any]],
                    timeout_ms: int = LONG_POLL_MS) -> tuple[nio.SyncResponse, float]:
    """Start a long-poll, let it wait, then `act`: the response and the seconds it
    took to arrive after the action."""
    for _ in range(3):
        task = asyncio.ensure_future(client.sync(timeout=timeout_ms))
        await asyncio.sleep(0.5)
        if not task.done():
            break
        await task  # something unrelated arrived first (a presence change): again
    else:
        raise AssertionError("the long-poll never stayed waiting")
    started = time.monotonic()
    await act()
    response = await asyncio.wait_for(task, timeout_ms / 1000 + 5)
    assert isinstance(response, nio.SyncResponse), response
    return response, time.monotonic() - started


def ephemeral(response: nio.SyncResponse, room_id: str) -> list[Any]:
    room = response.rooms.join.get(room_id)
    return list(room.ephemeral) if room is not None else []


def room_account_data(response: nio.SyncResponse, room_id: str) -> list[Any]:
    room = response.rooms.join.get(room_id)
    return list(room.account_data) if room is not None else []
