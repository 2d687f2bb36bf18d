"""Client config: global and per-room account data."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from ...handlers.account_data import AccountDataHandler
from ...handlers.auth import Authenticator
from ..http import JsonRouter, parse_json_body
from .common import requester, room_id_param


def register(router: JsonRouter, auth: Authenticator, account_data: AccountDataHandler) -> None:
    async def put_global(request: Request, user_id: str, data_type: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        content = parse_json_body(request, allow_empty=False)
        await account_data.set_account_data(who.user_id, user_id, "", data_type, content)
        return 200, {}

    async def get_global(request: Request, user_id: str, data_type: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, await account_data.get_account_data(who.user_id, user_id, "", data_type)

    async def put_room(request: Request, user_id: str, room_id: str, data_type: str
                       ) -> tuple[int, Any]:
        who = await requester(auth, request)
        content = parse_json_body(request, allow_empty=False)
        await account_data.set_account_data(who.user_id, user_id, room_id_param(room_id),
                                            data_type, content)
        return 200, {}

    async def get_room(request: Request, user_id: str, room_id: str, data_type: str
                       ) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, await account_data.get_account_data(who.user_id, user_id,
                                                        room_id_param(room_id), data_type)

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        u = f"{prefix}/user/{{user_id}}"
        router.add("PUT", f"{u}/account_data/{{data_type}}", put_global,
                   body="client/setAccountData")
        router.add("GET", f"{u}/account_data/{{data_type}}", get_global)
        router.add("PUT", f"{u}/rooms/{{room_id}}/account_data/{{data_type}}", put_room,
                   body="client/setAccountDataPerRoom")
        router.add("GET", f"{u}/rooms/{{room_id}}/account_data/{{data_type}}", get_room)
