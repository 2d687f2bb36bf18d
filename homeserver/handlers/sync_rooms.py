"""/sync's sections for one room: a joined room's timeline, state, ephemeral
events, account data and summary; an invited room's stripped state; a left
room's last events. `SyncHandler` (sync.py) decides which rooms to answer for.

What every member joined all along would be told alike (a timeline since a
position, a room's receipts) is read once per stream position for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from federation.protocol.events import MEMBER, Event, StateKey

from ..cache import InvalidatingCache, PositionMemo
from ..clock import Clock
from ..rooms.state_reader import StateReader
from ..rooms.visibility import Visibility
from ..storage.account_data import AccountDataStore
from ..storage.events import EventStore, StoredEvent
from ..storage.receipts import ReceiptStore
from ..storage.rooms import RoomStore
from ..sync.change_cache import RecentRoomEvents
from ..sync.filtering import EventFilter, SyncFilter
from ..sync.notifier import Notifier
from ..sync.tokens import SyncToken, TopologicalToken
from .client_events import client_event, stripped_state
from .typing import TypingHandler

STRIPPED_STATE_TYPES = (
    "m.room.create", "m.room.name", "m.room.avatar", "m.room.topic", "m.room.join_rules",
    "m.room.canonical_alias", "m.room.encryption",
)


class UnreadCounter(Protocol):
    async def unread_counts(self, user_id: str, room_id: str) -> dict[str, int]: ...


@dataclass(frozen=True)
class SyncRequest:
    user_id: str
    device_id: str
    since: SyncToken | None
    timeout_ms: int | None  # None: wait for something new however long it takes
    filter: SyncFilter
    full_state: bool = False


@dataclass(frozen=True)
class RoomTimeline:
    """A room's timeline section: its events, in the client format without
    transaction IDs, which only the sending device may see."""

    events: list[StoredEvent]
    serialized: list[dict[str, Any]]
    limited: bool
    prev_batch: str
    filter: EventFilter  # the timeline filter it was built with, kept alive (see its key)

    def for_device(self, user_id: str, device_id: str) -> list[dict[str, Any]]:
        """Spec: `unsigned.transaction_id` for the device that sent the event."""
        out = self.serialized
        for i, stored in enumerate(self.events):
            if stored.txn_id is not None and stored.txn_device == device_id and \
                    stored.event.sender == user_id:
                out = list(out) if out is self.serialized else out
                event = out[i]
                out[i] = {**event, "unsigned": {**event["unsigned"],
                                                "transaction_id": stored.txn_id}}
        return out


class RoomSections:
    def __init__(
        self, *, events: EventStore, rooms: RoomStore, state: StateReader,
        account_data: AccountDataStore, receipts: ReceiptStore, typing: TypingHandler,
        notifier: Notifier, clock: Clock, unread: UnreadCounter | None,
        visibility: Visibility | None, recent: RecentRoomEvents | None,
    ) -> None:
        self._events = events
        self._rooms = rooms
        self._state = state
        self._account_data = account_data
        self._receipts = receipts
        self._typing = typing
        self._notifier = notifier
        self._clock = clock
        self._unread = unread
        self._visibility = visibility
        self._recent = recent
        self._last_joins: InvalidatingCache[int | None] = InvalidatingCache()
        self._steady_memo: PositionMemo[RoomTimeline] = PositionMemo()
        self._receipts_memo: PositionMemo[list[Any]] = PositionMemo()

    def membership_changed(self, user_id: str, room_id: str) -> None:
        self._last_joins.invalidate((user_id, room_id))

    async def joined_room(self, req: SyncRequest, room_id: str, since: int | None, upto: int,
                           newly_joined: bool, steady: bool = False,
                           shared_lines: dict[str, RoomTimeline] | None = None
                           ) -> dict[str, Any] | None:
        """`steady`: the user has been joined since `since` (their memberships did
        not move), so every event after it is visible to them. `shared_lines`:
        leave out personal fields, noting the timeline there (the answer shared
        by quiet users, `SyncHandler._shared_build`)."""
        now = self._clock.time_ms()
        if steady and since is not None and not req.full_state:
            line = await self._steady_timeline(req, room_id, since, upto, now)
        else:
            line = await self._user_timeline(req, room_id, None if newly_joined else since,
                                             upto, now)
        timeline = line.events
        state_events = await self._state_section(req, room_id, timeline, since, upto,
                                                 full=newly_joined or req.full_state
                                                 or line.limited)
        because = await self._redactions(state_events)
        shared = shared_lines is not None
        if shared_lines is not None:
            shared_lines[room_id] = line
        room: dict[str, Any] = {
            "timeline": {
                "events": line.serialized if shared else line.for_device(req.user_id,
                                                                         req.device_id),
                "limited": line.limited,
                "prev_batch": line.prev_batch,
            },
            "state": {"events": [self._serialize(s, now, req, because) for s in state_events]},
            "ephemeral": {"events": await self._ephemeral(req, room_id, since, upto,
                                                          shared)},
            "account_data": {"events": await self._room_account_data(req, room_id, since, upto)},
            "unread_notifications": {"notification_count": 0, "highlight_count": 0},
        }
        if since is None or newly_joined or any(s.event.type == MEMBER
                                                for s in timeline + state_events):
            room["summary"] = await self.summary(room_id, req.user_id)
        if self._unread is not None and not shared:
            room["unread_notifications"] = await self._unread.unread_counts(req.user_id, room_id)
        return room

    @staticmethod
    def has_news(room: dict[str, Any], since: int | None) -> bool:
        return bool(room["timeline"]["events"] or room["state"]["events"]
                    or room["ephemeral"]["events"] or room["account_data"]["events"])

    async def summary(self, room_id: str, user_id: str) -> dict[str, Any]:
        joined = await self._rooms.members(room_id, ("join",))
        invited = await self._rooms.members(room_id, ("invite",))
        heroes = sorted(u for u in joined + invited if u != user_id)[:5]
        return {"m.heroes": heroes, "m.joined_member_count": len(joined),
                "m.invited_member_count": len(invited)}

    async def invite_room(self, room_id: str, user_id: str) -> dict[str, Any]:
        state = await self._events.current_state_ids(room_id)
        keys = [(t, "") for t in STRIPPED_STATE_TYPES] + [(MEMBER, user_id)]
        ids = [state[k] for k in keys if k in state]
        invite = state.get((MEMBER, user_id))
        if invite:
            invite_event = (await self._events.get_events([invite]))[invite]
            remote_state = invite_event.pdu.get("unsigned", {}).get("invite_room_state")
            if isinstance(remote_state, list):
                # An invite from another server: it brought the room's state with it.
                return {"invite_state": {"events": [
                    *[e for e in remote_state if isinstance(e, dict)],
                    stripped_state(invite_event)]}}
            inviter = invite_event.sender
            if (MEMBER, inviter) in state:
                ids.append(state[(MEMBER, inviter)])
        events = await self._events.get_events(ids)
        return {"invite_state": {"events": [stripped_state(events[i]) for i in ids
                                            if i in events]}}

    async def left_room(self, req: SyncRequest, room_id: str, since: int | None,
                         leave_position: int) -> dict[str, Any]:
        now = self._clock.time_ms()
        timeline, limited = await self._timeline(req, room_id, since, leave_position)
        timeline = await self._visible(req, room_id, timeline, leave_position)
        state = await self._state_section(req, room_id, timeline, since, leave_position,
                                          full=since is None or limited)
        prev_batch = await self._prev_batch(room_id, timeline, leave_position)
        because = await self._redactions(timeline + state)
        return {
            "timeline": {"events": [self._serialize(s, now, req, because) for s in timeline],
                         "limited": limited, "prev_batch": str(prev_batch)},
            "state": {"events": [self._serialize(s, now, req, because) for s in state]},
            "account_data": {"events": []},
        }

    async def _timeline(self, req: SyncRequest, room_id: str, since: int | None, upto: int
                        ) -> tuple[list[StoredEvent], bool]:
        limit = req.filter.timeline_limit
        if not req.filter.timeline.allows_room(room_id):
            return [], False
        recent = await self._recent_events(room_id, since or 0, upto, limit + 1)
        limited = len(recent) > limit
        return list(reversed(recent[:limit])), limited

    async def _recent_events(self, room_id: str, after: int, upto: int, count: int
                             ) -> list[StoredEvent]:
        """Newest first; from memory when it reaches back far enough."""
        ids = self._recent.between(room_id, after, upto, count - 1) if self._recent else None
        if ids is None:
            return await self._events.room_stream(room_id, after, upto, count)
        stored = await self._events.get_stored(ids[:count])
        return [stored[eid] for eid in ids[:count] if eid in stored]

    async def _last_join(self, user_id: str, room_id: str, upto: int) -> int | None:
        async def load() -> int | None:
            return await self._rooms.last_join(user_id, room_id, upto)

        value = await self._last_joins.get_or_load((user_id, room_id), load)
        return value if value is None or value <= upto else await load()

    async def _visible(self, req: SyncRequest, room_id: str, events: list[StoredEvent],
                       upto: int) -> list[StoredEvent]:
        """History visibility: a newly joined user's timeline reaches back before
        the join, and a left room's up to the leave."""
        if self._visibility is None or not events:
            return events
        last_join = await self._last_join(req.user_id, room_id, upto)
        return await self._visibility.filter(req.user_id, events, last_join)

    async def _user_timeline(self, req: SyncRequest, room_id: str, since: int | None,
                             upto: int, now: int) -> RoomTimeline:
        timeline, limited = await self._timeline(req, room_id, since, upto)
        timeline = [s for s in timeline
                    if req.filter.timeline.allows(s.event.type, s.event.sender, room_id,
                                                  s.event.content)]
        timeline = await self._visible(req, room_id, timeline, upto)
        return await self._serialized_timeline(req, room_id, timeline, limited, upto, now)

    async def _steady_timeline(self, req: SyncRequest, room_id: str, since: int, upto: int,
                               now: int) -> RoomTimeline:
        """What happened in a room since `since`, for a member joined all along:
        the same for every such member with the same timeline filter, so a message
        to a big room is read, filtered and serialized once for all the listeners
        it wakes instead of once per listener."""
        timeline_filter = req.filter.timeline
        # The entry holds its filter, so no other filter can take its id meanwhile.
        key = (room_id, since, id(timeline_filter))

        async def load() -> RoomTimeline:
            timeline, limited = await self._timeline(req, room_id, since, upto)
            timeline = [s for s in timeline
                        if timeline_filter.allows(s.event.type, s.event.sender, room_id,
                                                  s.event.content)]
            return await self._serialized_timeline(req, room_id, timeline, limited, upto, now)

        return await self._steady_memo.get_or_load(upto, key, load)

    async def _serialized_timeline(self, req: SyncRequest, room_id: str,
                                   timeline: list[StoredEvent], limited: bool, upto: int,
                                   now: int) -> RoomTimeline:
        prev_batch = await self._prev_batch(room_id, timeline, upto)
        because = await self._redactions(timeline)
        return RoomTimeline(timeline, [
            client_event(s, now, include_room_id=False,
                         redaction=because.get(s.redacted_by or "")) for s in timeline
        ], limited, str(prev_batch), req.filter.timeline)

    async def _prev_batch(self, room_id: str, timeline: list[StoredEvent], upto: int
                          ) -> TopologicalToken:
        if timeline:
            first = timeline[0]
            return TopologicalToken.before(first.event.depth, first.stream_ordering)
        depth, stream = await self._events.topological_position(room_id, upto)
        return TopologicalToken(depth, stream)

    async def _state_section(self, req: SyncRequest, room_id: str, timeline: list[StoredEvent],
                             since: int | None, upto: int, full: bool) -> list[StoredEvent]:
        if not full:
            return []
        if timeline:
            state_ids = await self._state.state_before(timeline[0].event.event_id)
        else:
            last = await self._events.room_stream(room_id, 0, upto, 1)
            state_ids = await self._state.state_after(last[0].event.event_id) if last else {}
        if since is not None and not req.full_state:
            previous = await self._state_at_position(room_id, since)
            if previous:
                state_ids = {k: v for k, v in state_ids.items() if previous.get(k) != v}
        in_timeline = {s.event.event_id for s in timeline}
        wanted = self._lazy_load(req, state_ids, timeline)
        ids = [eid for key, eid in wanted.items() if eid not in in_timeline]
        stored = await self._events.get_stored(ids)
        return [stored[eid] for eid in ids if eid in stored and req.filter.state.allows(
            stored[eid].event.type, stored[eid].event.sender, room_id)]

    def _lazy_load(self, req: SyncRequest, state_ids: dict[StateKey, str],
                   timeline: list[StoredEvent]) -> dict[StateKey, str]:
        if not req.filter.state.lazy_load_members:
            return state_ids
        senders = {s.event.sender for s in timeline} | {req.user_id}
        return {k: v for k, v in state_ids.items() if k[0] != MEMBER or k[1] in senders}

    async def _state_at_position(self, room_id: str, position: int) -> dict[StateKey, str]:
        last = await self._events.room_stream(room_id, 0, position, 1)
        if not last:
            return {}
        return await self._state.state_after(last[0].event.event_id)

    async def _ephemeral(self, req: SyncRequest, room_id: str, since: int | None, upto: int,
                         shared: bool = False) -> list[dict[str, Any]]:
        """`shared`: for any member, so with nobody's private receipts."""
        out: list[dict[str, Any]] = []
        if self._typing.changed_since(room_id, since):
            out.append({"type": "m.typing",
                        "content": {"user_ids": self._typing.typing_users(room_id)}})
        changes = self._notifier.changes
        receipts = []
        if since is None or changes.room_changed(room_id, ("receipts",), since) or \
                changes.user_changed(req.user_id, ("receipts",), since):
            receipts = await self._room_receipts(room_id, since or 0, upto)
        content: dict[str, Any] = {}
        for r in receipts:
            if r.receipt_type == "m.read.private" and (shared or r.user_id != req.user_id):
                continue
            data: dict[str, Any] = {"ts": r.ts}
            if r.thread_id:
                data["thread_id"] = r.thread_id
            content.setdefault(r.event_id, {}).setdefault(r.receipt_type, {})[r.user_id] = data
        if content:
            out.append({"type": "m.receipt", "content": content})
        return [e for e in out if req.filter.ephemeral.allows(e["type"], "", room_id)]

    async def _room_receipts(self, room_id: str, since: int, upto: int) -> list[Any]:
        """A room's receipts since `since`: everyone in the room is woken by a
        receipt and asks this, so it is read once per position."""
        async def load() -> list[Any]:
            return await self._receipts.for_rooms([room_id], since, upto)

        return await self._receipts_memo.get_or_load(upto, (room_id, since), load)

    async def _room_account_data(self, req: SyncRequest, room_id: str, since: int | None,
                                 upto: int) -> list[dict[str, Any]]:
        if since is not None and not self._notifier.changes.user_changed(
                req.user_id, ("account_data",), since):
            return []
        changed = await self._account_data.changed_since(req.user_id, since or 0, upto)
        return [{"type": t, "content": c} for r, t, c in changed
                if r == room_id and req.filter.room_account_data.allows(t, req.user_id)]

    async def _redactions(self, events: list[StoredEvent]) -> dict[str, Event]:
        """The redaction events of redacted events, for `unsigned.redacted_because`."""
        ids = [s.redacted_by for s in events if s.redacted_by]
        return await self._events.get_events(ids) if ids else {}

    def _serialize(self, stored: StoredEvent, now: int, req: SyncRequest,
                   redactions: dict[str, Event] | None = None) -> dict[str, Any]:
        txn_id = stored.txn_id if stored.txn_device == req.device_id and (
            stored.event.sender == req.user_id) else None
        redaction = (redactions or {}).get(stored.redacted_by or "")
        return client_event(stored, now, include_room_id=False, transaction_id=txn_id,
                            redaction=redaction)
