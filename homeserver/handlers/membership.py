"""Joining, inviting, leaving, kicking, banning (spec: room membership)."""

from __future__ import annotations

import logging
from typing import Any

from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError
from federation.protocol.events import JOIN_RULES_KEY, MEMBER
from federation.protocol.power_levels import named_level, user_power_level

from ..rooms.writer import NewEvent, PersistedEvent, RoomWriter
from ..storage.rooms import RoomStore
from .profiles import ProfileHandler

logger = logging.getLogger(__name__)


class MembershipHandler:
    def __init__(self, writer: RoomWriter, rooms: RoomStore, profiles: ProfileHandler,
                 server_name: str) -> None:
        self._writer = writer
        self._rooms = rooms
        self._profiles = profiles
        self._server_name = server_name

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            if not identifiers.is_valid_room_alias(room_id_or_alias):
                raise MatrixError(400, Codes.INVALID_PARAM, "Invalid room alias")
            found = await self._rooms.get_alias(room_id_or_alias)
            if found is None:
                raise MatrixError(404, Codes.NOT_FOUND, "Room alias not found")
            return found[0]
        if not identifiers.is_valid_room_id(room_id_or_alias):
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid room ID or alias")
        return room_id_or_alias

    async def _require_room(self, room_id: str) -> None:
        if await self._writer.snapshot(room_id) is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Unknown room")

    async def _member_event(self, room_id: str, sender: str, target: str, membership: str,
                            extra: dict[str, Any] | None = None) -> PersistedEvent:
        content: dict[str, Any] = {"membership": membership}
        if membership in ("join", "invite"):
            content.update(await self._profiles.member_content(target))
        if extra:
            content.update({k: v for k, v in extra.items() if v is not None})
        return await self._writer.send(room_id, NewEvent(MEMBER, sender, content, state_key=target))

    async def join(self, user_id: str, room_id: str, reason: str | None = None) -> str:
        await self._require_room(room_id)
        state = await self._writer.current_state_events(room_id)
        current = state.get((MEMBER, user_id))
        extra: dict[str, Any] = {"reason": reason}
        if current is None or current.membership not in ("join", "invite"):
            authoriser = await self._restricted_join_authoriser(room_id, user_id, state)
            if authoriser is not None:
                extra["join_authorised_via_users_server"] = authoriser
        await self._member_event(room_id, user_id, user_id, "join", extra)
        return room_id

    async def _restricted_join_authoriser(self, room_id: str, user_id: str,
                                          state: dict[Any, Any]) -> str | None:
        """For restricted rooms: a local joined user able to invite, if the user
        is joined to one of the rooms the join rules allow."""
        rules = state.get(JOIN_RULES_KEY)
        if rules is None or rules.content.get("join_rule") not in ("restricted",
                                                                  "knock_restricted"):
            return None
        allowed_rooms = [a.get("room_id") for a in rules.content.get("allow") or []
                         if isinstance(a, dict) and a.get("type") == "m.room_membership"]
        mine = await self._rooms.rooms_for_user(user_id, ("join",))
        if not any(r in mine for r in allowed_rooms):
            raise MatrixError(403, Codes.FORBIDDEN, "You are not a member of a room that "
                              "grants access to this one")
        invite_level = named_level(state, "invite")
        for (event_type, member), event in state.items():
            if event_type != MEMBER or event.membership != "join":
                continue
            if not member.endswith(":" + self._server_name):
                continue
            if user_power_level(member, state) >= invite_level:
                return member
        raise MatrixError(403, Codes.FORBIDDEN, "No local user can authorise this join")

    async def invite(self, sender: str, room_id: str, target: str, reason: str | None = None,
                     is_direct: bool = False) -> None:
        if not identifiers.is_valid_user_id(target):
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid user ID")
        await self._require_room(room_id)
        state = await self._writer.current_state_events(room_id)
        existing = state.get((MEMBER, target))
        if existing is not None and existing.membership == "invite":
            return  # inviting someone already invited is not an error
        extra: dict[str, Any] = {"reason": reason}
        if is_direct:
            extra["is_direct"] = True
        await self._member_event(room_id, sender, target, "invite", extra)

    async def leave(self, user_id: str, room_id: str, reason: str | None = None) -> None:
        await self._require_room(room_id)
        await self._member_event(room_id, user_id, user_id, "leave", {"reason": reason})

    async def kick(self, sender: str, room_id: str, target: str, reason: str | None) -> None:
        await self._require_room(room_id)
        state = await self._writer.current_state_events(room_id)
        existing = state.get((MEMBER, target))
        if existing is None or existing.membership in ("leave", "ban"):
            raise MatrixError(403, Codes.FORBIDDEN, "The target user is not in the room")
        await self._member_event(room_id, sender, target, "leave", {"reason": reason})

    async def ban(self, sender: str, room_id: str, target: str, reason: str | None) -> None:
        if not identifiers.is_valid_user_id(target):
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid user ID")
        await self._require_room(room_id)
        await self._member_event(room_id, sender, target, "ban", {"reason": reason})

    async def unban(self, sender: str, room_id: str, target: str, reason: str | None) -> None:
        await self._require_room(room_id)
        state = await self._writer.current_state_events(room_id)
        existing = state.get((MEMBER, target))
        if existing is None or existing.membership != "ban":
            raise MatrixError(403, Codes.FORBIDDEN, "The target user is not banned")
        await self._member_event(room_id, sender, target, "leave", {"reason": reason})

    async def joined_rooms(self, user_id: str) -> list[str]:
        return sorted(await self._rooms.rooms_for_user(user_id, ("join",)))

    async def forget(self, user_id: str, room_id: str) -> None:
        membership = (await self._rooms.rooms_for_user(
            user_id, ("join", "invite", "knock", "leave", "ban"))).get(room_id)
        if membership is None:
            raise MatrixError(404, Codes.NOT_FOUND, "You were never in this room")
        if membership in ("join", "invite", "knock"):
            raise MatrixError(400, Codes.UNKNOWN, "You must leave the room before forgetting it")
        await self._rooms.forget(user_id, room_id)

    async def refresh_profile(self, room_id: str, user_id: str) -> None:
        await self._member_event(room_id, user_id, user_id, "join")
