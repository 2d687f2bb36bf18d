"""Room aliases (spec: client-server API, "Room aliases"): mapping
`#alias:server` to a room ID in our directory.

Only aliases on this server are served; resolving a remote alias needs
federation (`/query/directory`), so it answers 404 for now.
"""

from __future__ import annotations

import logging
import string
from typing import Any

from federation.protocol import identifiers
from federation.protocol.errors import AuthError, Codes, MatrixError
from federation.protocol.events import CREATE_KEY, MEMBER, Event, StateKey
from federation.protocol.power_levels import room_creators, send_level, user_power_level

from ..rooms.writer import NewEvent, RoomWriter
from ..storage.rooms import RoomStore

logger = logging.getLogger(__name__)

CANONICAL_ALIAS = "m.room.canonical_alias"
HISTORY_VISIBILITY_KEY = ("m.room.history_visibility", "")


def is_joined(state: dict[StateKey, Event], user_id: str) -> bool:
    member = state.get((MEMBER, user_id))
    return member is not None and member.membership == "join"


def can_moderate_listing(state: dict[StateKey, Event], user_id: str) -> bool:
    """A creator, or a member able to send `m.room.canonical_alias` (Synapse's test
    for editing a room's directory entries)."""
    create = state.get(CREATE_KEY)
    if create is None or not is_joined(state, user_id):
        return False
    if user_id in room_creators(create):
        return True
    return user_power_level(user_id, state) >= send_level(CANONICAL_ALIAS, True, state)


class RoomAliasHandler:
    def __init__(self, writer: RoomWriter, rooms: RoomStore, server_name: str) -> None:
        self._writer = writer
        self._rooms = rooms
        self._server_name = server_name

    def _check_alias(self, alias: str) -> None:
        if not identifiers.is_valid_room_alias(alias):
            raise MatrixError(400, Codes.INVALID_PARAM, "Room alias invalid")
        localpart = alias[1:].partition(":")[0]
        if any(ch in string.whitespace for ch in localpart):
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid characters in room alias")

    def _is_mine(self, alias: str) -> bool:
        return identifiers.server_of(alias) == self._server_name

    async def resolve(self, alias: str) -> dict[str, Any]:
        self._check_alias(alias)
        found = await self._rooms.get_alias(alias) if self._is_mine(alias) else None
        if found is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Room alias {alias} not found")
        room_id = found[0]
        return {"room_id": room_id, "servers": await self._servers(room_id)}

    async def _servers(self, room_id: str) -> list[str]:
        """Ourselves first, then every other server with a joined member."""
        others = {identifiers.server_of(u) for u in await self._rooms.members(room_id)}
        others.discard(self._server_name)
        return [self._server_name, *sorted(others)]

    async def create(self, user_id: str, alias: str, room_id: Any) -> None:
        self._check_alias(alias)
        if not self._is_mine(alias):
            raise MatrixError(400, Codes.INVALID_PARAM, "Room alias must be local")
        if not identifiers.is_valid_room_id(room_id):
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid room_id")
        state = await self._writer.current_state_events(room_id)
        if not state:
            raise MatrixError(404, Codes.NOT_FOUND, "Unknown room")
        if not is_joined(state, user_id):
            raise MatrixError(403, Codes.FORBIDDEN,
                              "You must be in the room to create an alias for it")
        if not await self._rooms.create_alias(alias, room_id, user_id):
            raise MatrixError(409, Codes.UNKNOWN, f"Room alias {alias} already exists")
        logger.info("%s created alias %s for %s", user_id, alias, room_id)

    async def delete(self, user_id: str, alias: str) -> None:
        """By the alias's creator, or a member with power over the room's aliases."""
        self._check_alias(alias)
        found = await self._rooms.get_alias(alias) if self._is_mine(alias) else None
        if found is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Room alias {alias} not found")
        room_id, creator = found
        state = await self._writer.current_state_events(room_id)
        if creator != user_id and not can_moderate_listing(state, user_id):
            raise MatrixError(403, Codes.FORBIDDEN,
                              "You don't have permission to delete the alias")
        await self._rooms.delete_alias(alias)
        logger.info("%s deleted alias %s of %s", user_id, alias, room_id)
        await self._drop_from_canonical_alias(user_id, room_id, alias, state)

    async def _drop_from_canonical_alias(self, user_id: str, room_id: str, alias: str,
                                         state: dict[StateKey, Event]) -> None:
        """The spec lets servers remove a deleted alias from `m.room.canonical_alias`;
        the deletion stands even when the user may not send that event."""
        event = state.get((CANONICAL_ALIAS, ""))
        if event is None:
            return
        content = dict(event.content)
        changed = content.get("alias") == alias
        if changed:
            del content["alias"]
        alt = content.get("alt_aliases")
        if isinstance(alt, list) and alias in alt:
            changed = True
            content["alt_aliases"] = [a for a in alt if a != alias]
            if not content["alt_aliases"]:
                del content["alt_aliases"]
        if not changed:
            return
        try:
            await self._writer.send(room_id, NewEvent(CANONICAL_ALIAS, user_id, content, ""))
        except AuthError as exc:
            logger.info("could not update the canonical alias of %s: %s", room_id, exc.message)

    async def local_aliases(self, user_id: str, room_id: str) -> list[str]:
        """Members (or anyone, for world-readable rooms) may list a room's aliases."""
        state = await self._writer.current_state_events(room_id)
        visibility = state.get(HISTORY_VISIBILITY_KEY)
        world_readable = visibility is not None and \
            visibility.content.get("history_visibility") == "world_readable"
        if not (is_joined(state, user_id) or world_readable):
            raise MatrixError(403, Codes.FORBIDDEN, "You are not a member of the room")
        return await self._rooms.aliases_for_room(room_id)
