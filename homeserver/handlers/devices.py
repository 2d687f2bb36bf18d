"""Device management (spec: client-server API, "Device management"):
renaming and deleting a user's devices."""

from __future__ import annotations

import logging
from typing import Any

from federation.protocol.errors import Codes, MatrixError

from ..storage.users import UserStore
from .account import AccountHandler
from .auth import Requester
from .ui_auth import PasswordReauth

logger = logging.getLogger(__name__)

# As Synapse: longer names are refused rather than cut.
MAX_DISPLAY_NAME_LEN = 100
MAX_DEVICES_PER_REQUEST = 1000


class DeviceHandler:
    def __init__(self, users: UserStore, accounts: AccountHandler, reauth: PasswordReauth
                 ) -> None:
        self._users = users
        self._accounts = accounts
        self._reauth = reauth

    async def rename(self, who: Requester, device_id: str, body: dict[str, Any]) -> None:
        name = body.get("display_name")
        if name is not None and not isinstance(name, str):
            raise MatrixError(400, Codes.INVALID_PARAM, "display_name must be a string")
        if name is not None and len(name) > MAX_DISPLAY_NAME_LEN:
            raise MatrixError(400, Codes.TOO_LARGE, "Device display name is too long "
                              f"(max {MAX_DISPLAY_NAME_LEN})")
        known = {d.device_id for d in await self._users.get_devices(who.user_id)}
        if device_id not in known:
            raise MatrixError(404, Codes.NOT_FOUND, "Unknown device")
        if "display_name" in body:  # absent: unchanged
            await self._users.update_device(who.user_id, device_id, name)

    async def delete(self, who: Requester, device_ids: Any, auth: Any) -> None:
        """Delete devices after user-interactive auth; unknown devices are no error
        (spec: "removed, or had been removed previously")."""
        if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
            raise MatrixError(400, Codes.INVALID_PARAM, "devices must be a list of device IDs")
        if len(device_ids) > MAX_DEVICES_PER_REQUEST:
            raise MatrixError(400, Codes.INVALID_PARAM, "Too many devices")
        await self._reauth.authenticate(who.user_id, auth)
        known = {d.device_id for d in await self._users.get_devices(who.user_id)}
        for device_id in dict.fromkeys(device_ids):
            if device_id in known:
                # The logout path also drops the tokens, to-device queue and E2E keys.
                await self._accounts.logout(who.user_id, device_id)
                logger.info("%s deleted device %s", who.user_id, device_id)
