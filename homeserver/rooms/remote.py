"""The rooms, as the federation layer sees them (`federation.ports.RoomEvents`)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, Mapping

from federation.protocol.events import Event, StateKey
from federation.protocol.room_versions import RoomVersion, get_room_version

from ..storage.events import EventStore
from ..storage.rooms import RoomStore
from .state_reader import StateReader
from .writer import RoomWriter


class RoomEventsAdapter:
    def __init__(self, writer: RoomWriter, events: EventStore, rooms: RoomStore,
                 state: StateReader,
                 member_content: Callable[[str], Awaitable[dict[str, Any]]]) -> None:
        self._writer = writer
        self._events = events
        self._rooms = rooms
        self._state = state
        self.member_content = member_content

    async def room_version(self, room_id: str) -> RoomVersion | None:
        version = await self._rooms.get_room_version(room_id)
        return get_room_version(version) if version else None

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, Event]:
        return await self._events.get_events(event_ids)

    async def has_state(self, event_id: str) -> bool:
        stored = await self._events.get_event(event_id)
        return stored is not None and not stored.outlier

    async def state_after(self, event_id: str) -> dict[StateKey, str]:
        return await self._state.state_after(event_id)

    async def current_state(self, room_id: str) -> dict[StateKey, str]:
        snap = await self._writer.snapshot(room_id)
        return dict(snap.state) if snap else {}

    async def forward_extremities(self, room_id: str) -> list[str]:
        snap = await self._writer.snapshot(room_id)
        return list(snap.extremities) if snap else []

    async def resolve(self, version: RoomVersion, state_sets: list[dict[StateKey, str]]
                      ) -> dict[StateKey, str]:
        return await self._writer.resolve(version, state_sets)

    async def persist_outliers(self, events: list[Event]) -> None:
        await self._writer.persist_outliers(events)

    async def persist_remote(self, event: Event, state_before: Mapping[StateKey, str]) -> bool:
        persisted = await self._writer.persist_remote(event, state_before)
        return not persisted.soft_failed

    async def join_remote_room(self, version: RoomVersion, join: Event,
                               state: Mapping[StateKey, Event], auth_chain: list[Event]) -> None:
        await self._writer.join_remote_room(version, join, state, auth_chain)

    async def template(self, room_id: str, event_type: str, sender: str, state_key: str,
                       content: Mapping[str, Any]) -> tuple[RoomVersion, dict[str, Any], Event]:
        return await self._writer.template(room_id, event_type, sender, state_key, content)

    async def persist_remote_membership(self, event: Event) -> None:
        await self._writer.persist_remote_membership(event)

    async def backward_extremities(self, room_id: str) -> list[str]:
        oldest = await self._events.earliest_events(room_id)
        prevs = list(dict.fromkeys(p for s in oldest for p in s.event.prev_event_ids))
        return [p for p in prevs if not await self.has_state(p)]

    async def persist_backfilled(self, event: Event, state_before: Mapping[StateKey, str]
                                 ) -> None:
        await self._writer.persist_backfilled(event, state_before)
