"""Accounts, devices and access tokens."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import access_tokens, devices, users


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Account:
    user_id: str
    password_hash: str | None
    is_admin: bool
    deactivated: bool
    displayname: str | None
    avatar_url: str | None


@dataclass(frozen=True)
class TokenOwner:
    user_id: str
    device_id: str


@dataclass(frozen=True)
class Device:
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None


class UserStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_account(
        self, user_id: str, password_hash: str | None, created_ts: int, *,
        is_admin: bool = False, displayname: str | None = None,
    ) -> bool:
        """Create an account; False if the user ID is taken."""

        def txn(conn: Connection) -> bool:
            exists = conn.execute(sa.select(users.c.user_id).where(users.c.user_id == user_id))
            if exists.first() is not None:
                return False
            conn.execute(sa.insert(users).values(
                user_id=user_id, password_hash=password_hash, is_admin=is_admin,
                deactivated=False, created_ts=created_ts, displayname=displayname,
            ))
            return True

        return await self._db.run("create_account", txn)

    async def get_account(self, user_id: str) -> Account | None:
        def txn(conn: Connection) -> Account | None:
            row = conn.execute(sa.select(users).where(users.c.user_id == user_id)).first()
            if row is None:
                return None
            return Account(row.user_id, row.password_hash, bool(row.is_admin),
                           bool(row.deactivated), row.displayname, row.avatar_url)

        return await self._db.run("get_account", txn)

    async def set_profile_field(self, user_id: str, field: str, value: str | None) -> None:
        if field not in ("displayname", "avatar_url"):
            raise ValueError(field)

        def txn(conn: Connection) -> None:
            conn.execute(sa.update(users).where(users.c.user_id == user_id).values({field: value}))

        await self._db.run(f"set_profile_{field}", txn)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(
                sa.update(users).where(users.c.user_id == user_id)
                .values(password_hash=password_hash)
            )

        await self._db.run("set_password_hash", txn)

    async def search_profiles(self, term: str, limit: int) -> list[Account]:
        pattern = f"%{term.lower()}%"

        def txn(conn: Connection) -> list[Account]:
            rows = conn.execute(
                sa.select(users).where(
                    sa.or_(sa.func.lower(users.c.user_id).like(pattern),
                           sa.func.lower(users.c.displayname).like(pattern)),
                    users.c.deactivated.is_(False),
                ).order_by(users.c.user_id).limit(limit)
            )
            return [Account(r.user_id, None, bool(r.is_admin), False, r.displayname,
                            r.avatar_url) for r in rows]

        return await self._db.run("search_profiles", txn)

    # Devices and tokens ---------------------------------------------------

    async def create_device_and_token(
        self, user_id: str, device_id: str, display_name: str | None, token: str, now: int
    ) -> None:
        """Create (or reuse) a device and issue a new access token for it."""

        def txn(conn: Connection) -> None:
            exists = conn.execute(sa.select(devices.c.device_id).where(
                devices.c.user_id == user_id, devices.c.device_id == device_id)).first()
            if exists is None:
                conn.execute(sa.insert(devices).values(
                    user_id=user_id, device_id=device_id, display_name=display_name,
                    last_seen_ts=now,
                ))
            conn.execute(sa.insert(access_tokens).values(
                token_hash=hash_token(token), user_id=user_id, device_id=device_id,
                created_ts=now,
            ))

        await self._db.run("create_device_and_token", txn)

    async def get_token_owner(self, token: str) -> TokenOwner | None:
        token_hash = hash_token(token)

        def txn(conn: Connection) -> TokenOwner | None:
            row = conn.execute(
                sa.select(access_tokens.c.user_id, access_tokens.c.device_id)
                .where(access_tokens.c.token_hash == token_hash)
            ).first()
            return TokenOwner(row.user_id, row.device_id) if row else None

        return await self._db.run("get_token_owner", txn)

    async def delete_devices(self, user_id: str, device_ids: list[str] | None) -> list[str]:
        """Delete devices (all when None) with their tokens; returns the token hashes removed."""

        def txn(conn: Connection) -> list[str]:
            token_q = sa.select(access_tokens.c.token_hash).where(
                access_tokens.c.user_id == user_id)
            dev_filter = devices.c.user_id == user_id
            tok_filter = access_tokens.c.user_id == user_id
            if device_ids is not None:
                token_q = token_q.where(access_tokens.c.device_id.in_(device_ids))
                dev_filter = sa.and_(dev_filter, devices.c.device_id.in_(device_ids))
                tok_filter = sa.and_(tok_filter, access_tokens.c.device_id.in_(device_ids))
            hashes = [r.token_hash for r in conn.execute(token_q)]
            conn.execute(sa.delete(access_tokens).where(tok_filter))
            conn.execute(sa.delete(devices).where(dev_filter))
            return hashes

        return await self._db.run("delete_devices", txn)

    async def get_devices(self, user_id: str) -> list[Device]:
        def txn(conn: Connection) -> list[Device]:
            rows = conn.execute(sa.select(devices).where(devices.c.user_id == user_id)
                                .order_by(devices.c.device_id))
            return [Device(r.device_id, r.display_name, r.last_seen_ts, r.last_seen_ip)
                    for r in rows]

        return await self._db.run("get_devices", txn)

    async def update_device(self, user_id: str, device_id: str, display_name: str | None) -> bool:
        def txn(conn: Connection) -> bool:
            result = conn.execute(sa.update(devices).where(
                devices.c.user_id == user_id, devices.c.device_id == device_id,
            ).values(display_name=display_name))
            return bool(result.rowcount)

        return await self._db.run("update_device", txn)

    async def touch_device(self, user_id: str, device_id: str, ip: str | None, now: int) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(sa.update(devices).where(
                devices.c.user_id == user_id, devices.c.device_id == device_id,
            ).values(last_seen_ts=now, last_seen_ip=ip))

        await self._db.run("touch_device", txn)
