"""Each user's push-rule changes, as one JSON document."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import push_rules


class PushRuleStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: str) -> dict[str, Any] | None:
        def txn(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(sa.select(push_rules.c.json).where(
                push_rules.c.user_id == user_id)).first()
            return json.loads(row.json) if row else None

        return await self._db.run("get_push_rules", txn)

    async def get_many(self, user_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The documents of those users who have one."""

        def txn(conn: Connection) -> dict[str, dict[str, Any]]:
            found: dict[str, dict[str, Any]] = {}
            for start in range(0, len(user_ids), 500):
                rows = conn.execute(sa.select(push_rules).where(
                    push_rules.c.user_id.in_(user_ids[start:start + 500])))
                found.update({r.user_id: json.loads(r.json) for r in rows})
            return found

        return await self._db.run("get_many_push_rules", txn)

    async def put(self, user_id: str, doc: dict[str, Any]) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(sa.delete(push_rules).where(push_rules.c.user_id == user_id))
            conn.execute(sa.insert(push_rules).values(user_id=user_id, json=json.dumps(doc)))

        await self._db.run("put_push_rules", txn)
