"""EventGraphStore walks (auth chains, backfill, missing events) on real SQLite
and PostgreSQL, over hand-built DAGs (transactions run inline)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from homeserver.storage import schema
from homeserver.storage.database import Database
from homeserver.storage.event_graph import EventGraphStore
from tests.synchronous import done
from tests.homeserver.databases import open_database, pg_cluster  # noqa: F401 (fixture)

ROOM = "!r:hs"
OTHER_ROOM = "!other:hs"
_positions = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = open_database(request.param, tmp_path, request, "graph")
    yield database
    database.stop()


@pytest.fixture
def graph(db: Database) -> EventGraphStore:
    return EventGraphStore(db)


def add(db: Database, event_id: str, depth: int, prev: list[str] = (),  # type: ignore[assignment]
        auth: list[str] = (), room_id: str = ROOM, version: str = "10",  # type: ignore[assignment]
        outlier: bool = False, rejected: bool = False, pdu: dict[str, Any] | None = None) -> None:
    body = pdu if pdu is not None else {
        "type": "m.room.message", "room_id": room_id, "sender": "@a:hs", "content": {},
        "depth": depth, "prev_events": list(prev), "auth_events": list(auth),
        "origin_server_ts": 0, "hashes": {}, "signatures": {}}

    def txn(conn: sa.Connection) -> None:
        conn.execute(sa.insert(schema.events).values(
            event_id=event_id, room_id=room_id, room_version=version,
            stream_ordering=next(_positions), depth=depth, type=str(body.get("type")),
            sender="@a:hs", origin_server_ts=0, json=json.dumps(body), outlier=outlier,
            rejected_reason="auth" if rejected else None))

    db.run_sync("add_event", txn)


def chain(db: Database, ids: list[str], room_id: str = ROOM) -> None:
    """A linear DAG: each event's prev event is the one before it."""
    for depth, event_id in enumerate(ids, start=1):
        add(db, event_id, depth, prev=[ids[depth - 2]] if depth > 1 else [], room_id=room_id)


# Auth chains ------------------------------------------------------------------


def test_auth_chain_is_transitive_and_excludes_the_given_events(db: Database,
                                                                graph: EventGraphStore) -> None:
    add(db, "$create", 1)
    add(db, "$member", 2, auth=["$create"])
    add(db, "$power", 3, auth=["$create", "$member"])
    add(db, "$msg", 4, auth=["$create", "$member", "$power"])
    add(db, "$msg2", 5, auth=["$power", "$member"])
    assert done(graph.auth_chain_ids(["$msg2"])) == {"$create", "$member", "$power"}
    assert done(graph.auth_chain_ids(["$power"])) == {"$create", "$member"}
    assert done(graph.auth_chain_ids(["$create"])) == set()
    # Of several events: the union, with a given event kept when another reaches it.
    assert done(graph.auth_chain_ids(["$msg", "$power"])) == {"$create", "$member", "$power"}


def test_auth_chain_skips_unknown_events_and_survives_garbage(db: Database,
                                                              graph: EventGraphStore) -> None:
    add(db, "$a", 1)
    add(db, "$b", 2, auth=["$a", "$unknown", 5, None])  # type: ignore[list-item]
    assert done(graph.auth_chain_ids(["$b", "$nope"])) == {"$a"}
    assert done(graph.auth_chain_ids([])) == set()


def test_auth_chain_in_a_v12_room_includes_the_implied_create_event(
        db: Database, graph: EventGraphStore) -> None:
    room_id = "!" + "c" * 43
    create_id = "$" + "c" * 43
    create = {"type": "m.room.create", "state_key": "", "sender": "@a:hs",
              "content": {"room_version": "12"}, "depth": 1, "prev_events": [],
              "auth_events": [], "origin_server_ts": 0}
    add(db, create_id, 1, room_id=room_id, version="12", pdu=create)
    member = {"type": "m.room.member", "state_key": "@a:hs", "room_id": room_id,
              "sender": "@a:hs", "content": {"membership": "join"}, "depth": 2,
              "prev_events": [create_id], "auth_events": [], "origin_server_ts": 0}
    add(db, "$join", 2, room_id=room_id, version="12", pdu=member)
    assert done(graph.auth_chain_ids(["$join"])) == {create_id}


# Backfill ---------------------------------------------------------------------


def test_backfill_includes_the_given_events_and_walks_back_to_the_limit(
        db: Database, graph: EventGraphStore) -> None:
    ids = [f"$e{i}" for i in range(10)]
    chain(db, ids)
    assert done(graph.backfill_ids(ROOM, ["$e9"], 3)) == ["$e9", "$e8", "$e7"]
    assert done(graph.backfill_ids(ROOM, ["$e2"], 100)) == ["$e2", "$e1", "$e0"]
    assert done(graph.backfill_ids(ROOM, ["$e9"], 0)) == []


def test_backfill_is_breadth_first_over_branches(db: Database, graph: EventGraphStore) -> None:
    add(db, "$root", 1)
    add(db, "$a1", 2, prev=["$root"])
    add(db, "$b1", 2, prev=["$root"])
    add(db, "$a2", 3, prev=["$a1"])
    add(db, "$merge", 4, prev=["$a2", "$b1"])
    got = done(graph.backfill_ids(ROOM, ["$merge"], 10))
    assert got == ["$merge", "$a2", "$b1", "$a1", "$root"]
    # Every event once, even where branches meet.
    assert len(set(got)) == len(got)


def test_backfill_never_serves_other_rooms_outliers_or_rejected_events(
        db: Database, graph: EventGraphStore) -> None:
    chain(db, ["$x1", "$x2"], room_id=OTHER_ROOM)
    add(db, "$r1", 1)
    add(db, "$bad", 2, prev=["$r1"], rejected=True)
    add(db, "$r3", 3, prev=["$bad", "$x2"])
    add(db, "$out", 4, prev=["$r3"], outlier=True)
    # Another room's event as a starting point is ignored; a rejected one is walked through.
    assert done(graph.backfill_ids(ROOM, ["$r3", "$x2", "$out"], 10)) == ["$r3", "$r1"]


# Missing events ---------------------------------------------------------------


def test_missing_events_between_earliest_and_latest_oldest_first(
        db: Database, graph: EventGraphStore) -> None:
    ids = [f"$m{i}" for i in range(8)]
    chain(db, ids)
    got = done(graph.missing_event_ids(ROOM, ["$m2"], ["$m7"], 10, 0))
    assert got == ["$m3", "$m4", "$m5", "$m6"]
    # The limit keeps the newest ones (nearest to latest), still oldest first.
    assert done(graph.missing_event_ids(ROOM, ["$m2"], ["$m7"], 2, 0)) == ["$m5", "$m6"]


def test_missing_events_honour_min_depth_and_unknown_ids(db: Database,
                                                        graph: EventGraphStore) -> None:
    ids = [f"$n{i}" for i in range(6)]  # depths 1..6
    chain(db, ids)
    assert done(graph.missing_event_ids(ROOM, [], ["$n5"], 10, 3)) == ["$n2", "$n3", "$n4"]
    assert done(graph.missing_event_ids(ROOM, [], ["$unknown"], 10, 0)) == []
    assert done(graph.missing_event_ids(OTHER_ROOM, [], ["$n5"], 10, 0)) == []


def test_missing_events_of_several_latest_events_meet_once(db: Database,
                                                          graph: EventGraphStore) -> None:
    add(db, "$base", 1)
    add(db, "$left", 2, prev=["$base"])
    add(db, "$right", 2, prev=["$base"])
    add(db, "$l2", 3, prev=["$left"])
    got = done(graph.missing_event_ids(ROOM, ["$base"], ["$l2", "$right"], 10, 0))
    assert got == ["$left"]  # $right is one of the latest: not missing


def test_node_cache_is_bounded(db: Database) -> None:
    small = EventGraphStore(db, cache_size=3)
    chain(db, [f"$c{i}" for i in range(10)])
    assert len(done(small.backfill_ids(ROOM, ["$c9"], 10))) == 10
    assert len(small._cache) == 3


def test_an_outlier_that_joins_the_dag_is_walked_once_it_has(db: Database,
                                                            graph: EventGraphStore) -> None:
    add(db, "$o1", 1, outlier=True)
    add(db, "$o2", 2, prev=["$o1"])
    assert done(graph.backfill_ids(ROOM, ["$o2"], 10)) == ["$o2"]
    # The room writer persists the outlier again, now with its place in the DAG.
    db.run_sync("de-outlier", lambda c: c.execute(sa.update(schema.events).where(
        schema.events.c.event_id == "$o1").values(outlier=False)))
    assert done(graph.backfill_ids(ROOM, ["$o2"], 10)) == ["$o2", "$o1"]
    assert done(graph.auth_chain_ids(["$o2"])) == set()
