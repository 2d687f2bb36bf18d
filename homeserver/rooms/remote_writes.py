"""The room writer's half for events from other servers (federation): outliers,
remote events with the state before them, our joins to remote rooms, backfill,
and the state groups and state resolution they need. `RoomWriter` (writer.py)
supplies the room locks, snapshots and the commit queue this builds on.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Mapping

from twisted.internet.defer import Deferred, DeferredLock

from federation.protocol.auth_events import auth_types_for_event
from federation.protocol.auth_rules import check_auth_rules
from federation.protocol.errors import AuthError, Codes, MatrixError
from federation.protocol.events import CREATE_KEY, MEMBER, Event, StateKey
from federation.protocol.room_versions import RoomVersion
from federation.protocol.state_res import resolve_state, separate

from ..storage.events import MAX_STATE_CHAIN, NewStateGroup, PersistRequest, PushActionRow
from .records import Pending, PersistedEvent, RoomSnapshot

if TYPE_CHECKING:
    from ..clock import Clock
    from ..storage.events import EventStore
    from ..storage.rooms import RoomStore
    from ..storage.stream import StreamIdGenerator


class RemoteWrites:
    """Mixed into RoomWriter, whose state and helpers it uses."""

    if TYPE_CHECKING:
        _events: EventStore
        _rooms: RoomStore
        _stream: StreamIdGenerator
        _clock: Clock
        _snapshots: OrderedDict[str, RoomSnapshot]
        _backfill_position: int

        def _lock(self, room_id: str) -> DeferredLock: ...
        async def snapshot(self, room_id: str) -> RoomSnapshot | None: ...
        def _remember(self, snap: RoomSnapshot) -> None: ...
        def _new_group_id(self) -> int: ...
        async def _push_actions(self, snap: RoomSnapshot, event: Event
                                ) -> list[PushActionRow]: ...
        async def _complete(self, snap: RoomSnapshot | None, pending: Pending,
                            new: Any) -> PersistedEvent: ...

    async def persist_outliers(self, events: list[Event]) -> None:
        """Store events known without their place in the DAG (auth chains, the
        state a join answer carries); clients never see them."""
        known = await self._events.get_stored(e.event_id for e in events)
        fresh = list({e.event_id: e for e in events if e.event_id not in known}.values())
        commits = []
        for event in fresh:
            position = self._stream.allocate()
            commits.append((position, Deferred.fromCoroutine(self._events.persist(PersistRequest(
                event=event, stream_ordering=position, state_group_before=None,
                state_group_after=0, outlier=True)))))
        try:
            for _, commit in commits:
                await commit
        finally:
            for position, _ in commits:
                self._stream.finish(position)

    async def persist_remote(self, event: Event, state_before: Mapping[StateKey, str]
                             ) -> PersistedEvent:
        """Persist a checked remote event, given the state before it.

        Rejected events (`rejected_reason` set) are stored and hidden. An
        accepted event that fails auth against the current state is soft-failed:
        kept in the DAG, hidden, never a forward extremity. Otherwise the room's
        current state becomes the resolution of its old state and the state
        after the event.
        """
        async with self._lock(event.room_id):
            snap = await self.snapshot(event.room_id)
            if snap is None:
                raise MatrixError(404, Codes.NOT_FOUND, "Unknown room")
            pending = await self._queue_remote(snap, event, dict(state_before))
        return await self._complete(snap, pending, None)

    async def join_remote_room(self, version: RoomVersion, join: Event,
                               state: Mapping[StateKey, Event], auth_chain: list[Event]
                               ) -> PersistedEvent:
        """Our server's join to a room another server hosts: the join answer's
        state and auth chain become outliers, and the join the room's head."""
        create = state.get(CREATE_KEY)
        if create is None:
            raise MatrixError(502, Codes.UNKNOWN, "The join answer's state has no create event")
        await self._rooms.store_room(join.room_id, version.identifier, create.sender, False,
                                     create.origin_server_ts)
        await self.persist_outliers([*auth_chain, *state.values()])
        state_ids = {key: e.event_id for key, e in state.items()}
        async with self._lock(join.room_id):
            snap = await self.snapshot(join.room_id)
            if snap is None or not snap.state:
                # A room new to us: its whole state becomes current with the join.
                depth = max((e.depth for e in state.values()), default=0)
                snap = RoomSnapshot(join.room_id, version, {}, None, 0, [], depth)
                self._remember(snap)
            pending = await self._queue_remote(snap, join, state_ids, heads=[join.event_id])
        return await self._complete(snap, pending, None)

    async def _queue_remote(self, snap: RoomSnapshot, event: Event,
                            state_before: dict[StateKey, str], heads: list[str] | None = None
                            ) -> Pending:
        groups: list[NewStateGroup] = []
        before_group, before_chain = self._group_for(snap, state_before, groups)
        after_state, after_group = state_before, before_group
        if event.is_state() and event.rejected_reason is None:
            delta = self._after_group(before_group, before_chain, state_before, event)
            groups.append(delta)
            after_state = {**state_before, event.state_key_tuple: event.event_id}
            after_group = delta.group_id
        soft_failed = event.rejected_reason is None and not await self._allowed_now(snap, event)
        # Whom it notifies is judged by the state before it, as for local events.
        push_actions = await self._push_actions(snap, event) if not soft_failed else []
        old_state = dict(snap.state)
        if event.rejected_reason is None and not soft_failed:
            await self._advance_remote(snap, event, after_state, after_group, groups, heads)
        position = self._stream.allocate()
        commit = Deferred.fromCoroutine(self._events.persist(PersistRequest(
            event=event, stream_ordering=position, state_group_before=before_group,
            state_group_after=after_group, more_state_groups=groups, soft_failed=soft_failed,
            push_actions=push_actions,
            current_state_delta=await self._state_delta(old_state, snap.state, event),
            extremities=list(snap.extremities), redacts=event.redacts, replaces_outlier=True,
        )))
        persisted = PersistedEvent(event, position, state_before, before_group, after_group,
                                   push_actions, soft_failed)
        return Pending(commit, persisted)

    async def _advance_remote(self, snap: RoomSnapshot, event: Event,
                              after_state: dict[StateKey, str], after_group: int,
                              groups: list[NewStateGroup], heads: list[str] | None) -> None:
        """An accepted remote event becomes a forward extremity; the room's state
        becomes the resolution of its old state and the state after the event
        (or simply the latter when the event follows every extremity)."""
        if heads is not None:
            snap.extremities = list(heads)
        else:
            snap.extremities = [e for e in snap.extremities if e not in event.prev_event_ids]
            snap.extremities.append(event.event_id)
        new_state = after_state
        if len(snap.extremities) > 1 and snap.state != after_state:
            new_state = await self.resolve(snap.version, [snap.state, after_state], event)
        if new_state == after_state:
            snap.state_group = after_group
            snap.chain_length = next((g.chain_length for g in groups
                                      if g.group_id == after_group), snap.chain_length)
        elif new_state != snap.state:
            full = NewStateGroup(self._new_group_id(), None, 0, dict(new_state))
            groups.append(full)
            snap.state_group, snap.chain_length = full.group_id, 0
        snap.state = dict(new_state)
        snap.depth = max(snap.depth, event.depth)

    def _group_for(self, snap: RoomSnapshot, state: dict[StateKey, str],
                   groups: list[NewStateGroup]) -> tuple[int, int]:
        """The state group holding exactly `state`: the room's current one when
        they match, a delta over it when `state` only adds or changes entries
        (the usual fork), else a new full group."""
        base = snap.state_group
        if base is not None and state == snap.state:
            return base, snap.chain_length
        if base is not None and snap.state.keys() <= state.keys() \
                and snap.chain_length + 1 < MAX_STATE_CHAIN:
            changed = {k: v for k, v in state.items() if snap.state.get(k) != v}
            group = NewStateGroup(self._new_group_id(), base, snap.chain_length + 1, changed)
        else:
            group = NewStateGroup(self._new_group_id(), None, 0, dict(state))
        groups.append(group)
        return group.group_id, group.chain_length

    def _after_group(self, base: int, base_chain: int, state_before: dict[StateKey, str],
                     event: Event) -> NewStateGroup:
        """The group of the state after a state event: a delta over the state
        before it, or a full group when the delta chain is long enough."""
        if base_chain + 1 < MAX_STATE_CHAIN:
            return NewStateGroup(self._new_group_id(), base, base_chain + 1,
                                 {event.state_key_tuple: event.event_id})
        return NewStateGroup(self._new_group_id(), None, 0,
                             {**state_before, event.state_key_tuple: event.event_id})

    async def _allowed_now(self, snap: RoomSnapshot, event: Event) -> bool:
        """Soft-fail check: is the event allowed by the room's current state?"""
        if not snap.state:
            return True
        keys = [CREATE_KEY, *auth_types_for_event(snap.version, event.type, event.sender,
                                                  event.state_key, event.content)]
        ids = {k: snap.state[k] for k in keys if k in snap.state}
        loaded = await self._events.get_events(ids.values())
        try:
            check_auth_rules(event, {k: loaded[eid] for k, eid in ids.items() if eid in loaded})
        except AuthError:
            return False
        return True

    async def _state_delta(self, old: dict[StateKey, str], new: dict[StateKey, str],
                           event: Event) -> dict[StateKey, tuple[str, str | None] | None]:
        """The current-state rows to change, with each member event's membership
        (the event being persisted is not in the store yet)."""
        changed = {k: v for k, v in new.items() if old.get(k) != v}
        members = await self._events.get_events(v for k, v in changed.items()
                                                if k[0] == MEMBER and v != event.event_id)
        members[event.event_id] = event
        delta: dict[StateKey, tuple[str, str | None] | None] = {
            k: (v, members[v].membership if v in members else None) for k, v in changed.items()}
        for key in old.keys() - new.keys():
            delta[key] = None
        return delta

    async def resolve(self, version: RoomVersion, state_sets: list[dict[StateKey, str]],
                      pending: Event | None = None) -> dict[StateKey, str]:
        """State resolution, with the conflicted events' auth chains loaded first
        (`pending` is an event being persisted, not in the store yet)."""
        _, conflicted = separate(state_sets)
        if not conflicted:
            return {k: v for s in state_sets for k, v in s.items()}
        loaded: dict[str, Event] = {pending.event_id: pending} if pending else {}
        frontier = {eid for ids in conflicted.values() for eid in ids}
        frontier |= {eid for s in state_sets for eid in s.values()}
        seen: set[str] = set()
        while frontier:
            seen |= frontier
            loaded.update(await self._events.get_events(frontier - loaded.keys()))
            frontier = {a for eid in frontier if eid in loaded
                        for a in loaded[eid].auth_and_create_event_ids()} - seen
        return resolve_state(version, state_sets, loaded.get)

    async def template(self, room_id: str, event_type: str, sender: str, state_key: str,
                       content: Mapping[str, Any]) -> tuple[RoomVersion, dict[str, Any], Event]:
        """An unsigned event for another server to fill in and sign (make_join,
        make_leave, make_knock), and the same as an Event for auth checks."""
        snap = await self.snapshot(room_id)
        if snap is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Unknown room")
        keys = auth_types_for_event(snap.version, event_type, sender, state_key, content)
        pdu: dict[str, Any] = {
            "type": event_type, "sender": sender, "state_key": state_key,
            "content": dict(content), "room_id": room_id,
            "prev_events": snap.extremities[-20:],
            "auth_events": [snap.state[k] for k in keys if k in snap.state],
            "depth": snap.depth + 1, "origin_server_ts": self._clock.time_ms(),
        }
        return snap.version, pdu, Event(pdu, snap.version)

    async def persist_remote_membership(self, event: Event) -> PersistedEvent:
        """A membership event of a room our server is not in (an invite to one
        of our users, or the leave or knock sent in answer): kept outside the
        DAG, but it sets the user's membership so /sync shows it."""
        await self._rooms.store_room(event.room_id, event.room_version.identifier, None, False,
                                     event.origin_server_ts)
        position = self._stream.allocate()
        membership = event.membership or "leave"
        commit = Deferred.fromCoroutine(self._events.persist(PersistRequest(
            event=event, stream_ordering=position, state_group_before=None, state_group_after=0,
            outlier=True, record_membership=True, replaces_outlier=True,
            current_state_delta={event.state_key_tuple: (event.event_id, membership)})))
        self._snapshots.pop(event.room_id, None)
        persisted = PersistedEvent(event, position, {}, None, None)
        return await self._complete(None, Pending(commit, persisted), None)

    async def persist_backfilled(self, event: Event, state_before: Mapping[StateKey, str]
                                 ) -> None:
        """Older history from another server: stored with its state (for
        visibility), below every other position, leaving the room's head alone."""
        async with self._lock(event.room_id):
            snap = await self.snapshot(event.room_id)
            if snap is None:
                raise MatrixError(404, Codes.NOT_FOUND, "Unknown room")
            state = dict(state_before)
            groups: list[NewStateGroup] = []
            before, chain = self._group_for(snap, state, groups)
            after = before
            if event.is_state() and event.rejected_reason is None:
                delta = self._after_group(before, chain, state, event)
                groups.append(delta)
                after = delta.group_id
            self._backfill_position -= 1
            commit = Deferred.fromCoroutine(self._events.persist(PersistRequest(
                event=event, stream_ordering=self._backfill_position,
                state_group_before=before, state_group_after=after, more_state_groups=groups,
                backfilled=True, replaces_outlier=True)))
        await commit
