"""Typing notifications, receipts and read markers."""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from ...handlers.auth import Authenticator
from ...handlers.receipts import RECEIPT_TYPES, ReceiptHandler
from ...handlers.typing import TypingHandler
from ..http import JsonRouter, optional, parse_json_body, require
from .common import requester, room_id_param, user_id_param


def register(router: JsonRouter, auth: Authenticator, typing: TypingHandler,
             receipts: ReceiptHandler) -> None:
    async def set_typing(request: Request, room_id: str, user_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request, allow_empty=False)
        await typing.user_typing(who.user_id, room_id_param(room_id), user_id_param(user_id),
                                 require(body, "typing", bool), optional(body, "timeout", int))
        return 200, {}

    async def send_receipt(request: Request, room_id: str, receipt_type: str, event_id: str
                           ) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request)
        await receipts.send_receipt(who.user_id, room_id_param(room_id), receipt_type, event_id,
                                    optional(body, "thread_id", str))
        return 200, {}

    async def read_markers(request: Request, room_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request)
        markers = {kind: optional(body, kind, str) for kind in RECEIPT_TYPES}
        await receipts.set_read_markers(who.user_id, room_id_param(room_id),
                                        {k: v for k, v in markers.items() if v})
        return 200, {}

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        r = f"{prefix}/rooms/{{room_id}}"
        router.add("PUT", f"{r}/typing/{{user_id}}", set_typing)
        router.add("POST", f"{r}/receipt/{{receipt_type}}/{{event_id}}", send_receipt)
        router.add("POST", f"{r}/read_markers", read_markers)
