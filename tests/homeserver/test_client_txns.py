"""Retried client transactions (txnIds) answer their first event: remembered
lately committed ones, stored ones, and lookups that share a transaction (and
writes that do: storage/batched.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from twisted.internet.defer import Deferred, ensureDeferred

from homeserver.rooms.txns import RecentTxns
from homeserver.rooms.writer import NewEvent, RoomWriter
from homeserver.storage import schema
from homeserver.storage.batched import BatchedLookup, BatchedWrite
from tests.homeserver.inprocess import ALICE, Env, build_env
from tests.synchronous import done


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from build_env(tmp_path)


def _send(writer: RoomWriter, room_id: str, txn_id: str, body: str) -> str:
    persisted = done(writer.send(room_id, NewEvent(
        "m.room.message", ALICE, {"msgtype": "m.text", "body": body},
        txn=(ALICE, "DEV", f"send/{room_id}/m.room.message/{txn_id}"), txn_id=txn_id)))
    return str(persisted.event.event_id)


def _stored_messages(env: Env, room_id: str) -> int:
    return int(env.db.run_sync("count", lambda conn: conn.execute(
        sa.select(sa.func.count()).select_from(schema.events).where(
            schema.events.c.room_id == room_id,
            schema.events.c.type == "m.room.message")).scalar()))


def test_recent_txns_know_when_one_committed_since_a_mark_may_be_forgotten() -> None:
    recent = RecentTxns(size=2)
    mark = recent.mark()
    recent.add(("u", "d", "a"), "$a")
    recent.add(("u", "d", "b"), "$b")
    assert recent.remembers_since(mark)
    recent.add(("u", "d", "c"), "$c")
    assert not recent.remembers_since(mark)  # "a" is forgotten
    assert recent.get(("u", "d", "a")) is None
    assert recent.get(("u", "d", "c")) == "$c"
    assert recent.remembers_since(recent.mark())


def test_a_retried_txn_answers_its_first_event_whether_remembered_or_stored(env: Env) -> None:
    room_id = env.room()
    first = _send(env.writer, room_id, "t1", "one")
    assert _send(env.writer, room_id, "t1", "one again") == first  # remembered
    # A writer that remembers nothing recent (as after a restart) finds it stored.
    forgetful = RoomWriter(env.events, env.rooms, env.writer._stream,
                           env.writer._state_group_ids, env.writer._clock, env.writer._key,
                           recent_txns_size=0)
    assert _send(forgetful, room_id, "t1", "one more time") == first
    assert _send(forgetful, room_id, "t2", "two") != first
    assert _stored_messages(env, room_id) == 2


def test_lookups_asked_for_while_one_runs_share_the_next_transaction(env: Env) -> None:
    calls: list[list[str]] = []
    later: list[Deferred[str | None]] = []

    def load(conn: sa.Connection, keys: list[str]) -> dict[str, str]:
        calls.append(keys)
        if len(calls) == 1:  # two more callers arrive while the first lookup runs
            later.extend(ensureDeferred(lookup.get(key)) for key in ("b", "c", "b"))
        return {key: key.upper() for key in keys if key != "c"}

    lookup: BatchedLookup[str, str] = BatchedLookup(env.db, "test_lookup", load)
    assert done(lookup.get("a")) == "A"
    assert [done(d) for d in later] == ["B", None, "B"]
    assert calls == [["a"], ["b", "c"]]


def test_a_failed_lookup_fails_each_caller_and_the_next_one_runs(env: Env) -> None:
    def load(conn: sa.Connection, keys: list[str]) -> dict[str, str]:
        if keys == ["bad"]:
            raise sa.exc.OperationalError("SELECT", {}, Exception("disk gone"))
        return {key: key for key in keys}

    lookup: BatchedLookup[str, str] = BatchedLookup(env.db, "test_lookup", load)
    with pytest.raises(sa.exc.OperationalError):
        done(lookup.get("bad"))
    assert done(lookup.get("good")) == "good"



def test_writes_arriving_during_a_commit_share_the_next_one_in_order(env: Env) -> None:
    batches: list[list[str]] = []
    later: list[Deferred[None]] = []

    def write(conn: sa.Connection, items: list[str]) -> None:
        batches.append(items)
        if len(batches) == 1:  # three more writers arrive while the first commits
            later.extend(ensureDeferred(writes.put(item)) for item in ("b", "c", "b2"))

    writes: BatchedWrite[str] = BatchedWrite(env.db, "test_write", write)
    assert done(writes.put("a")) is None
    assert [done(d) for d in later] == [None, None, None]
    assert batches == [["a"], ["b", "c", "b2"]]


def test_a_failed_write_fails_each_of_its_callers_and_the_next_one_runs(env: Env) -> None:
    def write(conn: sa.Connection, items: list[str]) -> None:
        if "bad" in items:
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk full"))

    writes: BatchedWrite[str] = BatchedWrite(env.db, "test_write", write)
    with pytest.raises(sa.exc.OperationalError):
        done(writes.put("bad"))
    assert done(writes.put("good")) is None
