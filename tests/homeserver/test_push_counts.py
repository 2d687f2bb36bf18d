"""Unread counts from event_push_actions and read receipts, on real SQLite, and
the in-memory counts kept from them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from homeserver.handlers.push import UnreadNotifications
from homeserver.storage import schema
from homeserver.storage.database import Database
from homeserver.storage.events import PushActionRow
from homeserver.storage.migrations import migrate
from homeserver.storage.push_actions import PushActionStore, UnreadCounts, unread_counts_txn
from tests.synchronous import done

ROOM = "!r:hs"
ALICE = "@alice:hs"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'hs.db'}")
    migrate(database)
    yield database
    database.stop()


def add_event(db: Database, position: int, highlight: bool | None = None,
              thread: str = "main", membership: str | None = None) -> str:
    """An event at `position`; notifying Alice when `highlight` is not None."""
    event_id = f"$e{position}"

    def txn(conn: sa.Connection) -> None:
        conn.execute(sa.insert(schema.events).values(
            event_id=event_id, room_id=ROOM, room_version="10", stream_ordering=position,
            depth=position, type="m.room.message", sender="@bob:hs", origin_server_ts=0,
            json="{}", outlier=False))
        if highlight is not None:
            conn.execute(sa.insert(schema.event_push_actions).values(
                room_id=ROOM, user_id=ALICE, event_id=event_id, stream_ordering=position,
                highlight=highlight, thread_id=thread))
        if membership is not None:
            conn.execute(sa.insert(schema.room_memberships).values(
                event_id=event_id, room_id=ROOM, user_id=ALICE, sender=ALICE,
                membership=membership, stream_ordering=position, forgotten=False))

    db.run_sync("add_event", txn)
    return event_id


def receipt(db: Database, event_id: str, receipt_type: str = "m.read", thread: str = "") -> None:
    def txn(conn: sa.Connection) -> None:
        conn.execute(sa.delete(schema.receipts).where(
            schema.receipts.c.user_id == ALICE, schema.receipts.c.receipt_type == receipt_type,
            schema.receipts.c.thread_id == thread))
        conn.execute(sa.insert(schema.receipts).values(
            room_id=ROOM, receipt_type=receipt_type, user_id=ALICE, thread_id=thread,
            event_id=event_id, ts=0, stream_id=1000))

    db.run_sync("receipt", txn)


def counts(db: Database) -> tuple[int, int]:
    result: UnreadCounts = db.run_sync("counts", lambda c: unread_counts_txn(c, ALICE, ROOM))
    return result.notifications, result.highlights


def test_counts_after_the_latest_read_receipt(db: Database) -> None:
    add_event(db, 1, membership="join")
    first = add_event(db, 2, highlight=False)
    add_event(db, 3, highlight=True)
    add_event(db, 4)  # not notifying
    assert counts(db) == (2, 1)
    receipt(db, first)
    assert counts(db) == (1, 1)
    receipt(db, "$e4")
    assert counts(db) == (0, 0)


def test_the_further_of_public_and_private_receipts_counts(db: Database) -> None:
    for position in range(1, 5):
        add_event(db, position, highlight=False)
    receipt(db, "$e3", "m.read")
    receipt(db, "$e1", "m.read.private")
    assert counts(db) == (1, 0)  # read up to $e3 (spec example: C ahead of A)
    receipt(db, "$e4", "m.read.private")
    assert counts(db) == (0, 0)


def test_fully_read_marker_and_unknown_events_do_not_count_as_read(db: Database) -> None:
    add_event(db, 1, highlight=False)
    receipt(db, "$e1", "m.fully_read")
    receipt(db, "$unknown", "m.read")
    assert counts(db) == (1, 0)


def test_threaded_receipts_read_only_their_thread(db: Database) -> None:
    add_event(db, 1, highlight=False)
    add_event(db, 2, highlight=False, thread="$e1")
    add_event(db, 3, highlight=True, thread="$e1")
    add_event(db, 4, highlight=False)
    assert counts(db) == (4, 1)
    receipt(db, "$e3", thread="$e1")
    assert counts(db) == (2, 0)
    receipt(db, "$e4", thread="main")
    assert counts(db) == (0, 0)
    add_event(db, 5, highlight=True, thread="$e1")
    assert counts(db) == (1, 1)
    receipt(db, "$e2")  # an unthreaded receipt behind the threaded ones changes nothing
    assert counts(db) == (1, 1)
    receipt(db, "$e5")  # an unthreaded receipt reads every thread
    assert counts(db) == (0, 0)


def test_notifications_before_the_current_join_are_not_unread(db: Database) -> None:
    add_event(db, 1, highlight=False, membership="invite")  # the invite notified Alice
    assert counts(db) == (0, 0)
    add_event(db, 2, membership="join")
    add_event(db, 3, highlight=False)
    add_event(db, 4, membership="join")  # a display-name change is no new join
    assert counts(db) == (1, 0)
    add_event(db, 5, membership="leave")
    add_event(db, 6, membership="join")
    assert counts(db) == (0, 0)


# The in-memory counts (handlers/push.py UnreadNotifications) against the database -----


@example(steps=[("notify", 0), ("notify", 0), ("read", 1), ("read_private", 0),
                ("read", 0)])  # a receipt moved back: once found, and wrong
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(
    st.sampled_from(["notify", "highlight", "quiet", "read", "read_private", "read_thread"]),
    st.integers(min_value=0, max_value=30)), min_size=1, max_size=25))
def test_cached_counts_follow_receipts_exactly(db: Database, steps: list[tuple[str, int]]
                                               ) -> None:
    """Whatever the mix of notifications and receipts (old or new, public or
    private, threaded or not), the cached count equals a recount."""
    db.run_sync("reset", lambda c: [c.execute(sa.delete(t)) for t in (
        schema.events, schema.event_push_actions, schema.receipts, schema.room_memberships)])
    db.start(None, inline=True)
    unread = UnreadNotifications(PushActionStore(db))
    positions: list[int] = []
    add_event(db, 1, membership="join")
    position = 1
    for action, pick in steps:
        if action in ("notify", "highlight", "quiet"):
            position += 1
            highlight = None if action == "quiet" else action == "highlight"
            add_event(db, position, highlight=highlight, thread="main" if pick % 2 else "$t")
            positions.append(position)
            if highlight is not None:
                unread.event_persisted(SimpleNamespace(  # type: ignore[arg-type]
                    event=SimpleNamespace(room_id=ROOM, type="m.room.message", state_key=None),
                    stream_ordering=position,
                    push_actions=[PushActionRow(ALICE, highlight, "main")]))
        elif positions:
            target = positions[pick % len(positions)]
            thread = "$t" if action == "read_thread" else ""
            kind = "m.read.private" if action == "read_private" else "m.read"
            receipt(db, f"$e{target}", kind, thread)
            unread.receipt_stored(ALICE, ROOM, thread, target)
        cached = done(unread.unread_counts(ALICE, ROOM))
        assert (cached["notification_count"], cached["highlight_count"]) == counts(db)
