"""The single writer: every local event is built, authorised, persisted and
announced here, one at a time per room.

Each room's current state, forward extremities and depth are kept in memory
(loaded on first use), so sending a message needs no database read.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol

from twisted.internet.defer import Deferred, DeferredLock

from federation.protocol.auth_events import auth_types_for_event
from federation.protocol.auth_rules import check_auth_rules
from federation.protocol.state_res import resolve_state, separate
from federation.protocol.errors import AuthError, Codes, MatrixError
from federation.protocol.events import CREATE_KEY, MEMBER, Event, StateKey
from federation.protocol.pdu_format import build_event
from federation.protocol.room_versions import RoomVersion, get_room_version
from federation.protocol.signing import ServerKey

from ..clock import Clock
from ..storage.events import (
    MAX_STATE_CHAIN, EventStore, NewStateGroup, PersistRequest, PushActionRow,
)
from ..storage.rooms import RoomStore
from ..storage.stream import StreamIdGenerator
from .txns import RecentTxns

logger = logging.getLogger(__name__)


@dataclass
class RoomSnapshot:
    """What the writer knows of a room's current state."""

    room_id: str
    version: RoomVersion
    state: dict[StateKey, str]
    state_group: int | None
    chain_length: int
    extremities: list[str]
    depth: int


@dataclass
class NewEvent:
    event_type: str
    sender: str
    content: Mapping[str, Any]
    state_key: str | None = None
    redacts: str | None = None
    # The client transaction: (user, device, endpoint path) and the txnId.
    txn: tuple[str, str, str] | None = None
    txn_id: str | None = None
    # Called with the built, authorised event before it is persisted; returns
    # the event to persist (an invite of a remote user comes back with the
    # invitee's server's signature).
    countersign: Callable[[Event], Awaitable[Event]] | None = None


@dataclass
class PersistedEvent:
    event: Event
    stream_ordering: int
    state_before: dict[StateKey, str] = field(default_factory=dict)
    state_group_before: int | None = None
    state_group_after: int | None = None
    push_actions: list[PushActionRow] = field(default_factory=list)
    soft_failed: bool = False

    @property
    def visible(self) -> bool:
        """Whether clients see it: rejected and soft-failed events stay hidden."""
        return self.event.rejected_reason is None and not self.soft_failed


Listener = Callable[[PersistedEvent], None]


@dataclass
class _Pending:
    """An event queued for commit, and what to announce once it is committed."""

    commit: Deferred[None]
    persisted: PersistedEvent


class PushActionSource(Protocol):
    """Decides whom an event notifies, given the room state before it."""

    async def push_actions(self, state: Mapping[StateKey, str], event: Event,
                           state_group: int | None = None) -> list[PushActionRow]:
        """`state_group`: the ID of `state` when it has one (a group's state
        never changes, so what is derived from it may be kept)."""
        ...


class RoomWriter:
    def __init__(
        self,
        events: EventStore,
        rooms: RoomStore,
        stream: StreamIdGenerator,
        state_group_ids: StreamIdGenerator,
        clock: Clock,
        server_key: ServerKey,
        cache_size: int = 5000,
        push: PushActionSource | None = None,
        backfill_below: int = 0,
        recent_txns_size: int = 4096,
    ) -> None:
        self._events = events
        self._rooms = rooms
        self._stream = stream
        self._state_group_ids = state_group_ids
        self._clock = clock
        self._key = server_key
        self._locks: dict[str, DeferredLock] = {}
        self._snapshots: OrderedDict[str, RoomSnapshot] = OrderedDict()
        self._cache_size = cache_size
        self._listeners: list[Listener] = []
        # Client transactions queued but not yet committed: their retries wait.
        self._inflight_txns: dict[tuple[str, str, str], list[Deferred[PersistedEvent]]] = {}
        self._recent_txns = RecentTxns(recent_txns_size)
        self._push = push
        # Backfilled history takes positions below every other event's, so no
        # /sync ever sees it as new.
        self._backfill_position = min(0, backfill_below)

    def add_listener(self, listener: Listener) -> None:
        """Called (on the reactor thread) after each event is persisted."""
        self._listeners.append(listener)

    def _lock(self, room_id: str) -> DeferredLock:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = DeferredLock()
        return lock

    # Snapshots -----------------------------------------------------------------

    async def snapshot(self, room_id: str) -> RoomSnapshot | None:
        snap = self._snapshots.get(room_id)
        if snap is not None:
            self._snapshots.move_to_end(room_id)
            return snap
        version_id = await self._rooms.get_room_version(room_id)
        version = get_room_version(version_id) if version_id else None
        if version is None:
            return None
        state = await self._events.current_state_ids(room_id)
        extremities = await self._events.forward_extremities(room_id)
        group, chain, depth = None, 0, 0
        if extremities:
            stored = await self._events.get_stored(extremities)
            depth = max((s.event.depth for s in stored.values()), default=0)
            if len(extremities) == 1:
                groups = await self._events.state_group_for_event(extremities[0])
                if groups is not None:
                    group = groups[1]
                    _, chain = await self._events.state_group_entries(group)
        snap = RoomSnapshot(room_id, version, state, group, chain, extremities, depth)
        self._remember(snap)
        return snap

    def _remember(self, snap: RoomSnapshot) -> None:
        self._snapshots[snap.room_id] = snap
        self._snapshots.move_to_end(snap.room_id)
        while len(self._snapshots) > self._cache_size:
            self._snapshots.popitem(last=False)

    async def current_state_events(self, room_id: str) -> dict[StateKey, Event]:
        snap = await self.snapshot(room_id)
        if snap is None:
            return {}
        events = await self._events.get_events(snap.state.values())
        return {k: events[eid] for k, eid in snap.state.items() if eid in events}

    # Writing -----------------------------------------------------------------

    async def create_room(self, version: RoomVersion, creator: str, create_content: dict[str, Any],
                          room_id: str | None, is_public: bool) -> PersistedEvent:
        """Send the create event of a new room (v12 derives the room ID from it)."""
        content = dict(create_content)
        content["room_version"] = version.identifier
        if not version.implicit_room_creator:
            content["creator"] = creator
        event = build_event(
            version, self._key, event_type="m.room.create", sender=creator, content=content,
            room_id=None if version.room_id_is_create_hash else room_id, prev_events=[],
            auth_events=[], depth=1, origin_server_ts=self._clock.time_ms(), state_key="",
        )
        await self._rooms.store_room(event.room_id, version.identifier, creator, is_public,
                                     event.origin_server_ts)
        snap = RoomSnapshot(event.room_id, version, {}, None, 0, [], 0)
        self._remember(snap)
        async with self._lock(event.room_id):
            return await self._persist(snap, event, None)

    async def send(self, room_id: str, new: NewEvent) -> PersistedEvent:
        """Build, authorise and persist one event; raises MatrixError if refused.

        The room's lock is held only to build and queue the event: its commit is
        awaited outside, so the next event of the room is built meanwhile and
        both share one commit (see EventStore.persist). A retried txnId is
        looked up before the lock for the same reason (see rooms/txns.py).
        """
        looked_up_at: int | None = None
        if new.txn is not None and new.txn not in self._inflight_txns:
            looked_up_at = self._recent_txns.mark()
            earlier = await self._earlier_answer(new.txn)
            if earlier is not None:
                return earlier
        async with self._lock(room_id):
            snap = await self.snapshot(room_id)
            if snap is None:
                raise MatrixError(404, Codes.NOT_FOUND, "Unknown room")
            if new.txn is not None and new.txn in self._inflight_txns:
                waiter: Deferred[PersistedEvent] = Deferred()
                self._inflight_txns[new.txn].append(waiter)
                pending = None
            else:
                if new.txn is not None:
                    earlier = await self._answer_since(new.txn, looked_up_at)
                    if earlier is not None:
                        return earlier
                event = await self._build(snap, new)
                await self._authorise(snap, event)
                if new.countersign is not None:
                    event = await new.countersign(event)
                pending = await self._queue(snap, event, new)
        if pending is None:
            return await waiter  # a retry of a transaction still being committed
        return await self._complete(snap, pending, new)

    async def _answer_since(self, txn: tuple[str, str, str], looked_up_at: int | None
                            ) -> PersistedEvent | None:
        """The answer to a txnId not in flight, given when it was looked up in the
        database: committed since then, or (if that may be forgotten) stored."""
        event_id = self._recent_txns.get(txn)
        if event_id is not None:
            return await self._answer(event_id)
        if looked_up_at is not None and self._recent_txns.remembers_since(looked_up_at):
            return None
        return await self._earlier_answer(txn)

    async def _earlier_answer(self, txn: tuple[str, str, str]) -> PersistedEvent | None:
        earlier = await self._events.get_txn_response(*txn)
        if earlier is None:
            return None
        return await self._answer(earlier["event_id"])

    async def _answer(self, event_id: str) -> PersistedEvent | None:
        stored = await self._events.get_event(event_id)
        return PersistedEvent(stored.event, stored.stream_ordering) if stored else None

    async def _build(self, snap: RoomSnapshot, new: NewEvent) -> Event:
        keys = auth_types_for_event(snap.version, new.event_type, new.sender, new.state_key,
                                    new.content)
        auth_ids = [snap.state[k] for k in keys if k in snap.state]
        try:
            return build_event(
                snap.version, self._key, event_type=new.event_type, sender=new.sender,
                content=new.content, room_id=snap.room_id, prev_events=snap.extremities[-20:],
                auth_events=auth_ids, depth=snap.depth + 1,
                origin_server_ts=self._clock.time_ms(), state_key=new.state_key,
                redacts=new.redacts,
            )
        except MatrixError:
            raise
        except (ValueError, TypeError) as exc:
            raise MatrixError(400, Codes.BAD_JSON, f"Invalid event: {exc}") from exc

    async def _authorise(self, snap: RoomSnapshot, event: Event) -> None:
        keys = [CREATE_KEY, *auth_types_for_event(snap.version, event.type, event.sender,
                                                  event.state_key, event.content)]
        ids = {k: snap.state[k] for k in keys if k in snap.state}
        loaded = await self._events.get_events(ids.values())
        auth_state = {k: loaded[eid] for k, eid in ids.items() if eid in loaded}
        try:
            check_auth_rules(event, auth_state)
        except AuthError as exc:
            logger.info("refused %s in %s from %s: rule %s: %s", event.type, snap.room_id,
                        event.sender, exc.rule, exc.message)
            raise

    async def _persist(self, snap: RoomSnapshot, event: Event, new: NewEvent | None
                       ) -> PersistedEvent:
        return await self._complete(snap, await self._queue(snap, event, new), new)

    async def _queue(self, snap: RoomSnapshot, event: Event, new: NewEvent | None
                     ) -> _Pending:
        """Queue the event's commit and advance the room in memory (under the lock)."""
        more_groups: list[NewStateGroup] = []
        if snap.state_group is None and snap.state:
            # A forked room loaded from storage: give its resolved state a group.
            more_groups.append(NewStateGroup(self._new_group_id(), None, 0, dict(snap.state)))
            snap.state_group, snap.chain_length = more_groups[0].group_id, 0
        before_group = snap.state_group
        new_group = None
        after_group = before_group
        if event.is_state():
            new_group = self._next_state_group(snap, event)
            after_group = new_group.group_id
        push_actions = await self._push_actions(snap, event)
        position = self._stream.allocate()
        commit = Deferred.fromCoroutine(self._events.persist(PersistRequest(
            event=event, stream_ordering=position, state_group_before=before_group,
            state_group_after=after_group if after_group is not None else 0,
            new_state_group=new_group, updates_current_state=event.is_state(),
            txn=new.txn if new else None, txn_id=new.txn_id if new else None,
            redacts=event.redacts, push_actions=push_actions, more_state_groups=more_groups,
        )))
        if new is not None and new.txn is not None:
            self._inflight_txns[new.txn] = []
        persisted = PersistedEvent(event, position, dict(snap.state), before_group, after_group,
                                   push_actions)
        self._advance(snap, event, new_group)
        return _Pending(commit, persisted)

    async def _complete(self, snap: RoomSnapshot | None, pending: _Pending,
                        new: NewEvent | None) -> PersistedEvent:
        """Await the commit; only then is the event announced and answered."""
        persisted = pending.persisted
        txn = new.txn if new is not None else None
        try:
            await pending.commit
        except Exception as exc:
            waiters = self._inflight_txns.pop(txn, []) if txn else []
            self._stream.finish(persisted.stream_ordering)
            # Memory ran ahead of the database: start again from what is stored.
            self._snapshots.pop(persisted.event.room_id, None)
            for waiter in waiters:
                waiter.errback(exc)
            raise
        waiters = self._inflight_txns.pop(txn, []) if txn else []
        if txn is not None:
            self._recent_txns.add(txn, persisted.event.event_id)
        self._stream.finish(persisted.stream_ordering)
        for listener in self._listeners if persisted.visible else ():
            try:
                listener(persisted)
            except Exception:  # a listener's bug must not fail the send
                logger.exception("event listener failed for %s", persisted.event.event_id)
        for waiter in waiters:
            waiter.callback(persisted)
        return persisted

    async def _push_actions(self, snap: RoomSnapshot, event: Event) -> list[PushActionRow]:
        """Evaluated before persisting so the rows commit with the event: spec
        (push, "Server behaviour"): the new count is in the same /sync as the event."""
        if self._push is None or event.rejected_reason is not None:
            return []
        try:
            return await self._push.push_actions(snap.state, event, snap.state_group)
        except Exception:  # a push-rule bug must not fail the send
            logger.exception("push rule evaluation failed for %s", event.event_id)
            return []

    def _next_state_group(self, snap: RoomSnapshot, event: Event) -> NewStateGroup:
        group_id = self._state_group_ids.allocate()
        self._state_group_ids.finish(group_id)
        key = event.state_key_tuple
        if snap.state_group is None or snap.chain_length >= MAX_STATE_CHAIN:
            entries = dict(snap.state)
            entries[key] = event.event_id
            return NewStateGroup(group_id, None, 0, entries)
        return NewStateGroup(group_id, snap.state_group, snap.chain_length + 1,
                             {key: event.event_id})

    def _advance(self, snap: RoomSnapshot, event: Event, group: NewStateGroup | None) -> None:
        snap.extremities = [e for e in snap.extremities if e not in event.prev_event_ids]
        snap.extremities.append(event.event_id)
        snap.depth = max(snap.depth, event.depth)
        if group is not None:
            snap.state[event.state_key_tuple] = event.event_id
            snap.state_group = group.group_id
            snap.chain_length = group.chain_length

    # Federation: events from other servers ------------------------------------

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
                            ) -> _Pending:
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
        return _Pending(commit, persisted)

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

    def _new_group_id(self) -> int:
        group_id = self._state_group_ids.allocate()
        self._state_group_ids.finish(group_id)
        return group_id

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
        return await self._complete(None, _Pending(commit, persisted), None)

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
