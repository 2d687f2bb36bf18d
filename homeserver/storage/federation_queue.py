"""The federation sender's persistent queue (`federation.sender.OutboxStore`)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from federation.protocol import identifiers
from federation.sender import ClaimedTransaction, OutboxEntry

from .database import Database
from .schema import (
    device_list_changes,
    events,
    federation_outbox,
    federation_sender_position,
)

outbox = federation_outbox


class FederationQueueStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(self, entries: list[OutboxEntry], sender_position: int | None
                      ) -> None:
        rows = [{"destination": e.destination, "event_id": e.event_id,
                 "edu_json": json.dumps(e.edu) if e.edu is not None else None,
                 "txn_id": None} for e in entries]

        def txn(conn: Connection) -> None:
            if rows:
                conn.execute(sa.insert(outbox), rows)
            if sender_position is not None:
                _save_position(conn, sender_position)

        await self._db.run("federation_enqueue", txn)

    async def claim(self, destination: str, txn_id: str, max_pdus: int, max_edus: int
                    ) -> ClaimedTransaction:
        def txn(conn: Connection) -> ClaimedTransaction:
            bound = conn.execute(sa.select(outbox).where(
                outbox.c.destination == destination, outbox.c.txn_id.is_not(None))
                .order_by(outbox.c.id)).fetchall()
            if bound:
                return _claimed(bound[0].txn_id, bound, resumed=True)
            head = _unbound(conn, destination, outbox.c.event_id, max_pdus) + \
                _unbound(conn, destination, outbox.c.edu_json, max_edus)
            if head:
                conn.execute(sa.update(outbox).where(
                    outbox.c.id.in_([r.id for r in head])).values(txn_id=txn_id))
            return _claimed(txn_id, sorted(head, key=lambda r: r.id), resumed=False)

        return await self._db.run("federation_claim", txn)

    async def delivered(self, destination: str, txn_id: str) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(sa.delete(outbox).where(outbox.c.destination == destination,
                                                 outbox.c.txn_id == txn_id))

        await self._db.run("federation_delivered", txn)

    async def pending_destinations(self) -> list[str]:
        def txn(conn: Connection) -> list[str]:
            rows = conn.execute(sa.select(outbox.c.destination).distinct())
            return sorted(r.destination for r in rows)

        return await self._db.run("federation_pending_destinations", txn)

    async def pending_count(self, destination: str) -> int:
        def txn(conn: Connection) -> int:
            return int(conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
                outbox.c.destination == destination)).scalar() or 0)

        return await self._db.run("federation_pending_count", txn)

    async def sender_position(self) -> int | None:
        def txn(conn: Connection) -> int | None:
            value = conn.execute(sa.select(federation_sender_position.c.stream_ordering)
                                 ).scalar()
            return int(value) if value is not None else None

        return await self._db.run("federation_sender_position", txn)

    async def save_sender_position(self, position: int) -> None:
        def txn(conn: Connection) -> None:
            _save_position(conn, position)

        await self._db.run("federation_save_sender_position", txn)

    async def local_event_ids_after(self, position: int, server_name: str, limit: int
                                    ) -> list[tuple[int, str]]:
        def txn(conn: Connection) -> list[tuple[int, str]]:
            rows = conn.execute(sa.select(events.c.stream_ordering, events.c.event_id,
                                          events.c.sender).where(
                events.c.stream_ordering > position,
                events.c.sender.like("%:" + server_name),
                events.c.outlier.is_(False), events.c.rejected_reason.is_(None),
                events.c.soft_failed.is_(False)).order_by(events.c.stream_ordering)
                .limit(limit)).fetchall()
            return [(int(r.stream_ordering), r.event_id) for r in rows
                    if identifiers.server_of(r.sender) == server_name]

        return await self._db.run("federation_local_events_after", txn)

    async def previous_device_list_change(self, user_id: str, before: int) -> int | None:
        """For `m.device_list_update`'s `prev_id`: the user's change before `before`."""

        def txn(conn: Connection) -> int | None:
            value = conn.execute(sa.select(sa.func.max(device_list_changes.c.stream_id)).where(
                device_list_changes.c.user_id == user_id,
                device_list_changes.c.stream_id < before)).scalar()
            return int(value) if value is not None else None

        return await self._db.run("previous_device_list_change", txn)


def _unbound(conn: Connection, destination: str, column: Any, limit: int) -> list[Any]:
    return list(conn.execute(sa.select(outbox).where(
        outbox.c.destination == destination, outbox.c.txn_id.is_(None), column.is_not(None))
        .order_by(outbox.c.id).limit(limit)).fetchall())


def _claimed(txn_id: str, rows: list[Any], resumed: bool) -> ClaimedTransaction:
    return ClaimedTransaction(
        txn_id, [r.event_id for r in rows if r.event_id is not None],
        [json.loads(r.edu_json) for r in rows if r.edu_json is not None], resumed)


def _save_position(conn: Connection, position: int) -> None:
    table = federation_sender_position
    if conn.execute(sa.update(table).values(stream_ordering=position)).rowcount == 0:
        conn.execute(sa.insert(table).values(stream_ordering=position))
