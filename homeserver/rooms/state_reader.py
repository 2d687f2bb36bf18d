"""Room state at an event, read through state groups with a bounded cache."""

from __future__ import annotations

from collections import OrderedDict

from federation.protocol.events import StateKey

from ..storage.events import EventStore
from .records import PersistedEvent


class StateReader:
    def __init__(self, events: EventStore, cache_size: int = 2000) -> None:
        self._events = events
        self._cache: OrderedDict[int, dict[StateKey, str]] = OrderedDict()
        self._cache_size = cache_size
        # An event's (before, after) state groups never change once persisted.
        self._groups: OrderedDict[str, tuple[int | None, int]] = OrderedDict()

    def event_persisted(self, persisted: PersistedEvent) -> None:
        """Room writer listener: a new event's groups and states are known
        already, so readers never go to the database for them."""
        before, after = persisted.state_group_before, persisted.state_group_after
        if after is None:
            return
        self._remember_groups(persisted.event.event_id, (before, after))
        if before is not None and before not in self._cache:
            self._remember_state(before, dict(persisted.state_before))
        if after != before and persisted.event.is_state():
            state = dict(persisted.state_before)
            state[persisted.event.state_key_tuple] = persisted.event.event_id
            self._remember_state(after, state)

    def _remember_state(self, group: int, state: dict[StateKey, str]) -> None:
        self._cache[group] = state
        self._cache.move_to_end(group)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _remember_groups(self, event_id: str, groups: tuple[int | None, int]) -> None:
        self._groups[event_id] = groups
        self._groups.move_to_end(event_id)
        while len(self._groups) > self._cache_size * 10:
            self._groups.popitem(last=False)

    async def group_state(self, group: int | None) -> dict[StateKey, str]:
        if group is None or group == 0:
            return {}
        cached = self._cache.get(group)
        if cached is not None:
            self._cache.move_to_end(group)
            return cached
        state, _ = await self._events.state_group_entries(group)
        self._remember_state(group, state)
        return state

    async def _groups_for(self, event_id: str) -> tuple[int | None, int] | None:
        groups = self._groups.get(event_id)
        if groups is not None:
            self._groups.move_to_end(event_id)
            return groups
        groups = await self._events.state_group_for_event(event_id)
        if groups is not None:
            self._remember_groups(event_id, groups)
        return groups

    async def state_before(self, event_id: str) -> dict[StateKey, str]:
        groups = await self._groups_for(event_id)
        return await self.group_state(groups[0]) if groups else {}

    async def state_after(self, event_id: str) -> dict[StateKey, str]:
        groups = await self._groups_for(event_id)
        return await self.group_state(groups[1]) if groups else {}
