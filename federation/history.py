"""Scrolling back past what we hold: backfill from the room's other servers."""

from __future__ import annotations

from federation.ports import RoomEvents
from federation.protocol import identifiers
from federation.protocol.events import MEMBER
from federation.receiver import Receiver


class Backfiller:
    def __init__(self, rooms: RoomEvents, receiver: Receiver, server_name: str) -> None:
        self._rooms = rooms
        self._receiver = receiver
        self._server_name = server_name

    async def backfill(self, room_id: str, limit: int) -> int:
        """Ask the servers of the room's joined members, in a stable order."""
        state = await self._rooms.current_state(room_id)
        members = await self._rooms.get_events(eid for (t, _), eid in state.items() if t == MEMBER)
        servers = sorted({identifiers.server_of(e.state_key or "") for e in members.values()
                          if e.membership == "join"} - {self._server_name})
        if not servers:
            return 0
        return await self._receiver.backfill(room_id, servers, limit)
