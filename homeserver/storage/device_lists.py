"""Device-list changes on the global stream, and the membership deltas that
decide whose device lists a user must (re)fetch or may stop tracking."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .database import Database
from .schema import current_state, device_list_changes, events, room_memberships

# Memberships that make a user's devices relevant to the room (Synapse's choice).
_PRESENT = ("join", "invite", "knock")


@dataclass
class DeviceListDelta:
    changed: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)


class DeviceListStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record_change(self, user_id: str, stream_id: int) -> None:
        def txn(conn: Connection) -> None:
            conn.execute(sa.insert(device_list_changes).values(stream_id=stream_id,
                                                               user_id=user_id))

        await self._db.run("record_device_list_change", txn)

    async def changes(self, user_id: str, since: int, upto: int) -> DeviceListDelta:
        """Users whose device lists `user_id` should refetch (`changed`) or may stop
        tracking (`left`) between two stream positions."""

        def txn(conn: Connection) -> DeviceListDelta:
            return _changes(conn, user_id, since, upto)

        return await self._db.run("device_list_changes", txn)

    async def latest_change(self, user_id: str) -> int:
        """The stream position of the user's latest device-list change (0 if none):
        the `stream_id` federation's `/user/devices` answers with."""

        def txn(conn: Connection) -> int:
            value = conn.execute(sa.select(sa.func.max(device_list_changes.c.stream_id)).where(
                device_list_changes.c.user_id == user_id)).scalar()
            return int(value) if value is not None else 0

        return await self._db.run("latest_device_list_change", txn)


def _joined_rooms(conn: Connection, user_id: str) -> set[str]:
    rows = conn.execute(sa.select(current_state.c.room_id).where(
        current_state.c.type == "m.room.member", current_state.c.state_key == user_id,
        current_state.c.membership == "join"))
    return {r.room_id for r in rows}


def _joined_members(conn: Connection, rooms: set[str]) -> set[str]:
    if not rooms:
        return set()
    rows = conn.execute(sa.select(current_state.c.state_key).distinct().where(
        current_state.c.room_id.in_(rooms), current_state.c.type == "m.room.member",
        current_state.c.membership == "join"))
    return {r.state_key for r in rows}


def _latest_memberships(conn: Connection, condition: sa.ColumnElement[bool]
                        ) -> dict[tuple[str, str], str]:
    """(room, user) -> the membership of the newest row matching `condition`."""
    rm = room_memberships
    newest = sa.select(rm.c.room_id, rm.c.user_id,
                       sa.func.max(rm.c.stream_ordering).label("pos")).where(
        condition).group_by(rm.c.room_id, rm.c.user_id).subquery()
    rows = conn.execute(sa.select(rm.c.room_id, rm.c.user_id, rm.c.membership).join(
        newest, sa.and_(rm.c.room_id == newest.c.room_id, rm.c.user_id == newest.c.user_id,
                        rm.c.stream_ordering == newest.c.pos)))
    return {(r.room_id, r.user_id): r.membership for r in rows}


def _membership_deltas(conn: Connection, rooms_condition: sa.ColumnElement[bool],
                       since: int, upto: int) -> dict[tuple[str, str], tuple[str | None, str]]:
    """(room, user) -> (membership at `since`, membership at `upto`) for every
    pair whose membership changed in between."""
    rm = room_memberships
    after = _latest_memberships(conn, sa.and_(rooms_condition, rm.c.stream_ordering > since,
                                              rm.c.stream_ordering <= upto))
    if not after:
        return {}
    rooms = {room for room, _ in after}
    users = {user for _, user in after}
    before = _latest_memberships(conn, sa.and_(rm.c.room_id.in_(rooms), rm.c.user_id.in_(users),
                                               rm.c.stream_ordering <= since))
    return {pair: (before.get(pair), new) for pair, new in after.items()}


def _quiet(conn: Connection, since: int, upto: int) -> bool:
    """No device-list change and no membership event at all in the range: the
    common case for an incremental sync, answered from two index range scans."""
    changed = conn.execute(sa.select(device_list_changes.c.stream_id).where(
        device_list_changes.c.stream_id > since, device_list_changes.c.stream_id <= upto)
        .limit(1)).first()
    moved = conn.execute(sa.select(events.c.stream_ordering).where(
        events.c.stream_ordering > since, events.c.stream_ordering <= upto,
        events.c.type == "m.room.member").limit(1)).first()
    return changed is None and moved is None


def _changes(conn: Connection, user_id: str, since: int, upto: int) -> DeviceListDelta:
    delta = DeviceListDelta()
    if _quiet(conn, since, upto):
        return delta
    my_rooms = _joined_rooms(conn, user_id)
    sharing = _joined_members(conn, my_rooms) | {user_id}
    # 1. Users sharing a room with us who uploaded or removed device keys.
    rows = conn.execute(sa.select(device_list_changes.c.user_id).distinct().where(
        device_list_changes.c.stream_id > since, device_list_changes.c.stream_id <= upto))
    delta.changed |= {r.user_id for r in rows} & sharing
    # 2. Rooms we joined or left: everyone in them is new to us, or may be gone.
    mine = _membership_deltas(conn, room_memberships.c.user_id == user_id, since, upto)
    joined = {room for (room, _), (old, new) in mine.items() if new == "join" and old != "join"}
    left = {room for (room, _), (old, new) in mine.items() if old == "join" and new != "join"}
    delta.changed |= _joined_members(conn, joined)
    gone = _joined_members(conn, left)
    # 3. Others arriving in or leaving the rooms we are in.
    if my_rooms:
        others = _membership_deltas(conn, room_memberships.c.room_id.in_(my_rooms), since, upto)
        for (_, member), (old, new) in others.items():
            if new in _PRESENT and old not in _PRESENT:
                delta.changed.add(member)
            elif old in _PRESENT and new not in _PRESENT:
                gone.add(member)
    # Users we still share a room with are not "left".
    delta.left = gone - sharing
    delta.changed -= delta.left
    return delta
