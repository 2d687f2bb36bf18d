"""Presence: PUT and GET /presence/{userId}/status."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from ...handlers.auth import Authenticator
from ...handlers.presence import PresenceHandler
from ..http import JsonRouter, parse_json_body
from .common import requester, user_id_param


def register(router: JsonRouter, auth: Authenticator, presence: PresenceHandler) -> None:
    async def set_status(request: Request, user_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request, allow_empty=False)
        await presence.set_presence(who.user_id, who.device_id, user_id_param(user_id),
                                    body["presence"], body.get("status_msg"))
        return 200, {}

    async def get_status(request: Request, user_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, await presence.get_presence(who.user_id, user_id_param(user_id))

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        router.add("PUT", f"{prefix}/presence/{{user_id}}/status", set_status,
                   body="client/setPresence")
        router.add("GET", f"{prefix}/presence/{{user_id}}/status", get_status)
