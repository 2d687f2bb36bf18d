"""/versions, /capabilities, /register, /login, /logout, /whoami, /devices, /profile."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from federation.protocol.errors import Codes, MatrixError
from federation.protocol.room_versions import KNOWN_ROOM_VERSIONS

from ...handlers.account import AccountHandler
from ...handlers.auth import Authenticator
from ...handlers.profiles import ProfileHandler
from ...handlers.ratelimit import RateLimiters
from ..http import JsonRouter, parse_json_body, query_arg
from .common import client_ip, limited_requester, requester, user_id_param

SUPPORTED_VERSIONS = ["r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8",
                      "v1.9", "v1.10"]


def register(router: JsonRouter, auth: Authenticator, accounts: AccountHandler,
             profiles: ProfileHandler, default_room_version: str,
             limits: RateLimiters | None = None) -> None:
    async def versions(request: Request) -> tuple[int, Any]:
        return 200, {"versions": SUPPORTED_VERSIONS, "unstable_features": {}}

    async def capabilities(request: Request) -> tuple[int, Any]:
        await requester(auth, request)
        return 200, {"capabilities": {
            "m.room_versions": {"default": default_room_version,
                                "available": {v: "stable" for v in KNOWN_ROOM_VERSIONS}},
            "m.change_password": {"enabled": False},
            "m.set_displayname": {"enabled": True},
            "m.set_avatar_url": {"enabled": True},
            "m.3pid_changes": {"enabled": False},
        }}

    async def login_flows(request: Request) -> tuple[int, Any]:
        return 200, {"flows": [{"type": "m.login.password"}]}

    async def login(request: Request) -> tuple[int, Any]:
        if limits is not None:
            limits.login.check(client_ip(request))  # every attempt counts, per IP
        return 200, await accounts.login(parse_json_body(request))

    async def register_user(request: Request) -> tuple[int, Any]:
        ip = client_ip(request)
        if limits is not None:
            # Only registrations count (as in Synapse): a UIA round trip is free.
            limits.registration.check(ip, update=False)
        body = parse_json_body(request)
        result = await accounts.register(body, query_arg(request, "kind", "user") or "user")
        if limits is not None:
            limits.registration.record(ip)
        return 200, result

    async def available(request: Request) -> tuple[int, Any]:
        username = query_arg(request, "username")
        if not username:
            raise MatrixError(400, Codes.MISSING_PARAM, "Missing username")
        await accounts.check_available(username)
        return 200, {"available": True}

    async def logout(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        await accounts.logout(who.user_id, who.device_id)
        return 200, {}

    async def logout_all(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        await accounts.logout(who.user_id, None)
        return 200, {}

    async def whoami(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, {"user_id": who.user_id, "device_id": who.device_id, "is_guest": False}

    async def devices(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, {"devices": await accounts.devices(who.user_id)}

    async def device(request: Request, device_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        for entry in await accounts.devices(who.user_id):
            if entry["device_id"] == device_id:
                return 200, entry
        raise MatrixError(404, Codes.NOT_FOUND, "Device not found")

    async def get_profile(request: Request, user_id: str) -> tuple[int, Any]:
        user_id_param(user_id)
        return 200, await profiles.get_profile(user_id)

    async def get_profile_field(request: Request, user_id: str, field: str) -> tuple[int, Any]:
        user_id_param(user_id)
        profile = await profiles.get_profile(user_id)
        if field not in profile:
            raise MatrixError(404, Codes.NOT_FOUND, f"No {field} set")
        return 200, {field: profile[field]}

    async def set_profile_field(request: Request, user_id: str, field: str) -> tuple[int, Any]:
        who = await limited_requester(auth, request, limits.messages if limits else None)
        body = parse_json_body(request)
        if field not in ("displayname", "avatar_url"):
            raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown profile field {field}")
        await profiles.set_field(who.user_id, user_id, field, body.get(field))
        return 200, {}

    async def set_displayname(request: Request, user_id: str) -> tuple[int, Any]:
        return await set_profile_field(request, user_id, "displayname")

    async def set_avatar_url(request: Request, user_id: str) -> tuple[int, Any]:
        return await set_profile_field(request, user_id, "avatar_url")

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        router.add("GET", f"{prefix}/capabilities", capabilities)
        router.add("GET", f"{prefix}/login", login_flows)
        router.add("POST", f"{prefix}/login", login, body="client/login")
        router.add("POST", f"{prefix}/register", register_user, body="client/register")
        router.add("GET", f"{prefix}/register/available", available)
        router.add("POST", f"{prefix}/logout", logout)
        router.add("POST", f"{prefix}/logout/all", logout_all)
        router.add("GET", f"{prefix}/account/whoami", whoami)
        router.add("GET", f"{prefix}/devices", devices)
        router.add("GET", f"{prefix}/devices/{{device_id}}", device)
        router.add("GET", f"{prefix}/profile/{{user_id}}", get_profile)
        router.add("GET", f"{prefix}/profile/{{user_id}}/{{field}}", get_profile_field)
        router.add("PUT", f"{prefix}/profile/{{user_id}}/displayname", set_displayname,
                   body="client/setDisplayName")
        router.add("PUT", f"{prefix}/profile/{{user_id}}/avatar_url", set_avatar_url,
                   body="client/setAvatarUrl")
        router.add("PUT", f"{prefix}/profile/{{user_id}}/{{field}}", set_profile_field,
                   body="client/setProfileField")
    router.add("GET", "/_matrix/client/versions", versions)
