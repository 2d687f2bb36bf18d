"""History visibility: which events a user may see (spec: room history
visibility, "Server behaviour"), judged by the room state at each event.

A reader is described by `last_join`: the stream position of their latest join
up to what they may read (None if they never joined). Rule 3 ("shared, and the
user joined the room at any point after the event") needs exactly that.
"""

from __future__ import annotations

from federation.protocol.events import MEMBER, StateKey

from ..storage.events import EventStore, StoredEvent
from .state_reader import StateReader

HISTORY_VISIBILITY = "m.room.history_visibility"
HISTORY_VISIBILITY_KEY = (HISTORY_VISIBILITY, "")
_KNOWN = ("world_readable", "shared", "invited", "joined")


def allowed(membership: str | None, visibility: str, stream_ordering: int,
            last_join: int | None) -> bool:
    """The spec's five steps for one (membership, visibility) at an event."""
    # 1. If the history_visibility was set to world_readable, allow.
    if visibility == "world_readable":
        return True
    # 2. If the user's membership was join, allow.
    if membership == "join":
        return True
    # 3. If history_visibility was shared, and the user joined the room at any
    #    point after the event was sent, allow.
    if visibility == "shared" and last_join is not None and last_join > stream_ordering:
        return True
    # 4. If the user's membership was invite, and history_visibility was invited, allow.
    # 5. Otherwise, deny.
    return visibility == "invited" and membership == "invite"


class Visibility:
    def __init__(self, events: EventStore, state: StateReader) -> None:
        self._events = events
        self._state = state

    async def _read(self, user_id: str, state: dict[StateKey, str]) -> tuple[str | None, str]:
        """The user's membership and the room's history visibility in a state."""
        ids = [eid for eid in (state.get((MEMBER, user_id)), state.get(HISTORY_VISIBILITY_KEY))
               if eid]
        loaded = await self._events.get_events(ids)
        member = loaded.get(state.get((MEMBER, user_id), ""))
        vis_event = loaded.get(state.get(HISTORY_VISIBILITY_KEY, ""))
        visibility = vis_event.content.get("history_visibility") if vis_event else None
        # Missing or not understood: "assumed to be shared".
        return (member.membership if member else None,
                str(visibility) if visibility in _KNOWN else "shared")

    async def can_see(self, user_id: str, stored: StoredEvent, last_join: int | None) -> bool:
        event = stored.event
        before = await self._read(user_id, await self._state.state_before(event.event_id))
        if allowed(*before, stored.stream_ordering, last_join):
            return True
        # A history_visibility event, and the user's own membership event, are
        # visible if the state before *or* after them allows it.
        if event.type == HISTORY_VISIBILITY and event.state_key == "" or \
                event.type == MEMBER and event.state_key == user_id:
            after = await self._read(user_id, await self._state.state_after(event.event_id))
            return allowed(*after, stored.stream_ordering, last_join)
        return False

    async def filter(self, user_id: str, events: list[StoredEvent], last_join: int | None
                     ) -> list[StoredEvent]:
        return [s for s in events if await self.can_see(user_id, s, last_join)]
