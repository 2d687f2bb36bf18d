"""Presence: one row per user, rewritten at a new stream position on each change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import presence, users

_CHUNK = 500


@dataclass(frozen=True)
class UserPresence:
    user_id: str
    state: str  # online | unavailable | offline
    status_msg: str | None
    last_active_ts: int  # 0 = never active
    currently_active: bool


@dataclass(frozen=True)
class PresenceRow:
    """A stored presence with the profile that goes with it in `m.presence`."""

    presence: UserPresence
    stream_id: int
    displayname: str | None
    avatar_url: str | None


def _query() -> Any:
    return sa.select(presence, users.c.displayname, users.c.avatar_url).select_from(
        presence.outerjoin(users, users.c.user_id == presence.c.user_id))


def _row(r: Any) -> PresenceRow:
    return PresenceRow(
        UserPresence(r.user_id, r.state, r.status_msg, int(r.last_active_ts),
                     bool(r.currently_active)),
        int(r.stream_id), r.displayname, r.avatar_url)


class PresenceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, state: UserPresence, stream_id: int) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(sa.delete(presence).where(presence.c.user_id == state.user_id))
            conn.execute(sa.insert(presence).values(
                user_id=state.user_id, state=state.state, status_msg=state.status_msg,
                last_active_ts=state.last_active_ts, currently_active=state.currently_active,
                stream_id=stream_id))

        await self._db.run("put_presence", txn)

    async def get_many(self, user_ids: Iterable[str]) -> dict[str, PresenceRow]:
        return await self._select("get_presence", list(user_ids), None)

    async def changed(self, user_ids: Iterable[str], after: int, upto: int
                      ) -> dict[str, PresenceRow]:
        """The users' presence rows written in (after, upto]."""
        return await self._select("presence_changed", list(user_ids), (after, upto))

    async def _select(self, name: str, user_ids: list[str], window: tuple[int, int] | None
                      ) -> dict[str, PresenceRow]:
        if not user_ids:
            return {}

        def txn(conn: Connection) -> dict[str, PresenceRow]:
            found: dict[str, PresenceRow] = {}
            for start in range(0, len(user_ids), _CHUNK):
                query = _query().where(presence.c.user_id.in_(user_ids[start:start + _CHUNK]))
                if window is not None:
                    query = query.where(presence.c.stream_id > window[0],
                                        presence.c.stream_id <= window[1])
                found.update((r.user_id, _row(r)) for r in conn.execute(query))
            return found

        return await self._db.run(name, txn)

    async def not_offline(self) -> list[str]:
        """Users stored as online or unavailable (to time out after a restart)."""

        def txn(conn: Connection) -> list[str]:
            rows = conn.execute(sa.select(presence.c.user_id).where(presence.c.state != "offline"))
            return [r.user_id for r in rows]

        return await self._db.run("presence_not_offline", txn)
