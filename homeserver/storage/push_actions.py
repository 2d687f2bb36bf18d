"""Unread notification counts: the event_push_actions rows after a user's
read receipts (the rows themselves are written with their events)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import event_push_actions, events, receipts, room_memberships

READ_RECEIPT_TYPES = ("m.read", "m.read.private")


@dataclass(frozen=True)
class UnreadCounts:
    notifications: int
    highlights: int
    # The stream position of the user's newest notification in the room, read
    # or not (0: none).
    newest: int = 0


class PushActionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def unread_counts(self, user_id: str, room_id: str) -> UnreadCounts:
        return await self._db.run("unread_counts",
                                  lambda conn: unread_counts_txn(conn, user_id, room_id))


def _read_positions(conn: Connection, user_id: str, room_id: str) -> dict[str, int]:
    """thread_id ("" when unthreaded) -> stream position read up to. Spec: of
    m.read and m.read.private, whichever is further ahead counts."""
    rows = conn.execute(
        sa.select(receipts.c.thread_id, sa.func.max(events.c.stream_ordering).label("pos"))
        .join(events, events.c.event_id == receipts.c.event_id)
        .where(receipts.c.room_id == room_id, receipts.c.user_id == user_id,
               receipts.c.receipt_type.in_(READ_RECEIPT_TYPES))
        .group_by(receipts.c.thread_id))
    return {r.thread_id: int(r.pos) for r in rows if r.pos is not None}


def _last_non_join(conn: Connection, user_id: str, room_id: str) -> int:
    """Where the current join began: the last invite, knock or leave before it.
    Notifications from before then (an invite's own) are not unread (as Synapse,
    which counts from the membership when there is no receipt)."""
    table = room_memberships.c
    position = conn.execute(sa.select(sa.func.max(table.stream_ordering)).where(
        table.user_id == user_id, table.room_id == room_id,
        table.membership != "join")).scalar()
    return int(position or 0)


def unread_counts_txn(conn: Connection, user_id: str, room_id: str) -> UnreadCounts:
    read = _read_positions(conn, user_id, room_id)
    unthreaded = max(read.pop("", 0), _last_non_join(conn, user_id, room_id))
    table = event_push_actions.c
    # An unthreaded receipt reads every thread; a threaded one only its own.
    unread = sa.or_(
        sa.and_(table.thread_id.notin_(list(read)) if read else sa.true(),
                table.stream_ordering > unthreaded),
        *[sa.and_(table.thread_id == thread, table.stream_ordering > max(pos, unthreaded))
          for thread, pos in read.items()],
    )
    mine = sa.and_(table.user_id == user_id, table.room_id == room_id)
    row = conn.execute(
        sa.select(sa.func.count().label("n"),
                  sa.func.sum(sa.case((table.highlight.is_(True), 1), else_=0)).label("h"))
        .where(mine, unread)).first()
    newest = conn.execute(sa.select(sa.func.max(table.stream_ordering)).where(mine)).scalar()
    return UnreadCounts(int(row.n or 0) if row else 0, int(row.h or 0) if row else 0,
                        int(newest or 0))
