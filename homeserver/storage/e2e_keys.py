"""End-to-end encryption keys: device identity keys, one-time keys, fallback keys.

The server stores and relays public keys only; it never sees a private key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import device_keys, devices, e2e_fallback_keys, one_time_keys

# Enough to claim the next key when a concurrent claim took the one we picked.
_CLAIM_ATTEMPTS = 5


class OneTimeKeyExists(Exception):
    """An uploaded one-time key reuses a key ID with a different key."""

    def __init__(self, key_id: str) -> None:
        super().__init__(key_id)
        self.key_id = key_id


@dataclass(frozen=True)
class QueriedDevice:
    device_id: str
    keys: dict[str, Any]
    display_name: str | None


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class EndToEndKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def set_device_keys(self, user_id: str, device_id: str, keys: dict[str, Any]) -> bool:
        """Store a device's identity keys; True if they changed."""
        text = _dump(keys)

        def txn(conn: Connection) -> bool:
            old = conn.execute(sa.select(device_keys.c.json).where(
                device_keys.c.user_id == user_id, device_keys.c.device_id == device_id)).scalar()
            if old == text:
                return False
            if old is not None:
                conn.execute(sa.delete(device_keys).where(
                    device_keys.c.user_id == user_id, device_keys.c.device_id == device_id))
            conn.execute(sa.insert(device_keys).values(user_id=user_id, device_id=device_id,
                                                       json=text))
            return True

        return await self._db.run("set_device_keys", txn)

    async def add_one_time_keys(self, user_id: str, device_id: str,
                                keys: dict[str, Any]) -> None:
        """Add one-time keys; re-uploading an identical key is a no-op.

        Raises OneTimeKeyExists (and adds nothing) if a key ID is reused for a
        different key."""
        texts = {key_id: _dump(value) for key_id, value in keys.items()}

        def txn(conn: Connection) -> None:
            existing = {r.key_id: r.json for r in conn.execute(
                sa.select(one_time_keys.c.key_id, one_time_keys.c.json).where(
                    one_time_keys.c.user_id == user_id, one_time_keys.c.device_id == device_id,
                    one_time_keys.c.key_id.in_(list(texts))))}
            for key_id, text in texts.items():
                if key_id in existing and existing[key_id] != text:
                    raise OneTimeKeyExists(key_id)
            rows = [{"user_id": user_id, "device_id": device_id, "key_id": key_id,
                     "algorithm": key_id.partition(":")[0], "json": text, "fallback": False}
                    for key_id, text in texts.items() if key_id not in existing]
            if rows:
                conn.execute(sa.insert(one_time_keys), rows)

        if texts:
            await self._db.run("add_one_time_keys", txn)

    async def set_fallback_keys(self, user_id: str, device_id: str,
                                keys: dict[str, Any]) -> None:
        """Replace the fallback key of each algorithm given (one per algorithm)."""
        by_algorithm = {key_id.partition(":")[0]: (key_id, _dump(value))
                        for key_id, value in sorted(keys.items())}

        def txn(conn: Connection) -> None:
            for algorithm, (key_id, text) in by_algorithm.items():
                where = (e2e_fallback_keys.c.user_id == user_id,
                         e2e_fallback_keys.c.device_id == device_id,
                         e2e_fallback_keys.c.algorithm == algorithm)
                old = conn.execute(sa.select(e2e_fallback_keys.c.key_id, e2e_fallback_keys.c.json)
                                   .where(*where)).first()
                if old is not None and (old.key_id, old.json) == (key_id, text):
                    continue  # the same key again keeps its `used` flag
                conn.execute(sa.delete(e2e_fallback_keys).where(*where))
                conn.execute(sa.insert(e2e_fallback_keys).values(
                    user_id=user_id, device_id=device_id, algorithm=algorithm, key_id=key_id,
                    json=text, used=False))

        if by_algorithm:
            await self._db.run("set_fallback_keys", txn)

    async def one_time_key_counts(self, user_id: str, device_id: str) -> dict[str, int]:
        def txn(conn: Connection) -> dict[str, int]:
            rows = conn.execute(
                sa.select(one_time_keys.c.algorithm, sa.func.count()).where(
                    one_time_keys.c.user_id == user_id, one_time_keys.c.device_id == device_id)
                .group_by(one_time_keys.c.algorithm))
            return {r[0]: int(r[1]) for r in rows}

        return await self._db.run("count_one_time_keys", txn)

    async def unused_fallback_algorithms(self, user_id: str, device_id: str) -> list[str]:
        def txn(conn: Connection) -> list[str]:
            rows = conn.execute(sa.select(e2e_fallback_keys.c.algorithm).where(
                e2e_fallback_keys.c.user_id == user_id,
                e2e_fallback_keys.c.device_id == device_id,
                e2e_fallback_keys.c.used.is_(False)).order_by(e2e_fallback_keys.c.algorithm))
            return [r.algorithm for r in rows]

        return await self._db.run("unused_fallback_keys", txn)

    async def query_devices(self, user_id: str, device_ids: list[str]
                            ) -> list[QueriedDevice]:
        """The devices (all when `device_ids` is empty) that have uploaded identity keys."""

        def txn(conn: Connection) -> list[QueriedDevice]:
            query = sa.select(device_keys.c.device_id, device_keys.c.json,
                              devices.c.display_name).join(devices, sa.and_(
                                  devices.c.user_id == device_keys.c.user_id,
                                  devices.c.device_id == device_keys.c.device_id)).where(
                device_keys.c.user_id == user_id).order_by(device_keys.c.device_id)
            if device_ids:
                query = query.where(device_keys.c.device_id.in_(device_ids))
            return [QueriedDevice(r.device_id, json.loads(r.json), r.display_name)
                    for r in conn.execute(query)]

        return await self._db.run("query_device_keys", txn)

    async def claim(self, user_id: str, device_id: str, algorithm: str
                    ) -> tuple[str, Any] | None:
        """Take one one-time key of `algorithm` (deleting it), else the fallback key."""

        def txn(conn: Connection) -> tuple[str, Any] | None:
            where = (one_time_keys.c.user_id == user_id, one_time_keys.c.device_id == device_id,
                     one_time_keys.c.algorithm == algorithm)
            for _ in range(_CLAIM_ATTEMPTS):
                row = conn.execute(sa.select(one_time_keys.c.key_id, one_time_keys.c.json)
                                   .where(*where).order_by(one_time_keys.c.key_id)
                                   .limit(1)).first()
                if row is None:
                    break
                deleted = conn.execute(sa.delete(one_time_keys).where(
                    *where, one_time_keys.c.key_id == row.key_id)).rowcount
                if deleted:  # else a concurrent claim won this key: take the next
                    return row.key_id, json.loads(row.json)
            return _claim_fallback(conn, user_id, device_id, algorithm)

        return await self._db.run("claim_one_time_key", txn)

    async def delete_device_keys(self, user_id: str, device_id: str | None) -> int:
        """Forget every key of a device (of every device when None); returns rows removed."""

        def txn(conn: Connection) -> int:
            removed = 0
            for table in (device_keys, one_time_keys, e2e_fallback_keys):
                condition = table.c.user_id == user_id
                if device_id is not None:
                    condition = sa.and_(condition, table.c.device_id == device_id)
                removed += conn.execute(sa.delete(table).where(condition)).rowcount or 0
            return removed

        return await self._db.run("delete_e2e_keys", txn)


def _claim_fallback(conn: Connection, user_id: str, device_id: str, algorithm: str
                    ) -> tuple[str, Any] | None:
    where = (e2e_fallback_keys.c.user_id == user_id, e2e_fallback_keys.c.device_id == device_id,
             e2e_fallback_keys.c.algorithm == algorithm)
    row = conn.execute(sa.select(e2e_fallback_keys.c.key_id, e2e_fallback_keys.c.json)
                       .where(*where)).first()
    if row is None:
        return None
    conn.execute(sa.update(e2e_fallback_keys).where(*where).values(used=True))
    return row.key_id, json.loads(row.json)
