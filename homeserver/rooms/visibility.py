"""History visibility: which events a user may see (spec: room history visibility).

For each event the user's membership and the room's `history_visibility` are
read from the state at that event; `shared` history is visible to current
members, `invited` from the invite on, `joined` only while joined.
"""

from __future__ import annotations

from federation.protocol.events import MEMBER, Event

from ..storage.events import EventStore, StoredEvent
from .state_reader import StateReader

HISTORY_VISIBILITY_KEY = ("m.room.history_visibility", "")


class Visibility:
    def __init__(self, events: EventStore, state: StateReader) -> None:
        self._events = events
        self._state = state

    async def _member_and_visibility(self, user_id: str, event: Event) -> tuple[str | None, str]:
        # The user's own membership event is judged by the state after it,
        # so people always see their own join, invite and leave.
        own = event.type == MEMBER and event.state_key == user_id
        state = await (self._state.state_after(event.event_id) if own
                       else self._state.state_before(event.event_id))
        loaded = await self._events.get_events(
            [eid for eid in (state.get((MEMBER, user_id)), state.get(HISTORY_VISIBILITY_KEY))
             if eid])
        member = loaded.get(state.get((MEMBER, user_id), ""))
        vis_event = loaded.get(state.get(HISTORY_VISIBILITY_KEY, ""))
        membership = member.membership if member else None
        visibility = vis_event.content.get("history_visibility") if vis_event else None
        return membership, visibility if isinstance(visibility, str) else "shared"

    async def can_see(self, user_id: str, event: Event, currently_joined: bool) -> bool:
        membership, visibility = await self._member_and_visibility(user_id, event)
        if visibility == "world_readable" or membership == "join":
            return True
        if visibility == "shared" and currently_joined:
            return True
        if visibility == "invited" and membership == "invite":
            return True
        return False

    async def filter(self, user_id: str, events: list[StoredEvent], currently_joined: bool
                     ) -> list[StoredEvent]:
        return [s for s in events if await self.can_see(user_id, s.event, currently_joined)]
