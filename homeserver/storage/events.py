"""Events: persisting them with their state, and reading them back."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from twisted.internet.defer import Deferred

from federation.protocol.events import MEMBER, Event, StateKey
from federation.protocol.room_versions import KNOWN_ROOM_VERSIONS

from .batched import BatchedLookup
from .database import Database
from .event_rows import (
    DELETE_EXTREMITIES, INSERT_CLIENT_TXN, INSERT_EVENT, INSERT_EVENT_STATE_GROUPS,
    INSERT_EXTREMITY, INSERT_PUSH_ACTIONS, INSERT_RELATION, PlainEventRows, client_txn_row,
    event_row, event_state_groups_row, is_plain, push_action_rows, relation_row,
)
from .schema import (
    client_txns, current_state, event_relations, event_state_groups, events,
    forward_extremities, room_memberships, state_groups, state_groups_state,
)

# A new state group is stored as a full snapshot once its delta chain is this long.
MAX_STATE_CHAIN = 50


@dataclass(frozen=True)
class NewStateGroup:
    group_id: int
    prev_group: int | None
    chain_length: int
    # The entries of this group: the delta over prev_group, or the full state.
    entries: dict[StateKey, str]


@dataclass(frozen=True)
class PushActionRow:
    """A notification of one user by this event (a row of event_push_actions)."""

    user_id: str
    highlight: bool
    thread_id: str = "main"


@dataclass
class PersistRequest:
    """Everything one event's transaction writes, decided by the room writer."""

    event: Event
    stream_ordering: int
    state_group_before: int | None
    state_group_after: int
    new_state_group: NewStateGroup | None = None
    # Whether the event changes the room's current state (accepted state events).
    updates_current_state: bool = False
    outlier: bool = False
    # The client transaction this event answers: (user, device, path).
    txn: tuple[str, str, str] | None = None
    txn_id: str | None = None
    # Redaction targets this event redacts (applied once both are present).
    redacts: str | None = None
    # Users this event notifies, written with the event so counts are never lost.
    push_actions: list[PushActionRow] = field(default_factory=list)
    # Federation: a soft-failed event stays in the DAG but is hidden from clients.
    soft_failed: bool = False
    # Federation: when set, the room's current state changes by this delta
    # (key -> (event ID, membership) or None to remove), replacing
    # `updates_current_state`, and its forward extremities become exactly
    # `extremities` (state resolution decides both).
    current_state_delta: dict[StateKey, tuple[str, str | None] | None] | None = None
    extremities: list[str] | None = None
    # Federation: an outlier that still sets its target's membership (an
    # invite to a room our server is not in).
    record_membership: bool = False
    # Federation: older history fetched from another server; it changes neither
    # the room's head nor its current state.
    backfilled: bool = False
    # Federation: the event may already be stored as an outlier.
    replaces_outlier: bool = False
    # Further state groups this transaction writes (e.g. a resolved current state).
    more_state_groups: list[NewStateGroup] = field(default_factory=list)


@dataclass(frozen=True)
class StoredEvent:
    event: Event
    stream_ordering: int
    redacted_by: str | None
    outlier: bool
    txn_device: str | None = None
    txn_id: str | None = None
    soft_failed: bool = False


# What clients may see of a room's timeline: not outliers, not rejected, not soft-failed.
_SHOWN = (events.c.outlier.is_(False), events.c.rejected_reason.is_(None),
          events.c.soft_failed.is_(False))

# Events waiting while a commit is in flight go in the next one (group commit).
MAX_BATCH = 200


class EventStore:
    def __init__(self, db: Database, cache_size: int = 20000) -> None:
        self._db = db
        self._cache: OrderedDict[str, StoredEvent] = OrderedDict()
        self._cache_size = cache_size
        self._queue: list[tuple[PersistRequest, Deferred[None]]] = []
        self._flushing = False
        self._txn_responses = BatchedLookup(db, "get_txn_responses", _load_txn_responses)

    # Writing -----------------------------------------------------------------

    async def persist(self, request: PersistRequest) -> None:
        """Commit one event (with its state, txn and push actions), durably.

        Requests queue up while a commit is in flight and share the next one:
        one fsync for many events. They commit in the order they were queued,
        so callers that queue in room order persist in room order.
        """
        done: Deferred[None] = Deferred()
        self._queue.append((request, done))
        if not self._flushing:
            self._flushing = True
            Deferred.fromCoroutine(self._flush())
        await done
        # Everyone woken for this event reads it next: have it in the cache.
        self._remember(StoredEvent(
            request.event, request.stream_ordering, None, request.outlier,
            request.txn[1] if request.txn else None, request.txn_id if request.txn else None,
            request.soft_failed))
        if request.redacts:
            self._cache.pop(request.redacts, None)

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._commit(batch)
        finally:
            self._flushing = False

    async def _commit(self, batch: list[tuple[PersistRequest, Deferred[None]]]) -> None:
        requests = [r for r, _ in batch]
        try:
            await self._db.run("persist_events", lambda conn: _persist_all(conn, requests))
        except Exception:
            if len(batch) == 1:
                batch[0][1].errback()
                return
            # One bad event must not fail the others: commit them one by one.
            for item in batch:
                await self._commit([item])
            return
        for _, done in batch:
            done.callback(None)

    # Reading -----------------------------------------------------------------

    def _remember(self, stored: StoredEvent) -> None:
        self._cache[stored.event.event_id] = stored
        self._cache.move_to_end(stored.event.event_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def get_stored(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
        wanted = list(dict.fromkeys(event_ids))
        found = {eid: self._cache[eid] for eid in wanted if eid in self._cache}
        missing = [eid for eid in wanted if eid not in found]
        if missing:
            loaded = await self._db.run("get_events", lambda conn: _load_events(conn, missing))
            for stored in loaded:
                self._remember(stored)
                found[stored.event.event_id] = stored
        return found

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, Event]:
        return {eid: s.event for eid, s in (await self.get_stored(event_ids)).items()}

    async def get_event(self, event_id: str) -> StoredEvent | None:
        return (await self.get_stored([event_id])).get(event_id)


    async def room_stream(
        self, room_id: str, after: int, upto: int, limit: int, newest_first: bool = True
    ) -> list[StoredEvent]:
        """Events with after < stream_ordering <= upto, the newest `limit` of them."""

        def txn(conn: Connection) -> list[str]:
            order = events.c.stream_ordering.desc() if newest_first else events.c.stream_ordering
            rows = conn.execute(
                sa.select(events.c.event_id).where(
                    events.c.room_id == room_id, events.c.stream_ordering > after,
                    events.c.stream_ordering <= upto, *_SHOWN,
                ).order_by(order).limit(limit)
            )
            return [r.event_id for r in rows]

        ids = await self._db.run("room_stream", txn)
        stored = await self.get_stored(ids)
        return [stored[eid] for eid in ids if eid in stored]

    async def paginate(
        self, room_id: str, from_pos: tuple[int, int], backwards: bool, limit: int,
        to_pos: tuple[int, int] | None = None,
    ) -> list[StoredEvent]:
        """Events in topological order from (depth, stream), exclusive of `from_pos`
        going forwards and inclusive of it going backwards (token semantics)."""
        depth, stream = from_pos

        def txn(conn: Connection) -> list[str]:
            key = sa.tuple_(events.c.depth, events.c.stream_ordering)
            if backwards:
                cond = key <= sa.tuple_(sa.literal(depth), sa.literal(stream))
                order = [events.c.depth.desc(), events.c.stream_ordering.desc()]
            else:
                cond = key > sa.tuple_(sa.literal(depth), sa.literal(stream))
                order = [events.c.depth, events.c.stream_ordering]
            query = sa.select(events.c.event_id).where(
                events.c.room_id == room_id, *_SHOWN, cond)
            if to_pos is not None:
                bound = sa.tuple_(sa.literal(to_pos[0]), sa.literal(to_pos[1]))
                query = query.where(key > bound if backwards else key <= bound)
            rows = conn.execute(query.order_by(*order).limit(limit))
            return [r.event_id for r in rows]

        ids = await self._db.run("paginate_room_events", txn)
        stored = await self.get_stored(ids)
        return [stored[eid] for eid in ids if eid in stored]

    async def topological_position(self, room_id: str, stream: int) -> tuple[int, int]:
        """The (depth, stream) of the newest room event at or before a stream position."""

        def txn(conn: Connection) -> tuple[int, int]:
            row = conn.execute(
                sa.select(events.c.depth, events.c.stream_ordering).where(
                    events.c.room_id == room_id, events.c.stream_ordering <= stream, *_SHOWN,
                ).order_by(events.c.depth.desc(), events.c.stream_ordering.desc()).limit(1)
            ).first()
            return (int(row.depth), int(row.stream_ordering)) if row else (0, 0)

        return await self._db.run("topological_position", txn)

    async def get_txn_response(self, user_id: str, device_id: str, path: str) -> Any:
        """The stored answer to a client transaction, or None (lookups made
        together share one transaction: one per send otherwise)."""
        return await self._txn_responses.get((user_id, device_id, path))

    async def relations_of_many(self, event_ids: list[str]
                                ) -> dict[str, list[tuple[str, str, str | None]]]:
        """For each target: (event_id, rel_type, aggregation_key) relating to it
        (one query for a whole page of events)."""
        if not event_ids:
            return {}

        def txn(conn: Connection) -> dict[str, list[tuple[str, str, str | None]]]:
            found: dict[str, list[tuple[str, str, str | None]]] = {}
            for start in range(0, len(event_ids), 500):
                rows = conn.execute(sa.select(
                    event_relations.c.relates_to_id, event_relations.c.event_id,
                    event_relations.c.rel_type, event_relations.c.aggregation_key,
                ).where(event_relations.c.relates_to_id.in_(event_ids[start:start + 500])))
                for r in rows:
                    found.setdefault(r.relates_to_id, []).append(
                        (r.event_id, r.rel_type, r.aggregation_key))
            return found

        return await self._db.run("get_relations_of_many", txn)

    async def relations(
        self, event_id: str, rel_type: str | None = None
    ) -> list[tuple[str, str, str | None]]:
        """(event_id, rel_type, aggregation_key) of events relating to `event_id`."""

        def txn(conn: Connection) -> list[tuple[str, str, str | None]]:
            query = sa.select(event_relations.c.event_id, event_relations.c.rel_type,
                              event_relations.c.aggregation_key).where(
                event_relations.c.relates_to_id == event_id)
            if rel_type is not None:
                query = query.where(event_relations.c.rel_type == rel_type)
            return [(r.event_id, r.rel_type, r.aggregation_key) for r in conn.execute(query)]

        return await self._db.run("get_relations", txn)

    # State -------------------------------------------------------------------

    async def state_group_for_event(self, event_id: str) -> tuple[int | None, int] | None:
        def txn(conn: Connection) -> tuple[int | None, int] | None:
            row = conn.execute(sa.select(event_state_groups).where(
                event_state_groups.c.event_id == event_id)).first()
            return (row.state_group_before, row.state_group_after) if row else None

        return await self._db.run("state_group_for_event", txn)

    async def state_group_entries(self, group: int) -> tuple[dict[StateKey, str], int]:
        """The full state of a group, and its chain length."""
        return await self._db.run("state_group_entries", lambda conn: _load_group(conn, group))

    async def current_state_ids(self, room_id: str) -> dict[StateKey, str]:
        def txn(conn: Connection) -> dict[StateKey, str]:
            rows = conn.execute(sa.select(current_state).where(current_state.c.room_id == room_id))
            return {(r.type, r.state_key): r.event_id for r in rows}

        return await self._db.run("current_state_ids", txn)

    async def earliest_events(self, room_id: str, limit: int = 5) -> list[StoredEvent]:
        """The room's oldest events clients see (where backfilling continues)."""

        def txn(conn: Connection) -> list[str]:
            rows = conn.execute(sa.select(events.c.event_id).where(
                events.c.room_id == room_id, *_SHOWN,
            ).order_by(events.c.depth, events.c.stream_ordering).limit(limit))
            return [r.event_id for r in rows]

        ids = await self._db.run("earliest_events", txn)
        stored = await self.get_stored(ids)
        return [stored[eid] for eid in ids if eid in stored]

    async def forward_extremities(self, room_id: str) -> list[str]:
        def txn(conn: Connection) -> list[str]:
            rows = conn.execute(sa.select(forward_extremities.c.event_id).where(
                forward_extremities.c.room_id == room_id))
            return [r.event_id for r in rows]

        return await self._db.run("forward_extremities", txn)


def _load_events(conn: Connection, event_ids: list[str]) -> list[StoredEvent]:
    result = []
    for chunk_start in range(0, len(event_ids), 500):
        chunk = event_ids[chunk_start:chunk_start + 500]
        rows = conn.execute(sa.select(
            events.c.event_id, events.c.json, events.c.room_version, events.c.rejected_reason,
            events.c.stream_ordering, events.c.redacted_by, events.c.outlier,
            events.c.txn_device, events.c.txn_id, events.c.soft_failed,
        ).where(events.c.event_id.in_(chunk)))
        for row in rows:
            version = KNOWN_ROOM_VERSIONS[row.room_version]
            event = Event(json.loads(row.json), version, event_id=row.event_id,
                          rejected_reason=row.rejected_reason)
            result.append(StoredEvent(event, int(row.stream_ordering), row.redacted_by,
                                      bool(row.outlier), row.txn_device, row.txn_id,
                                      bool(row.soft_failed)))
    return result


def _load_txn_responses(conn: Connection, keys: list[tuple[str, str, str]]
                        ) -> dict[tuple[str, str, str], Any]:
    rows = conn.execute(_SELECT_TXN_RESPONSES, {"b_keys": keys})
    return {(r.user_id, r.device_id, r.path): json.loads(r.response_json) for r in rows}


def _load_group(conn: Connection, group: int) -> tuple[dict[StateKey, str], int]:
    """Walk the delta chain with one recursive query; newer entries win."""
    chain = sa.select(state_groups.c.id, state_groups.c.prev_group, sa.literal(0).label("n")) \
        .where(state_groups.c.id == group).cte("chain", recursive=True)
    chain = chain.union_all(
        sa.select(state_groups.c.id, state_groups.c.prev_group, (chain.c.n + 1).label("n"))
        .where(state_groups.c.id == chain.c.prev_group)
    )
    rows = conn.execute(
        sa.select(state_groups_state.c.type, state_groups_state.c.state_key,
                  state_groups_state.c.event_id, chain.c.n)
        .join(chain, chain.c.id == state_groups_state.c.state_group)
        .order_by(chain.c.n.desc())
    )
    state: dict[StateKey, str] = {}
    for row in rows:
        state[(row.type, row.state_key)] = row.event_id
    length = conn.execute(sa.select(state_groups.c.chain_length).where(
        state_groups.c.id == group)).scalar()
    return state, int(length or 0)


# Statements built once (see event_rows.py for why).
_INSERT_MEMBERSHIP = sa.insert(room_memberships)
_SELECT_TXN_RESPONSES = sa.select(
    client_txns.c.user_id, client_txns.c.device_id, client_txns.c.path,
    client_txns.c.response_json,
).where(sa.tuple_(client_txns.c.user_id, client_txns.c.device_id, client_txns.c.path)
        .in_(sa.bindparam("b_keys", expanding=True)))
_INSERT_STATE_GROUP = sa.insert(state_groups)
_INSERT_CURRENT_STATE = sa.insert(current_state)
_DELETE_CURRENT_STATE = sa.delete(current_state).where(
    current_state.c.room_id == sa.bindparam("b_room"),
    current_state.c.type == sa.bindparam("b_type"),
    current_state.c.state_key == sa.bindparam("b_key"))


def _persist_all(conn: Connection, requests: list[PersistRequest]) -> None:
    plain = PlainEventRows()
    for request in requests:
        if is_plain(request):
            plain.add(request)
        else:
            plain.write(conn)  # in commit order: what came before is written first
            _persist_txn(conn, request)
    plain.write(conn)


def _persist_txn(conn: Connection, req: PersistRequest) -> None:
    event = req.event
    if req.replaces_outlier:
        # We held it without its state; now it takes its place in the DAG.
        conn.execute(sa.delete(events).where(events.c.event_id == event.event_id,
                                             events.c.outlier.is_(True)))
    conn.execute(INSERT_EVENT, event_row(req))
    for group in ([req.new_state_group] if req.new_state_group else []) + req.more_state_groups:
        _insert_state_group(conn, event.room_id, group)
    if not req.outlier:
        conn.execute(INSERT_EVENT_STATE_GROUPS, event_state_groups_row(req))
    if req.extremities is not None:
        _replace_extremities(conn, event.room_id, req.extremities)
    elif (not req.outlier and event.rejected_reason is None and not req.soft_failed
          and not req.backfilled):
        _update_extremities(conn, event)
    if req.current_state_delta is not None:
        _apply_state_delta(conn, event.room_id, req.current_state_delta)
    elif req.updates_current_state and event.is_state():
        _update_current_state(conn, event)
    if (event.type == MEMBER and event.is_state() and event.rejected_reason is None
            and (not req.outlier or req.record_membership) and not req.soft_failed
            and not req.backfilled):
        conn.execute(_INSERT_MEMBERSHIP, {
            "event_id": event.event_id, "room_id": event.room_id, "user_id": event.state_key,
            "sender": event.sender, "membership": event.membership or "leave",
            "stream_ordering": req.stream_ordering, "forgotten": False,
        })
    relation = relation_row(event)
    if relation is not None:
        conn.execute(INSERT_RELATION, relation)
    if req.redacts:
        conn.execute(sa.update(events).where(events.c.event_id == req.redacts)
                     .values(redacted_by=event.event_id))
    txn = client_txn_row(req)
    if txn is not None:
        conn.execute(INSERT_CLIENT_TXN, txn)
    if req.push_actions:
        conn.execute(INSERT_PUSH_ACTIONS, push_action_rows(req))


def _insert_state_group(conn: Connection, room_id: str, group: NewStateGroup) -> None:
    conn.execute(_INSERT_STATE_GROUP, {
        "id": group.group_id, "room_id": room_id, "prev_group": group.prev_group,
        "chain_length": group.chain_length,
    })
    if group.entries:
        conn.execute(sa.insert(state_groups_state), [
            {"state_group": group.group_id, "type": t, "state_key": k, "event_id": eid}
            for (t, k), eid in group.entries.items()
        ])


def _update_extremities(conn: Connection, event: Event) -> None:
    prev = event.prev_event_ids
    if prev:
        conn.execute(DELETE_EXTREMITIES, {"b_room": event.room_id, "b_events": list(prev)})
    conn.execute(INSERT_EXTREMITY, {"room_id": event.room_id, "event_id": event.event_id})


def _replace_extremities(conn: Connection, room_id: str, event_ids: list[str]) -> None:
    conn.execute(sa.delete(forward_extremities).where(forward_extremities.c.room_id == room_id))
    if event_ids:
        conn.execute(sa.insert(forward_extremities),
                     [{"room_id": room_id, "event_id": eid} for eid in event_ids])


def _apply_state_delta(conn: Connection, room_id: str,
                       delta: dict[StateKey, tuple[str, str | None] | None]) -> None:
    for (event_type, state_key), entry in delta.items():
        conn.execute(_DELETE_CURRENT_STATE,
                     {"b_room": room_id, "b_type": event_type, "b_key": state_key})
        if entry is not None:
            conn.execute(_INSERT_CURRENT_STATE, {
                "room_id": room_id, "type": event_type, "state_key": state_key,
                "event_id": entry[0], "membership": entry[1]})


def _update_current_state(conn: Connection, event: Event) -> None:
    conn.execute(_DELETE_CURRENT_STATE,
                 {"b_room": event.room_id, "b_type": event.type, "b_key": event.state_key})
    conn.execute(_INSERT_CURRENT_STATE, {
        "room_id": event.room_id, "type": event.type, "state_key": event.state_key,
        "event_id": event.event_id,
        "membership": event.membership if event.type == MEMBER else None,
    })
