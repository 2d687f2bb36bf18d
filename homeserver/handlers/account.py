"""Registration (user-interactive auth with m.login.dummy), login, logout, devices."""

from __future__ import annotations

import inspect
import secrets
from typing import Any

from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError

from ..clock import Clock
from ..storage.users import UserStore
from .auth import Authenticator, check_password, hash_password, new_access_token, new_device_id

MAX_PASSWORD = 512
UIA_SESSION_TTL_MS = 30 * 60 * 1000


def _check_types(body: dict[str, Any], kinds: dict[str, type]) -> None:
    """400 M_INVALID_PARAM for a documented field of the wrong type (absent or
    null is fine: every field checked here is optional)."""
    for key, kind in kinds.items():
        value = body.get(key)
        if value is not None and (not isinstance(value, kind) or
                                  (kind is not bool and isinstance(value, bool))):
            raise MatrixError(400, Codes.INVALID_PARAM, f"{key} must be a {kind.__name__}")


# The device fields /register and /login share (spec: both endpoints).
_DEVICE_FIELDS = {"device_id": str, "initial_device_display_name": str, "refresh_token": bool}


class UIAChallenge(MatrixError):
    """The first 401 of user-interactive auth: flows and a session, no errcode."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.extra)


class AccountHandler:
    def __init__(self, users: UserStore, auth: Authenticator, clock: Clock, server_name: str,
                 registration_enabled: bool) -> None:
        self._users = users
        self._auth = auth
        self._clock = clock
        self._server_name = server_name
        self.registration_enabled = registration_enabled
        self._uia_sessions: dict[str, int] = {}
        self.on_logout: list[Any] = []

    def user_id_for(self, localpart_or_id: str) -> str:
        if localpart_or_id.startswith("@"):
            return localpart_or_id
        return f"@{localpart_or_id.lower()}:{self._server_name}"

    def _validate_localpart(self, localpart: str) -> str:
        user_id = f"@{localpart}:{self._server_name}"
        if not identifiers.is_valid_strict_localpart(localpart) or \
                not identifiers.is_valid_user_id(user_id, strict=True):
            raise MatrixError(400, Codes.INVALID_USERNAME,
                              "User ID may only contain a-z, 0-9, and . _ = - / +")
        return user_id

    async def check_available(self, localpart: str) -> None:
        user_id = self._validate_localpart(localpart)
        if await self._users.get_account(user_id) is not None:
            raise MatrixError(400, Codes.USER_IN_USE, "User ID already taken")

    def _uia_challenge(self) -> MatrixError:
        session = secrets.token_urlsafe(16)
        now = self._clock.time_ms()
        self._uia_sessions = {s: t for s, t in self._uia_sessions.items()
                              if now - t < UIA_SESSION_TTL_MS}
        self._uia_sessions[session] = now
        return UIAChallenge(401, Codes.FORBIDDEN, "Additional authentication required",
                            flows=[{"stages": ["m.login.dummy"]}], params={}, session=session)

    async def register(self, body: dict[str, Any], kind: str) -> dict[str, Any]:
        if kind == "guest":
            raise MatrixError(403, Codes.FORBIDDEN, "Guest access is disabled")
        if kind != "user":
            raise MatrixError(400, Codes.INVALID_PARAM, "Unknown kind")
        if not self.registration_enabled:
            raise MatrixError(403, Codes.FORBIDDEN, "Registration has been disabled")
        username = body.get("username")
        password = body.get("password")
        if username is not None and not isinstance(username, str):
            raise MatrixError(400, Codes.INVALID_PARAM, "username must be a string")
        if password is not None and (not isinstance(password, str) or len(password) > MAX_PASSWORD):
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid password")
        _check_types(body, {**_DEVICE_FIELDS, "inhibit_login": bool, "auth": dict})
        localpart = (username or secrets.token_hex(6)).lower()
        user_id = self._validate_localpart(localpart)
        if await self._users.get_account(user_id) is not None:
            raise MatrixError(400, Codes.USER_IN_USE, "User ID already taken")
        auth = body.get("auth")
        if not isinstance(auth, dict) or auth.get("type") != "m.login.dummy":
            # A UIA endpoint never succeeds without auth; a dummy stage with no
            # session (as matrix-nio sends) creates the session on the spot.
            if isinstance(auth, dict) and auth.get("type") is not None:
                raise MatrixError(401, Codes.FORBIDDEN, "Unsupported auth stage")
            raise self._uia_challenge()
        session = auth.get("session")
        if session is not None and session not in self._uia_sessions:
            raise MatrixError(401, Codes.FORBIDDEN, "Unknown UIA session")
        self._uia_sessions.pop(session or "", None)
        password_hash = await hash_password(password) if password else None
        if not await self._users.create_account(user_id, password_hash, self._clock.time_ms(),
                                                displayname=localpart):
            raise MatrixError(400, Codes.USER_IN_USE, "User ID already taken")
        if body.get("inhibit_login") is True:
            return {"user_id": user_id}
        return await self._login_device(user_id, body.get("device_id"),
                                        body.get("initial_device_display_name"))

    async def _login_device(self, user_id: str, device_id: Any, display_name: Any
                            ) -> dict[str, Any]:
        if not isinstance(device_id, str) or not device_id or len(device_id) > 255:
            device_id = new_device_id()
        token = new_access_token()
        await self._users.create_device_and_token(
            user_id, device_id, display_name if isinstance(display_name, str) else None, token,
            self._clock.time_ms())
        return {"user_id": user_id, "access_token": token, "device_id": device_id,
                "home_server": self._server_name}

    async def login(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("type") != "m.login.password":
            raise MatrixError(400, Codes.UNKNOWN, "Unknown login type")
        user = self._identifier(body)
        password = body.get("password")
        _check_types(body, {**_DEVICE_FIELDS, "password": str})
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            raise MatrixError(403, Codes.FORBIDDEN, "Invalid username or password")
        user_id = self.user_id_for(user)
        account = await self._users.get_account(user_id)
        if account is None or account.deactivated or \
                not await check_password(account.password_hash, password):
            raise MatrixError(403, Codes.FORBIDDEN, "Invalid username or password")
        return await self._login_device(user_id, body.get("device_id"),
                                        body.get("initial_device_display_name"))

    @staticmethod
    def _identifier(body: dict[str, Any]) -> str:
        identifier = body.get("identifier")
        if isinstance(identifier, dict):
            if identifier.get("type") != "m.id.user":
                raise MatrixError(400, Codes.UNKNOWN, "Unsupported identifier type")
            user = identifier.get("user")
        else:
            user = body.get("user")
        if not isinstance(user, str) or not user:
            raise MatrixError(400, Codes.MISSING_PARAM, "Missing user identifier")
        return user

    async def logout(self, user_id: str, device_id: str | None) -> None:
        hashes = await self._users.delete_devices(user_id, [device_id] if device_id else None)
        self._auth.forget_tokens(hashes)
        for callback in self.on_logout:
            result = callback(user_id, device_id)
            if inspect.isawaitable(result):  # e.g. deleting the device's E2E keys
                await result

    async def devices(self, user_id: str) -> list[dict[str, Any]]:
        return [{"device_id": d.device_id, "display_name": d.display_name,
                 "last_seen_ts": d.last_seen_ts, "last_seen_ip": d.last_seen_ip}
                for d in await self._users.get_devices(user_id)]

    async def register_from_shell(self, localpart: str, password: str, admin: bool) -> str:
        user_id = self._validate_localpart(localpart.lower())
        if not await self._users.create_account(user_id, await hash_password(password),
                                                self._clock.time_ms(), is_admin=admin,
                                                displayname=localpart):
            raise MatrixError(400, Codes.USER_IN_USE, "User ID already taken")
        return user_id
