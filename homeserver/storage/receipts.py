"""Read receipts (m.read, m.read.private)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .batched import BatchedWrite
from .database import Database
from .schema import receipts


@dataclass(frozen=True)
class Receipt:
    room_id: str
    receipt_type: str
    user_id: str
    thread_id: str
    event_id: str
    ts: int
    stream_id: int


class ReceiptStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # A message read by a room's members brings their receipts all at once.
        self._writes: BatchedWrite[Receipt] = BatchedWrite(db, "put_receipts", _put_all)

    async def put(self, receipt: Receipt) -> None:
        """Stored (committed) on return; receipts arriving together share a commit."""
        await self._writes.put(receipt)

    async def for_rooms(self, room_ids: list[str], after: int, upto: int) -> list[Receipt]:
        if not room_ids:
            return []

        def txn(conn: Connection) -> list[Receipt]:
            result: list[Receipt] = []
            for start in range(0, len(room_ids), 500):
                rows = conn.execute(sa.select(receipts).where(
                    receipts.c.room_id.in_(room_ids[start:start + 500]),
                    receipts.c.stream_id > after, receipts.c.stream_id <= upto))
                result += [Receipt(r.room_id, r.receipt_type, r.user_id, r.thread_id,
                                   r.event_id, int(r.ts), int(r.stream_id)) for r in rows]
            return result

        return await self._db.run("receipts_for_rooms", txn)


def _put_all(conn: Connection, batch: list[Receipt]) -> None:
    """Each receipt replaces the one of its room, type, user and thread (a later
    one in the batch replaces an earlier one)."""
    for receipt in batch:
        conn.execute(sa.delete(receipts).where(
            receipts.c.room_id == receipt.room_id,
            receipts.c.receipt_type == receipt.receipt_type,
            receipts.c.user_id == receipt.user_id,
            receipts.c.thread_id == receipt.thread_id))
        conn.execute(sa.insert(receipts).values(
            room_id=receipt.room_id, receipt_type=receipt.receipt_type,
            user_id=receipt.user_id, thread_id=receipt.thread_id,
            event_id=receipt.event_id, ts=receipt.ts, stream_id=receipt.stream_id))
