"""Joining, inviting, leaving, kicking, banning (spec: room membership)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError
from federation.protocol.events import JOIN_RULES_KEY, MEMBER, Event
from federation.protocol.power_levels import named_level, user_power_level

from ..rooms.writer import NewEvent, PersistedEvent, RoomWriter
from ..storage.rooms import RoomStore
from .profiles import ProfileHandler

logger = logging.getLogger(__name__)


class RemoteMembership(Protocol):
    """Membership of rooms other servers hold (federation's joining side)."""

    async def join_remote(self, room_id: str, user_id: str, servers: list[str],
                          extra_content: dict[str, Any] | None = None) -> str: ...

    async def leave_remote(self, room_id: str, user_id: str, servers: list[str]) -> None: ...

    async def knock_remote(self, room_id: str, user_id: str, servers: list[str],
                           reason: str | None = None) -> None: ...

    async def invite_remote(self, event: Event, invite_room_state: list[dict[str, Any]]
                            ) -> Event: ...

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]: ...


class MembershipHandler:
    def __init__(self, writer: RoomWriter, rooms: RoomStore, profiles: ProfileHandler,
                 server_name: str) -> None:
        self._writer = writer
        self._rooms = rooms
        self._profiles = profiles
        self._server_name = server_name
        # Set by the composition root when federation is on.
        self.remote: RemoteMembership | None = None

    async def resolve_room_and_servers(self, room_id_or_alias: str) -> tuple[str, list[str]]:
        """A room ID, and servers to join it through (an alias's servers)."""
        if room_id_or_alias.startswith("#"):
            if not identifiers.is_valid_room_alias(room_id_or_alias):
                raise MatrixError(400, Codes.INVALID_PARAM, "Invalid room alias")
            if identifiers.server_of(room_id_or_alias) != self._server_name and self.remote:
                return await self.remote.resolve_alias(room_id_or_alias)
            found = await self._rooms.get_alias(room_id_or_alias)
            if found is None:
                raise MatrixError(404, Codes.NOT_FOUND, "Room alias not found")
            return found[0], []
        if not identifiers.is_valid_room_id(room_id_or_alias):
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid room ID or alias")
        return room_id_or_alias, []

    async def _server_in_room(self, room_id: str) -> bool:
        """Whether one of our users is joined, so we hold the room's DAG."""
        state = await self._writer.current_state_events(room_id)
        return any(t == MEMBER and e.membership == "join"
                   and identifiers.server_of(key) == self._server_name
                   for (t, key), e in state.items())

    async def _servers_to_ask(self, room_id: str, user_id: str, via: list[str]) -> list[str]:
        """`via`, then whoever invited the user, then the room ID's server (v1-v11)."""
        servers = list(via)
        state = await self._writer.current_state_events(room_id)
        mine = state.get((MEMBER, user_id))
        if mine is not None:
            servers.append(identifiers.server_of(mine.sender))
        if ":" in room_id:
            servers.append(room_id.split(":", 1)[1])
        servers += sorted({identifiers.server_of(k) for (t, k), e in state.items()
                           if t == MEMBER and e.membership == "join"})
        return servers

    async def _require_room(self, room_id: str) -> None:
        if await self._writer.snapshot(room_id) is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Unknown room")

    async def _member_event(self, room_id: str, sender: str, target: str, membership: str,
                            extra: dict[str, Any] | None = None,
                            countersign: Any = None) -> PersistedEvent:
        content: dict[str, Any] = {"membership": membership}
        if membership in ("join", "invite"):
            content.update(await self._profiles.member_content(target))
        if extra:
            content.update({k: v for k, v in extra.items() if v is not None})
        return await self._writer.send(room_id, NewEvent(MEMBER, sender, content, state_key=target,
                                                         countersign=countersign))

    async def join(self, user_id: str, room_id: str, reason: str | None = None,
                   via: list[str] | None = None) -> str:
        if self.remote is not None and not await self._server_in_room(room_id):
            servers = await self._servers_to_ask(room_id, user_id, via or [])
            return await self.remote.join_remote(room_id, user_id, servers, {"reason": reason})
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
        countersign = None
        if identifiers.server_of(target) != self._server_name:
            if self.remote is None:
                raise MatrixError(403, Codes.FORBIDDEN, "Federation is off on this server")
            remote = self.remote
            stripped = await self._invite_room_state(room_id, sender)

            async def countersign(event: Event) -> Event:
                return await remote.invite_remote(event, stripped)

        await self._member_event(room_id, sender, target, "invite", extra, countersign)

    async def _invite_room_state(self, room_id: str, sender: str) -> list[dict[str, Any]]:
        """The stripped state an invitee's server shows before they join."""
        state = await self._writer.current_state_events(room_id)
        keys = [("m.room.create", ""), ("m.room.join_rules", ""), ("m.room.name", ""),
                ("m.room.avatar", ""), ("m.room.canonical_alias", ""),
                ("m.room.encryption", ""), ("m.room.topic", ""), (MEMBER, sender)]
        return [{"type": e.type, "state_key": e.state_key, "sender": e.sender,
                 "content": e.content} for k in keys if (e := state.get(k)) is not None]

    async def knock(self, user_id: str, room_id: str, reason: str | None = None,
                    via: list[str] | None = None) -> None:
        if self.remote is not None and not await self._server_in_room(room_id):
            servers = await self._servers_to_ask(room_id, user_id, via or [])
            await self.remote.knock_remote(room_id, user_id, servers, reason)
            return
        await self._require_room(room_id)
        await self._member_event(room_id, user_id, user_id, "knock", {"reason": reason})

    async def leave(self, user_id: str, room_id: str, reason: str | None = None) -> None:
        if self.remote is not None and not await self._server_in_room(room_id):
            # Rejecting a remote invite (or retracting a knock): ask a resident.
            servers = await self._servers_to_ask(room_id, user_id, [])
            await self.remote.leave_remote(room_id, user_id, servers)
            return
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
