"""Answering other servers' queries about our users and aliases (spec:
server-server API, "Querying for information", "Device management",
"End-to-End Encryption"): `/query/directory`, `/query/profile`,
`/user/devices`, `/user/keys/query`, `/user/keys/claim`.

Only our own users and aliases are answered; the client API's handlers do
the work, so both APIs give the same answers.
"""

from __future__ import annotations

from typing import Any

from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError

from ..storage.device_lists import DeviceListStore
from ..storage.e2e_keys import EndToEndKeyStore
from ..storage.users import UserStore
from .e2e_keys import E2eKeysHandler
from .profiles import ProfileHandler
from .room_aliases import RoomAliasHandler

PROFILE_FIELDS = ("displayname", "avatar_url")


class FederationQueryHandler:
    def __init__(self, aliases: RoomAliasHandler, profiles: ProfileHandler, users: UserStore,
                 keys: E2eKeysHandler, key_store: EndToEndKeyStore,
                 device_lists: DeviceListStore, server_name: str) -> None:
        self._aliases = aliases
        self._profiles = profiles
        self._users = users
        self._keys = keys
        self._key_store = key_store
        self._device_lists = device_lists
        self._server_name = server_name

    def _local_user(self, user_id: str) -> str:
        """400 unless `user_id` is a valid ID of one of our users."""
        if not identifiers.is_valid_user_id(user_id):
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid user ID")
        if identifiers.server_of(user_id) != self._server_name:
            raise MatrixError(400, Codes.INVALID_PARAM, "User is not hosted on this homeserver")
        return user_id

    async def directory(self, alias: str) -> dict[str, Any]:
        """`{room_id, servers}` of one of our aliases (404 for others' aliases)."""
        return await self._aliases.resolve(alias)

    async def profile(self, user_id: str, field: str | None) -> dict[str, Any]:
        """The whole profile, or only `field` (absent when unset)."""
        profile = await self._profiles.get_profile(self._local_user(user_id))
        if field is None:
            return profile
        if field not in PROFILE_FIELDS:
            raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown profile field {field!r}")
        return {field: profile[field]} if field in profile else {}

    async def user_devices(self, user_id: str) -> dict[str, Any]:
        """`{user_id, stream_id, devices}`: every device, with keys where uploaded."""
        self._local_user(user_id)
        keys = {d.device_id: d.keys for d in await self._key_store.query_devices(user_id, [])}
        devices = []
        for device in await self._users.get_devices(user_id):
            entry: dict[str, Any] = {"device_id": device.device_id}
            if device.device_id in keys:
                entry["keys"] = keys[device.device_id]
            if device.display_name is not None:
                entry["device_display_name"] = device.display_name
            devices.append(entry)
        return {"user_id": user_id, "stream_id": await self._device_lists.latest_change(user_id),
                "devices": devices}

    async def query_keys(self, body: dict[str, Any]) -> dict[str, Any]:
        """`/user/keys/query`: device keys of our users (others' are left out)."""
        wanted = self._local_part(body, "device_keys")
        return {"device_keys": (await self._keys.query({"device_keys": wanted}))["device_keys"]}

    async def claim_keys(self, body: dict[str, Any]) -> dict[str, Any]:
        """`/user/keys/claim`: one-time (or fallback) keys of our users' devices."""
        wanted = self._local_part(body, "one_time_keys")
        claimed = await self._keys.claim({"one_time_keys": wanted})
        return {"one_time_keys": claimed["one_time_keys"]}

    def _local_part(self, body: dict[str, Any], name: str) -> dict[str, Any]:
        value = body.get(name)
        if not isinstance(value, dict):
            raise MatrixError(400, Codes.BAD_JSON if name in body else Codes.MISSING_PARAM,
                              f"{name} must be an object")
        return {user_id: wanted for user_id, wanted in value.items()
                if identifiers.is_valid_user_id(user_id)
                and identifiers.server_of(user_id) == self._server_name}
