"""The single writer: every event is persisted and announced here, one at a
time per room; local events are built and authorised here too (events from
other servers: remote_writes.py).

Each room's current state, forward extremities and depth are kept in memory
(loaded on first use), so sending a message needs no database read.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock

from federation.protocol.auth_events import auth_types_for_event
from federation.protocol.auth_rules import check_auth_rules
from federation.protocol.errors import AuthError, Codes, MatrixError
from federation.protocol.events import CREATE_KEY, Event, StateKey
from federation.protocol.pdu_format import build_event
from federation.protocol.room_versions import RoomVersion, get_room_version
from federation.protocol.signing import ServerKey

from ..clock import Clock
from ..storage.events import (
    MAX_STATE_CHAIN, EventStore, NewStateGroup, PersistRequest, PushActionRow,
)
from ..storage.rooms import RoomStore
from ..storage.stream import StreamIdGenerator
from .records import (
    Listener, NewEvent, Pending, PersistedEvent, PushActionSource, RoomSnapshot,
)
from .remote_writes import RemoteWrites
from .txns import RecentTxns

# Where the rest of the server takes them from.
__all__ = ["NewEvent", "PersistedEvent", "RoomSnapshot", "RoomWriter"]

logger = logging.getLogger(__name__)


class RoomWriter(RemoteWrites):
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
                     ) -> Pending:
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
        return Pending(commit, persisted)

    async def _complete(self, snap: RoomSnapshot | None, pending: Pending,
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


    def _new_group_id(self) -> int:
        group_id = self._state_group_ids.allocate()
        self._state_group_ids.finish(group_id)
        return group_id
