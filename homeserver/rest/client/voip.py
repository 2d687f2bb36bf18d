"""`GET /voip/turnServer`: TURN credentials for calls."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from ...handlers.auth import Authenticator
from ...handlers.voip import VoipHandler
from ..http import JsonRouter
from .common import requester


def register(router: JsonRouter, auth: Authenticator, voip: VoipHandler) -> None:
    async def turn_server(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, voip.turn_server(who.user_id)

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        router.add("GET", f"{prefix}/voip/turnServer", turn_server)
