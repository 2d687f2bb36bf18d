"""The rows an event's transaction writes, and plain events' rows batched
across a group commit (one statement per table instead of six per event)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from federation.protocol.events import Event

from .. import wire_json
from .schema import (
    client_txns, event_push_actions, event_relations, event_state_groups, events,
    forward_extremities,
)

if TYPE_CHECKING:
    from .events import PersistRequest

Row = dict[str, Any]

# Statements built once: `sa.insert(t).values(...)` per row made SQLAlchemy
# build and compile a new statement each time (ten times the cost of executing
# a prepared one with parameters), on the thread every commit waits for.
INSERT_EVENT = sa.insert(events)
INSERT_EVENT_STATE_GROUPS = sa.insert(event_state_groups)
INSERT_RELATION = sa.insert(event_relations)
INSERT_CLIENT_TXN = sa.insert(client_txns)
INSERT_PUSH_ACTIONS = sa.insert(event_push_actions)
INSERT_EXTREMITY = sa.insert(forward_extremities)
DELETE_EXTREMITIES = sa.delete(forward_extremities).where(
    forward_extremities.c.room_id == sa.bindparam("b_room"),
    forward_extremities.c.event_id.in_(sa.bindparam("b_events", expanding=True)))


def event_row(req: PersistRequest) -> Row:
    event = req.event
    return {
        "event_id": event.event_id, "room_id": event.room_id,
        "room_version": event.room_version.identifier, "stream_ordering": req.stream_ordering,
        "depth": event.depth, "type": event.type, "state_key": event.state_key,
        "sender": event.sender, "origin_server_ts": event.origin_server_ts,
        "json": pdu_json(event.pdu),
        "rejected_reason": event.rejected_reason, "outlier": req.outlier,
        "soft_failed": req.soft_failed, "txn_device": req.txn[1] if req.txn else None,
        "txn_id": req.txn_id if req.txn else None,
    }


def pdu_json(pdu: dict[str, Any]) -> str:
    """The stored text of a PDU (reads back as the json module's did, at a
    quarter of the cost of writing it)."""
    return wire_json.encode(pdu).decode("utf-8")


def event_state_groups_row(req: PersistRequest) -> Row:
    return {"event_id": req.event.event_id, "state_group_before": req.state_group_before,
            "state_group_after": req.state_group_after}


def relation(event: Event) -> tuple[str, str, str | None] | None:
    relates = event.content.get("m.relates_to")
    if not isinstance(relates, dict):
        return None
    rel_type, target = relates.get("rel_type"), relates.get("event_id")
    if not isinstance(rel_type, str) or not isinstance(target, str):
        return None
    key = relates.get("key") if rel_type == "m.annotation" else None
    return rel_type, target, key if isinstance(key, str) else None


def relation_row(event: Event) -> Row | None:
    """The event's relation (an accepted event's only)."""
    found = relation(event)
    if found is None or event.rejected_reason is not None:
        return None
    return {"event_id": event.event_id, "relates_to_id": found[1], "rel_type": found[0],
            "aggregation_key": found[2], "room_id": event.room_id}


def client_txn_row(req: PersistRequest) -> Row | None:
    if req.txn is None:
        return None
    user_id, device_id, path = req.txn
    return {"user_id": user_id, "device_id": device_id, "path": path,
            "response_json": json.dumps({"event_id": req.event.event_id}),
            "created_ts": req.event.origin_server_ts}


def push_action_rows(req: PersistRequest) -> list[Row]:
    event = req.event
    return [{"room_id": event.room_id, "user_id": row.user_id, "event_id": event.event_id,
             "stream_ordering": req.stream_ordering, "highlight": row.highlight,
             "thread_id": row.thread_id} for row in req.push_actions]


def is_plain(req: PersistRequest) -> bool:
    """An accepted local non-state event (a message): it writes only its own
    rows and moves its room's forward extremities, nothing another row reads."""
    return (req.event.rejected_reason is None and not req.event.is_state()
            and not req.outlier and not req.replaces_outlier and not req.soft_failed
            and not req.backfilled and req.new_state_group is None
            and not req.more_state_groups and req.extremities is None
            and req.current_state_delta is None and not req.updates_current_state
            and not req.redacts)


class PlainEventRows:
    """Rows of plain events gathered in commit order, written with one statement
    per table; each room's forward extremities change by the net effect (an
    event that a later one of the batch follows is never inserted)."""

    def __init__(self) -> None:
        self._rows: dict[Any, list[Row]] = {}
        # room -> (extremities removed, extremities added in order)
        self._extremities: dict[str, tuple[set[str], dict[str, None]]] = {}

    def add(self, req: PersistRequest) -> None:
        self._append(INSERT_EVENT, event_row(req))
        self._append(INSERT_EVENT_STATE_GROUPS, event_state_groups_row(req))
        self._append(INSERT_RELATION, relation_row(req.event))
        self._append(INSERT_CLIENT_TXN, client_txn_row(req))
        for row in push_action_rows(req):
            self._append(INSERT_PUSH_ACTIONS, row)
        removed, added = self._extremities.setdefault(req.event.room_id, (set(), {}))
        for prev in req.event.prev_event_ids:
            if prev in added:
                del added[prev]  # added earlier in this batch: never written at all
            else:
                removed.add(prev)
        added[req.event.event_id] = None

    def _append(self, statement: Any, row: Row | None) -> None:
        if row is not None:
            self._rows.setdefault(statement, []).append(row)

    def write(self, conn: Connection) -> None:
        """Write what was gathered (before any other statement of the commit)."""
        rows, self._rows = self._rows, {}
        for statement, batch in rows.items():
            conn.execute(statement, batch)
        extremities, self._extremities = self._extremities, {}
        for room_id, (removed, added) in extremities.items():
            if removed:
                conn.execute(DELETE_EXTREMITIES, {"b_room": room_id, "b_events": list(removed)})
            if added:
                conn.execute(INSERT_EXTREMITY,
                             [{"room_id": room_id, "event_id": eid} for eid in added])
