"""Reading rooms: /messages, /context, /event, /state, /members, /relations.

Every event that leaves the server here passes the history-visibility check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from federation.protocol.errors import Codes, MatrixError
from federation.protocol.events import MEMBER, StateKey

from ..clock import Clock
from ..rooms.state_reader import StateReader
from ..rooms.visibility import HISTORY_VISIBILITY_KEY, Visibility
from ..rooms.writer import RoomWriter
from ..storage.events import EventStore, StoredEvent
from ..storage.rooms import RoomStore
from ..sync.filtering import EventFilter
from ..sync.tokens import SyncToken, TopologicalToken
from .client_events import client_event

MAX_LIMIT = 1000


@dataclass(frozen=True)
class Access:
    """How much of a room a user may read: all (joined), up to a position, or none."""

    joined: bool
    upto: int | None  # stream position limit for former members; None = no limit
    last_join: int | None = None  # the user's latest join up to `upto` (visibility rule 3)


class RemoteHistory(Protocol):
    async def backfill(self, room_id: str, limit: int) -> int:
        """Fetch history older than what we hold from other servers; how many events."""


class RoomReadHandler:
    def __init__(self, writer: RoomWriter, events: EventStore, rooms: RoomStore,
                 state: StateReader, visibility: Visibility, clock: Clock) -> None:
        self._writer = writer
        self._events = events
        self._rooms = rooms
        self._state = state
        self._visibility = visibility
        self._clock = clock
        # Set by the composition root when federation is on.
        self.history: RemoteHistory | None = None

    async def access(self, user_id: str, room_id: str) -> Access:
        snap = await self._writer.snapshot(room_id)
        if snap is None:
            raise MatrixError(403, Codes.FORBIDDEN, "You are not in this room")
        member_id = snap.state.get((MEMBER, user_id))
        member = (await self._events.get_stored([member_id])).get(member_id) if member_id else None
        if member is not None and member.event.membership == "join":
            return Access(True, None, member.stream_ordering)
        if member is not None and member.event.membership in ("leave", "ban"):
            last_join = await self._rooms.last_join(user_id, room_id, member.stream_ordering)
            return Access(False, member.stream_ordering, last_join)
        # Invited or knocking is not joined (spec: history visibility, "a user needs
        # to join a room to view events in that room"): only world_readable is open.
        vis_id = snap.state.get(HISTORY_VISIBILITY_KEY)
        if vis_id:
            vis = (await self._events.get_events([vis_id])).get(vis_id)
            if vis is not None and vis.content.get("history_visibility") == "world_readable":
                return Access(False, None)
        raise MatrixError(403, Codes.FORBIDDEN, "You are not in this room")

    async def _visible(self, user_id: str, access: Access, events: list[StoredEvent]
                       ) -> list[StoredEvent]:
        if access.upto is not None:
            events = [e for e in events if e.stream_ordering <= access.upto]
        return await self._visibility.filter(user_id, events, access.last_join)

    async def serialize(self, events: list[StoredEvent], user_id: str = "",
                        device_id: str = "") -> list[dict[str, Any]]:
        now = self._clock.time_ms()
        redactions = await self._events.get_events(
            [e.redacted_by for e in events if e.redacted_by])
        relations = await self._events.relations_of_many([e.event.event_id for e in events])
        out = []
        for stored in events:
            txn_id = stored.txn_id if (stored.txn_device == device_id
                                       and stored.event.sender == user_id) else None
            out.append(client_event(
                stored, now, redaction=redactions.get(stored.redacted_by or ""),
                transaction_id=txn_id,
                aggregations=await self._aggregations(
                    relations.get(stored.event.event_id, []))))
        return out

    async def _aggregations(self, relations: list[tuple[str, str, str | None]]
                            ) -> dict[str, Any] | None:
        if not relations:
            return None
        result: dict[str, Any] = {}
        edits = [eid for eid, rel, _ in relations if rel == "m.replace"]
        if edits:
            stored = await self._events.get_stored(edits)
            latest = max(stored.values(), key=lambda s: (s.event.origin_server_ts,
                                                         s.event.event_id), default=None)
            if latest is not None:
                result["m.replace"] = client_event(latest, self._clock.time_ms())
        threads = [eid for eid, rel, _ in relations if rel == "m.thread"]
        if threads:
            stored = await self._events.get_stored(threads)
            latest = max(stored.values(), key=lambda s: s.stream_ordering)
            result["m.thread"] = {"latest_event": client_event(latest, self._clock.time_ms()),
                                  "count": len(threads), "current_user_participated": False}
        annotations: dict[tuple[str, str], int] = {}
        for eid, rel, key in relations:
            if rel == "m.annotation" and key is not None:
                annotations[("m.reaction", key)] = annotations.get(("m.reaction", key), 0) + 1
        if annotations:
            result["m.annotation"] = {"chunk": [
                {"type": t, "key": k, "count": c} for (t, k), c in sorted(annotations.items())]}
        return result or None

    # /messages -------------------------------------------------------------------

    async def messages(self, user_id: str, device_id: str, room_id: str, from_token: str | None,
                       to_token: str | None, backwards: bool, limit: int,
                       event_filter: EventFilter) -> dict[str, Any]:
        access = await self.access(user_id, room_id)
        limit = max(0, min(limit, MAX_LIMIT))
        start = await self._position(room_id, from_token, backwards)
        to_pos = await self._position(room_id, to_token, backwards) if to_token else None
        collected: list[StoredEvent] = []
        cursor = start
        exhausted = False
        backfilled = False
        # Filtered-out events don't count towards the limit: keep paging.
        while len(collected) < limit and not exhausted:
            batch = await self._events.paginate(room_id, (cursor.depth, cursor.stream), backwards,
                                                limit, (to_pos.depth, to_pos.stream)
                                                if to_pos else None)
            if len(batch) < limit:
                exhausted = True
                if backwards and not backfilled and self.history is not None:
                    # The start of what we hold: other servers may hold more.
                    backfilled = True
                    if await self.history.backfill(room_id, limit - len(batch)):
                        exhausted = False
                        continue
            if not batch:
                break
            last = batch[-1]
            cursor = (TopologicalToken.before(last.event.depth, last.stream_ordering)
                      if backwards else TopologicalToken(last.event.depth, last.stream_ordering))
            wanted = [s for s in batch if event_filter.allows(s.event.type, s.event.sender,
                                                               room_id, s.event.content)]
            collected += await self._visible(user_id, access, wanted)
        collected = collected[:limit]
        body: dict[str, Any] = {
            "start": from_token or str(start),
            "chunk": await self.serialize(collected, user_id, device_id),
        }
        if collected and len(collected) >= limit:
            last = collected[-1]
            end = (TopologicalToken.before(last.event.depth, last.stream_ordering)
                   if backwards else TopologicalToken(last.event.depth, last.stream_ordering))
            body["end"] = str(end)
        elif not exhausted:
            body["end"] = str(cursor)
        if event_filter.lazy_load_members and collected:
            body["state"] = await self._member_state(room_id, collected)
        return body

    async def _position(self, room_id: str, token: str | None, backwards: bool
                        ) -> TopologicalToken:
        if token is None:
            if backwards:
                depth, stream = await self._events.topological_position(room_id, 2**62)
                return TopologicalToken(depth, stream)
            return TopologicalToken(0, 0)
        if token.startswith("s"):
            position = SyncToken.parse(token).position
            depth, stream = await self._events.topological_position(room_id, position)
            return TopologicalToken(depth, stream)
        return TopologicalToken.parse(token)

    async def _member_state(self, room_id: str, events: list[StoredEvent]
                            ) -> list[dict[str, Any]]:
        senders = {e.event.sender for e in events}
        state = await self._state.state_before(events[0].event.event_id)
        ids = [state[(MEMBER, s)] for s in senders if (MEMBER, s) in state]
        stored = await self._events.get_stored(ids)
        return await self.serialize([stored[i] for i in ids if i in stored])

    # Single events and context ---------------------------------------------------

    async def _visible_event(self, user_id: str, access: Access, room_id: str, event_id: str
                             ) -> StoredEvent:
        stored = await self._events.get_event(event_id)
        if stored is None or stored.event.room_id != room_id or stored.outlier \
                or not await self._visible(user_id, access, [stored]):
            raise MatrixError(404, Codes.NOT_FOUND, "Event not found")
        return stored

    async def visible_event(self, user_id: str, room_id: str, event_id: str) -> StoredEvent:
        """An event of the room the user may see; 404 otherwise, also when the user
        has no access to the room at all (receipts and read markers use this)."""
        try:
            access = await self.access(user_id, room_id)
        except MatrixError as exc:
            raise MatrixError(404, Codes.NOT_FOUND, "Event not found") from exc
        return await self._visible_event(user_id, access, room_id, event_id)

    async def event(self, user_id: str, room_id: str, event_id: str) -> dict[str, Any]:
        access = await self.access(user_id, room_id)
        stored = await self._visible_event(user_id, access, room_id, event_id)
        return (await self.serialize([stored], user_id))[0]

    async def context(self, user_id: str, room_id: str, event_id: str, limit: int,
                      event_filter: EventFilter) -> dict[str, Any]:
        access = await self.access(user_id, room_id)
        stored = await self._visible_event(user_id, access, room_id, event_id)
        limit = max(0, min(limit, 100))
        before_n, after_n = limit // 2, limit - limit // 2
        pos = (stored.event.depth, stored.stream_ordering)
        before = await self._events.paginate(room_id, (pos[0], pos[1] - 1), True, before_n)
        after = await self._events.paginate(room_id, pos, False, after_n)
        before = await self._visible(user_id, access, [
            s for s in before if event_filter.allows(s.event.type, s.event.sender)])
        after = await self._visible(user_id, access, [
            s for s in after if event_filter.allows(s.event.type, s.event.sender)])
        start = before[-1] if before else stored
        end = after[-1] if after else stored
        state_ids = await self._state.state_before(event_id)
        state = await self._events.get_stored(state_ids.values())
        return {
            "event": (await self.serialize([stored], user_id))[0],
            "events_before": await self.serialize(before, user_id),
            "events_after": await self.serialize(after, user_id),
            "start": str(TopologicalToken.before(start.event.depth, start.stream_ordering)),
            "end": str(TopologicalToken(end.event.depth, end.stream_ordering)),
            "state": await self.serialize(list(state.values())),
        }

    # State and members -------------------------------------------------------------

    async def state_ids(self, user_id: str, room_id: str) -> dict[StateKey, str]:
        access = await self.access(user_id, room_id)
        if access.joined or access.upto is None:
            snap = await self._writer.snapshot(room_id)
            return dict(snap.state) if snap else {}
        member_id = (await self._writer.snapshot(room_id)).state.get((MEMBER, user_id))  # type: ignore[union-attr]
        return await self._state.state_after(member_id) if member_id else {}

    async def state(self, user_id: str, room_id: str) -> list[dict[str, Any]]:
        ids = await self.state_ids(user_id, room_id)
        stored = await self._events.get_stored(ids.values())
        return await self.serialize([stored[i] for i in ids.values() if i in stored])

    async def state_event(self, user_id: str, room_id: str, event_type: str, state_key: str
                          ) -> StoredEvent:
        ids = await self.state_ids(user_id, room_id)
        event_id = ids.get((event_type, state_key))
        stored = await self._events.get_event(event_id) if event_id else None
        if stored is None:
            raise MatrixError(404, Codes.NOT_FOUND, "State event not found")
        return stored

    async def members(self, user_id: str, room_id: str, membership: str | None,
                      not_membership: str | None) -> list[dict[str, Any]]:
        ids = await self.state_ids(user_id, room_id)
        member_ids = [eid for (t, _), eid in ids.items() if t == MEMBER]
        stored = await self._events.get_stored(member_ids)
        chosen = [s for s in stored.values()
                  if (membership is None or s.event.membership == membership)
                  and (not_membership is None or s.event.membership != not_membership)]
        return await self.serialize(chosen)

    async def joined_members(self, user_id: str, room_id: str) -> dict[str, Any]:
        access = await self.access(user_id, room_id)
        if not access.joined:
            raise MatrixError(403, Codes.FORBIDDEN, "You are not joined to this room")
        ids = await self.state_ids(user_id, room_id)
        stored = await self._events.get_events([eid for (t, _), eid in ids.items() if t == MEMBER])
        joined: dict[str, Any] = {}
        for event in stored.values():
            if event.membership == "join":
                joined[event.state_key or ""] = {
                    "display_name": event.content.get("displayname"),
                    "avatar_url": event.content.get("avatar_url"),
                }
        return joined

    async def relations(self, user_id: str, room_id: str, event_id: str, rel_type: str | None,
                        event_type: str | None, limit: int) -> dict[str, Any]:
        access = await self.access(user_id, room_id)
        target = await self._events.get_event(event_id)
        if target is None or target.event.room_id != room_id:
            raise MatrixError(404, Codes.NOT_FOUND, "Event not found")
        related = await self._events.relations(event_id, rel_type)
        stored = await self._events.get_stored([eid for eid, _, _ in related])
        events = sorted((s for s in stored.values()
                         if event_type is None or s.event.type == event_type),
                        key=lambda s: s.stream_ordering, reverse=True)
        events = await self._visible(user_id, access, events)
        return {"chunk": await self.serialize(events[:max(1, min(limit, MAX_LIMIT))], user_id)}
