"""Rooms, aliases, the public directory, and membership lookups."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import current_state, room_aliases, room_memberships, rooms


@dataclass(frozen=True)
class MembershipChange:
    room_id: str
    event_id: str
    membership: str
    stream_ordering: int


class RoomStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._versions: dict[str, str] = {}

    async def store_room(self, room_id: str, version: str, creator: str | None,
                         is_public: bool, created_ts: int) -> None:
        def txn(conn: Connection) -> None:
            exists = conn.execute(sa.select(rooms.c.room_id).where(rooms.c.room_id == room_id))
            if exists.first() is None:
                conn.execute(sa.insert(rooms).values(
                    room_id=room_id, room_version=version, creator=creator,
                    is_public=is_public, created_ts=created_ts))

        await self._db.run("store_room", txn)
        self._versions[room_id] = version

    async def get_room_version(self, room_id: str) -> str | None:
        if room_id in self._versions:
            return self._versions[room_id]

        def txn(conn: Connection) -> str | None:
            return conn.execute(sa.select(rooms.c.room_version).where(
                rooms.c.room_id == room_id)).scalar()

        version = await self._db.run("get_room_version", txn)
        if version is not None:
            self._versions[room_id] = version
        return version

    async def set_public(self, room_id: str, is_public: bool) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(sa.update(rooms).where(rooms.c.room_id == room_id)
                         .values(is_public=is_public))

        await self._db.run("set_room_public", txn)

    async def is_public(self, room_id: str) -> bool:
        def txn(conn: Connection) -> bool:
            return bool(conn.execute(sa.select(rooms.c.is_public).where(
                rooms.c.room_id == room_id)).scalar())

        return await self._db.run("is_room_public", txn)

    async def public_room_ids(self) -> list[str]:
        def txn(conn: Connection) -> list[str]:
            rows = conn.execute(sa.select(rooms.c.room_id).where(rooms.c.is_public.is_(True))
                                .order_by(rooms.c.room_id))
            return [r.room_id for r in rows]

        return await self._db.run("public_room_ids", txn)

    # Aliases -----------------------------------------------------------------

    async def create_alias(self, alias: str, room_id: str, creator: str | None) -> bool:
        def txn(conn: Connection) -> bool:
            exists = conn.execute(sa.select(room_aliases.c.alias).where(
                room_aliases.c.alias == alias)).first()
            if exists is not None:
                return False
            conn.execute(sa.insert(room_aliases).values(alias=alias, room_id=room_id,
                                                        creator=creator))
            return True

        return await self._db.run("create_alias", txn)

    async def get_alias(self, alias: str) -> tuple[str, str | None] | None:
        """(room_id, creator) of an alias."""

        def txn(conn: Connection) -> tuple[str, str | None] | None:
            row = conn.execute(sa.select(room_aliases).where(room_aliases.c.alias == alias)).first()
            return (row.room_id, row.creator) if row else None

        return await self._db.run("get_alias", txn)

    async def delete_alias(self, alias: str) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(sa.delete(room_aliases).where(room_aliases.c.alias == alias))

        await self._db.run("delete_alias", txn)

    async def aliases_for_room(self, room_id: str) -> list[str]:
        def txn(conn: Connection) -> list[str]:
            rows = conn.execute(sa.select(room_aliases.c.alias).where(
                room_aliases.c.room_id == room_id).order_by(room_aliases.c.alias))
            return [r.alias for r in rows]

        return await self._db.run("aliases_for_room", txn)

    # Memberships ---------------------------------------------------------------

    async def rooms_for_user(self, user_id: str, memberships: tuple[str, ...] = ("join",)
                             ) -> dict[str, str]:
        """room_id -> membership, for the user's current memberships."""

        def txn(conn: Connection) -> dict[str, str]:
            rows = conn.execute(sa.select(current_state.c.room_id, current_state.c.membership)
                                .where(current_state.c.type == "m.room.member",
                                       current_state.c.state_key == user_id,
                                       current_state.c.membership.in_(memberships)))
            return {r.room_id: r.membership for r in rows}

        return await self._db.run("rooms_for_user", txn)

    async def membership(self, room_id: str, user_id: str) -> str | None:
        """The user's current membership of one room, if any."""

        def txn(conn: Connection) -> str | None:
            return conn.execute(sa.select(current_state.c.membership).where(
                current_state.c.room_id == room_id, current_state.c.type == "m.room.member",
                current_state.c.state_key == user_id)).scalar()

        return await self._db.run("membership", txn)

    async def members(self, room_id: str, memberships: tuple[str, ...] = ("join",)) -> list[str]:
        def txn(conn: Connection) -> list[str]:
            rows = conn.execute(sa.select(current_state.c.state_key).where(
                current_state.c.room_id == room_id, current_state.c.type == "m.room.member",
                current_state.c.membership.in_(memberships)))
            return [r.state_key for r in rows]

        return await self._db.run("room_members", txn)

    async def membership_changes(self, user_id: str, after: int, upto: int
                                 ) -> list[MembershipChange]:
        def txn(conn: Connection) -> list[MembershipChange]:
            rows = conn.execute(sa.select(room_memberships).where(
                room_memberships.c.user_id == user_id,
                room_memberships.c.stream_ordering > after,
                room_memberships.c.stream_ordering <= upto,
            ).order_by(room_memberships.c.stream_ordering))
            return [MembershipChange(r.room_id, r.event_id, r.membership, int(r.stream_ordering))
                    for r in rows]

        return await self._db.run("membership_changes", txn)

    async def membership_at(self, user_id: str, room_id: str, upto: int
                            ) -> MembershipChange | None:
        """The user's latest membership in a room at or before a stream position."""

        def txn(conn: Connection) -> MembershipChange | None:
            row = conn.execute(sa.select(room_memberships).where(
                room_memberships.c.user_id == user_id, room_memberships.c.room_id == room_id,
                room_memberships.c.stream_ordering <= upto,
            ).order_by(room_memberships.c.stream_ordering.desc()).limit(1)).first()
            if row is None:
                return None
            return MembershipChange(row.room_id, row.event_id, row.membership,
                                    int(row.stream_ordering))

        return await self._db.run("membership_at", txn)

    async def last_join(self, user_id: str, room_id: str, upto: int) -> int | None:
        """The stream position of the user's latest join at or before `upto`."""

        def txn(conn: Connection) -> int | None:
            value = conn.execute(sa.select(sa.func.max(room_memberships.c.stream_ordering)).where(
                room_memberships.c.user_id == user_id, room_memberships.c.room_id == room_id,
                room_memberships.c.membership == "join",
                room_memberships.c.stream_ordering <= upto)).scalar()
            return int(value) if value is not None else None

        return await self._db.run("last_join", txn)

    async def forget(self, user_id: str, room_id: str) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(sa.update(room_memberships).where(
                room_memberships.c.user_id == user_id, room_memberships.c.room_id == room_id,
            ).values(forgotten=True))

        await self._db.run("forget_room", txn)

    async def is_forgotten(self, user_id: str, room_id: str) -> bool:
        def txn(conn: Connection) -> bool:
            row = conn.execute(sa.select(room_memberships.c.forgotten).where(
                room_memberships.c.user_id == user_id, room_memberships.c.room_id == room_id,
            ).order_by(room_memberships.c.stream_ordering.desc()).limit(1)).first()
            return bool(row.forgotten) if row else False

        return await self._db.run("is_forgotten", txn)

    async def shared_room_users(self, user_id: str) -> set[str]:
        """Everyone joined to a room the user is joined to."""

        def txn(conn: Connection) -> set[str]:
            mine = sa.select(current_state.c.room_id).where(
                current_state.c.type == "m.room.member", current_state.c.state_key == user_id,
                current_state.c.membership == "join").scalar_subquery()
            rows = conn.execute(sa.select(current_state.c.state_key).distinct().where(
                current_state.c.room_id.in_(mine), current_state.c.type == "m.room.member",
                current_state.c.membership == "join"))
            return {r.state_key for r in rows}

        return await self._db.run("shared_room_users", txn)
