"""To-device messages: queued per device until the device syncs past them."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import client_txns, to_device


class ToDeviceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(self, sender: str, event_type: str,
                      messages: list[tuple[str, str, dict[str, Any], int]],
                      txn: tuple[str, str, str] | None) -> bool:
        """Queue (user, device, content, stream_id) messages, recording the client txn
        in the same transaction so a retried txnId never delivers twice.
        Returns False (and queues nothing) if the txn was already seen."""

        def run(conn: Connection) -> bool:
            if txn is not None:
                seen = conn.execute(sa.select(client_txns.c.path).where(
                    client_txns.c.user_id == txn[0], client_txns.c.device_id == txn[1],
                    client_txns.c.path == txn[2])).first()
                if seen is not None:
                    return False
                conn.execute(sa.insert(client_txns).values(
                    user_id=txn[0], device_id=txn[1], path=txn[2], response_json="{}",
                    created_ts=0))
            if messages:
                conn.execute(sa.insert(to_device), [
                    {"stream_id": sid, "user_id": user, "device_id": device, "sender": sender,
                     "type": event_type, "content": json.dumps(content)}
                    for user, device, content, sid in messages])
            return True

        try:
            return await self._db.run("enqueue_to_device", run)
        except sa.exc.IntegrityError:
            # The same txn committed concurrently (PostgreSQL runs both checks at
            # once): the other request delivered the messages.
            if txn is None:
                raise
            return False

    async def pending(self, user_id: str, device_id: str, upto: int, limit: int = 100
                      ) -> list[tuple[int, dict[str, Any]]]:
        def txn(conn: Connection) -> list[tuple[int, dict[str, Any]]]:
            rows = conn.execute(sa.select(to_device).where(
                to_device.c.user_id == user_id, to_device.c.device_id == device_id,
                to_device.c.stream_id <= upto).order_by(to_device.c.stream_id).limit(limit))
            return [(int(r.stream_id), {"sender": r.sender, "type": r.type,
                                        "content": json.loads(r.content)}) for r in rows]

        return await self._db.run("pending_to_device", txn)

    async def delete_upto(self, user_id: str, device_id: str, upto: int) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(sa.delete(to_device).where(
                to_device.c.user_id == user_id, to_device.c.device_id == device_id,
                to_device.c.stream_id <= upto))

        await self._db.run("ack_to_device", txn)
