"""Profiles: display names and avatars, propagated to every joined room."""

from __future__ import annotations

import logging
from typing import Any

from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError

from ..storage.rooms import RoomStore
from ..storage.users import UserStore

logger = logging.getLogger(__name__)

MAX_DISPLAYNAME = 256
MAX_AVATAR_URL = 1000


class ProfileHandler:
    def __init__(self, users: UserStore, rooms: RoomStore, server_name: str) -> None:
        self._users = users
        self._rooms = rooms
        self._server_name = server_name
        self.membership: Any = None  # set by the composition root (MembershipHandler)
        self.on_profile_change: list[Any] = []
        # Asks other servers for their users' profiles (federation.remote_queries.
        # RemoteQueries); set by the composition root when federation is on.
        self.remote: Any = None

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        if identifiers.server_of(user_id) != self._server_name:
            if self.remote is None:
                raise MatrixError(404, Codes.NOT_FOUND, "Profile not found")
            return dict(await self.remote.profile(user_id))
        account = await self._users.get_account(user_id)
        if account is None or account.deactivated:
            raise MatrixError(404, Codes.NOT_FOUND, "Profile not found")
        profile: dict[str, Any] = {}
        if account.displayname is not None:
            profile["displayname"] = account.displayname
        if account.avatar_url is not None:
            profile["avatar_url"] = account.avatar_url
        return profile

    async def set_field(self, requester_id: str, user_id: str, field: str, value: Any) -> None:
        if requester_id != user_id:
            raise MatrixError(403, Codes.FORBIDDEN, "Cannot set another user's profile")
        limit = MAX_DISPLAYNAME if field == "displayname" else MAX_AVATAR_URL
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid {field}")
        await self._users.set_profile_field(user_id, field, value)
        if self.membership is not None:
            for room_id in await self._rooms.rooms_for_user(user_id, ("join",)):
                try:
                    await self.membership.refresh_profile(room_id, user_id)
                except MatrixError as exc:
                    logger.info("profile update not sent to %s: %s", room_id, exc.message)
        for callback in self.on_profile_change:
            callback(user_id)

    async def member_content(self, user_id: str) -> dict[str, Any]:
        """displayname and avatar_url for a member event we write."""
        account = await self._users.get_account(user_id)
        content: dict[str, Any] = {}
        if account is not None:
            if account.displayname is not None:
                content["displayname"] = account.displayname
            if account.avatar_url is not None:
                content["avatar_url"] = account.avatar_url
        return content
