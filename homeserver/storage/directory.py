"""Queries behind the room directory and the user directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import current_state, events, rooms, users


@dataclass(frozen=True)
class DirectoryUser:
    user_id: str
    display_name: str | None
    avatar_url: str | None


def _joined(room_ids: Any) -> sa.ColumnElement[bool]:
    return sa.and_(current_state.c.type == "m.room.member",
                   current_state.c.membership == "join",
                   current_state.c.room_id.in_(room_ids))


class DirectoryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def published_rooms(self) -> list[tuple[str, int]]:
        """(room_id, joined members) of every published room, largest first."""

        def txn(conn: Connection) -> list[tuple[str, int]]:
            joined = sa.func.count(current_state.c.state_key)
            rows = conn.execute(
                sa.select(rooms.c.room_id, joined.label("joined")).select_from(rooms)
                .outerjoin(current_state, sa.and_(
                    current_state.c.room_id == rooms.c.room_id,
                    current_state.c.type == "m.room.member",
                    current_state.c.membership == "join"))
                .where(rooms.c.is_public.is_(True)).group_by(rooms.c.room_id)
                .order_by(joined.desc(), rooms.c.room_id))
            return [(r.room_id, int(r.joined)) for r in rows]

        return await self._db.run("published_rooms", txn)

    async def current_state_contents(self, event_types: Iterable[str]
                                     ) -> list[tuple[str, str, dict[str, Any]]]:
        """(room_id, type, content) of the current `(type, "")` state of every room."""
        wanted = list(event_types)

        def txn(conn: Connection) -> list[tuple[str, str, dict[str, Any]]]:
            rows = conn.execute(
                sa.select(current_state.c.room_id, current_state.c.type, events.c.json)
                .join(events, events.c.event_id == current_state.c.event_id)
                .where(current_state.c.type.in_(wanted), current_state.c.state_key == ""))
            out = []
            for row in rows:
                content = json.loads(row.json).get("content")
                out.append((row.room_id, row.type, content if isinstance(content, dict) else {}))
            return out

        return await self._db.run("current_state_contents", txn)

    async def search_users(self, searcher: str, public_rooms: set[str], term: str,
                           limit: int) -> list[DirectoryUser]:
        """Users joined to a room with `searcher` or to one of `public_rooms` whose
        user ID or display name contains `term` (case-insensitively); best first."""
        term = term.lower()

        def txn(conn: Connection) -> list[DirectoryUser]:
            mine = sa.select(current_state.c.room_id).where(
                current_state.c.type == "m.room.member", current_state.c.state_key == searcher,
                current_state.c.membership == "join")
            visible = sa.select(current_state.c.state_key).where(
                sa.or_(_joined(mine), _joined(list(public_rooms))))
            name = sa.func.lower(sa.func.coalesce(users.c.displayname, ""))
            user_id = sa.func.lower(users.c.user_id)
            prefix = sa.or_(name.startswith(term, autoescape=True),
                            user_id.startswith("@" + term, autoescape=True))
            rank = sa.case((prefix, 0), else_=1)
            rows = conn.execute(
                sa.select(users.c.user_id, users.c.displayname, users.c.avatar_url)
                .where(users.c.user_id.in_(visible), users.c.deactivated.is_(False),
                       sa.or_(user_id.contains(term, autoescape=True),
                              name.contains(term, autoescape=True)))
                .order_by(rank, users.c.displayname.is_(None), users.c.user_id).limit(limit))
            return [DirectoryUser(r.user_id, r.displayname, r.avatar_url) for r in rows]

        return await self._db.run("search_user_directory", txn)
