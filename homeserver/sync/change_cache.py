"""In-memory answers to "did anything change for X since position P?".

/sync and the stream wake many clients for one change; these caches let a
sync skip every database query for rooms and users that did not change, and
serve recent room timelines from memory (Synapse's StreamChangeCache idea).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Hashable


class StreamChangeCache:
    """The last position each entity changed at, for positions after `floor`.

    Anything at or before the floor is unknown, so `changed_since` answers
    True (ask the database) for such positions.
    """

    def __init__(self, floor: int, max_entities: int = 100_000) -> None:
        self._floor = floor
        self._last: OrderedDict[Hashable, int] = OrderedDict()
        self._max = max_entities

    def mark(self, entity: Hashable, position: int) -> None:
        self._last[entity] = max(position, self._last.get(entity, 0))
        self._last.move_to_end(entity)
        while len(self._last) > self._max:
            _, evicted = self._last.popitem(last=False)
            self._floor = max(self._floor, evicted)

    def changed_since(self, entity: Hashable, since: int) -> bool:
        if since < self._floor:
            return True
        return self._last.get(entity, -1) > since


class RecentRoomEvents:
    """The newest event IDs of each room with their stream positions."""

    def __init__(self, floor: int, per_room: int = 100, max_rooms: int = 20_000) -> None:
        self._floor = floor
        self._per_room = per_room
        self._rooms: OrderedDict[str, deque[tuple[int, str]]] = OrderedDict()
        self._room_floor: dict[str, int] = {}
        self._max_rooms = max_rooms

    def add(self, room_id: str, position: int, event_id: str) -> None:
        events = self._rooms.get(room_id)
        if events is None:
            events = self._rooms[room_id] = deque()
            self._room_floor[room_id] = max(self._floor, position - 1)
        if len(events) >= self._per_room:
            dropped, _ = events.popleft()
            self._room_floor[room_id] = dropped
        events.append((position, event_id))
        self._rooms.move_to_end(room_id)
        while len(self._rooms) > self._max_rooms:
            # Forgetting a room forgets its positions: no room is answered from
            # memory for positions before its newest evicted event.
            evicted, dropped_events = self._rooms.popitem(last=False)
            self._room_floor.pop(evicted, None)
            if dropped_events:
                self._floor = max(self._floor, dropped_events[-1][0])

    def between(self, room_id: str, after: int, upto: int, limit: int) -> list[str] | None:
        """Up to `limit` + 1 newest event IDs in (after, upto], newest first, or
        None when memory doesn't reach back to `after` (ask the database)."""
        events = self._rooms.get(room_id)
        floor = self._room_floor.get(room_id, self._floor) if events is not None else self._floor
        if after < floor:
            return None
        if events is None:
            return []
        result = []
        for position, event_id in reversed(events):
            if position > upto:
                continue
            if position <= after or len(result) > limit:
                break
            result.append(event_id)
        return result
