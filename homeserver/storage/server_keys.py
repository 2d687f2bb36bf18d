"""Other servers' signing keys (the key ring's persistent half)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from federation.key_responses import ServerKeyRecord

from .database import Database
from .schema import server_keys


class ServerKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_server_keys(self, server_name: str) -> list[ServerKeyRecord]:
        def txn(conn: Connection) -> list[ServerKeyRecord]:
            rows = conn.execute(sa.select(server_keys).where(
                server_keys.c.server_name == server_name))
            return [ServerKeyRecord(r.server_name, r.key_id, r.verify_key, r.valid_until_ts,
                                    r.expired_ts, int(r.fetched_ts), r.key_json) for r in rows]

        return await self._db.run("get_server_keys", txn)

    async def store_server_keys(self, records: Sequence[ServerKeyRecord]) -> None:
        """Insert or replace each (server_name, key_id)."""
        def txn(conn: Connection) -> None:
            for record in records:
                conn.execute(sa.delete(server_keys).where(
                    server_keys.c.server_name == record.server_name,
                    server_keys.c.key_id == record.key_id))
                conn.execute(sa.insert(server_keys).values(
                    server_name=record.server_name, key_id=record.key_id,
                    verify_key=record.verify_key, valid_until_ts=record.valid_until_ts,
                    expired_ts=record.expired_ts, fetched_ts=record.fetched_ts,
                    key_json=record.key_json))

        await self._db.run("store_server_keys", txn)
