"""Global and per-room account data, and stored filters."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import account_data, filters


class AccountDataStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, user_id: str, room_id: str, data_type: str, content: dict[str, Any],
                  stream_id: int) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(sa.delete(account_data).where(
                account_data.c.user_id == user_id, account_data.c.room_id == room_id,
                account_data.c.type == data_type))
            conn.execute(sa.insert(account_data).values(
                user_id=user_id, room_id=room_id, type=data_type,
                content=json.dumps(content), stream_id=stream_id))

        await self._db.run("put_account_data", txn)

    async def get(self, user_id: str, room_id: str, data_type: str) -> dict[str, Any] | None:
        def txn(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(sa.select(account_data.c.content).where(
                account_data.c.user_id == user_id, account_data.c.room_id == room_id,
                account_data.c.type == data_type)).first()
            return json.loads(row.content) if row else None

        return await self._db.run("get_account_data", txn)

    async def changed_since(self, user_id: str, after: int, upto: int
                            ) -> list[tuple[str, str, dict[str, Any]]]:
        """(room_id, type, content) changed in (after, upto]; room_id "" is global."""

        def txn(conn: Connection) -> list[tuple[str, str, dict[str, Any]]]:
            rows = conn.execute(sa.select(account_data).where(
                account_data.c.user_id == user_id, account_data.c.stream_id > after,
                account_data.c.stream_id <= upto).order_by(account_data.c.stream_id))
            return [(r.room_id, r.type, json.loads(r.content)) for r in rows]

        return await self._db.run("account_data_since", txn)


    # Filters -------------------------------------------------------------------

    async def add_filter(self, user_id: str, definition: dict[str, Any]) -> int:
        def txn(conn: Connection) -> int:
            top = conn.execute(sa.select(sa.func.max(filters.c.filter_id))
                               .where(filters.c.user_id == user_id)).scalar()
            filter_id = int(top or 0) + 1
            conn.execute(sa.insert(filters).values(user_id=user_id, filter_id=filter_id,
                                                   json=json.dumps(definition)))
            return filter_id

        return await self._db.run("add_filter", txn)

    async def get_filter(self, user_id: str, filter_id: int) -> dict[str, Any] | None:
        def txn(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(sa.select(filters.c.json).where(
                filters.c.user_id == user_id, filters.c.filter_id == filter_id)).first()
            return json.loads(row.json) if row else None

        return await self._db.run("get_filter", txn)
