"""A group commit writes plain events' rows with one statement per table: the
tables end up exactly as when each event commits alone (real SQLite and
PostgreSQL); stored txnIds are found by a batched lookup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from federation.protocol.pdu_format import build_event
from federation.protocol.room_versions import get_room_version
from federation.protocol.signing import generate_server_key
from homeserver.storage import schema
from homeserver.storage.database import Database
from homeserver.storage.events import (
    EventStore, NewStateGroup, PersistRequest, PushActionRow, _persist_all,
)
from tests.homeserver.databases import open_database, pg_cluster  # noqa: F401 (fixture)
from tests.synchronous import done

ROOM = "!room:hs"
ROOT = "$" + "A" * 43  # an event ID of the v4+ shape
ALICE = "@alice:hs"
BOB = "@bob:hs"
KEY = generate_server_key("hs", "a")
VERSION = get_room_version("11")


@pytest.fixture(params=["sqlite", "postgresql"])
def two_dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    first = open_database(request.param, tmp_path, request, "batched")
    second = open_database(request.param, tmp_path, request, "alone")
    yield first, second
    first.stop()
    second.stop()


def _requests() -> list[PersistRequest]:
    """Messages (one a reaction, with txnIds and push actions) chained on a
    root, with a state event in the middle of the batch."""
    prev, requests = [ROOT], []
    for i, kind in enumerate(["message", "message", "state", "reaction", "message"]):
        content: dict[str, Any] = {"msgtype": "m.text", "body": f"m{i}"}
        state_key = None
        if kind == "reaction":
            content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": prev[0],
                                        "key": "+1"}}
        if kind == "state":
            content, state_key = {"name": "a room"}, ""
        event = build_event(VERSION, KEY, event_type="m.room.name" if state_key is not None
                            else "m.reaction" if kind == "reaction" else "m.room.message",
                            sender=ALICE, content=content, room_id=ROOM, prev_events=prev,
                            auth_events=[], depth=i + 2, origin_server_ts=1000 + i,
                            state_key=state_key)
        group = NewStateGroup(10 + i, 1, 1, {("m.room.name", ""): event.event_id}) \
            if state_key is not None else None
        requests.append(PersistRequest(
            event=event, stream_ordering=i + 2, state_group_before=1,
            state_group_after=group.group_id if group else 1, new_state_group=group,
            updates_current_state=group is not None, txn=(ALICE, "DEV", f"send/t{i}"),
            txn_id=f"t{i}", push_actions=[PushActionRow(BOB, highlight=i == 1)]))
        prev = [event.event_id]
    return requests


def _root(conn: sa.Connection) -> None:
    conn.execute(sa.insert(schema.forward_extremities).values(room_id=ROOM, event_id=ROOT))


def _tables(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    names = ["events", "forward_extremities", "event_state_groups", "event_relations",
             "client_txns", "event_push_actions", "current_state", "state_groups_state"]

    def read(conn: sa.Connection) -> dict[str, list[tuple[Any, ...]]]:
        return {name: sorted(tuple(row) for row in conn.execute(
            sa.select(schema.metadata.tables[name]))) for name in names}

    return db.run_sync("read", read)


def test_a_batch_writes_what_its_events_write_one_by_one(two_dbs: tuple[Database, Database]
                                                         ) -> None:
    batched, alone = two_dbs
    requests = _requests()
    for db in two_dbs:
        db.run_sync("root", _root)
    batched.run_sync("batch", lambda conn: _persist_all(conn, requests))
    for request in requests:
        alone.run_sync("one", lambda conn, r=request: _persist_all(conn, [r]))
    tables = _tables(batched)
    assert tables == _tables(alone)
    assert tables["forward_extremities"] == [(ROOM, requests[-1].event.event_id)]
    assert len(tables["events"]) == 5 and len(tables["event_push_actions"]) == 5
    assert len(tables["event_relations"]) == 1


def test_stored_txn_answers_are_found_and_missing_ones_are_none(
        two_dbs: tuple[Database, Database]) -> None:
    db, _ = two_dbs
    requests = _requests()
    db.run_sync("batch", lambda conn: _persist_all(conn, requests))
    store = EventStore(db)
    found = done(store.get_txn_response(ALICE, "DEV", "send/t3"))
    assert found == {"event_id": requests[3].event.event_id}
    assert done(store.get_txn_response(ALICE, "OTHER", "send/t3")) is None
