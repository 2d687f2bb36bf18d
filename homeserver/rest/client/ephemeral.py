"""Typing notifications, receipts and read markers."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from ...handlers.auth import Authenticator
from ...handlers.receipts import RECEIPT_TYPES, ReceiptHandler
from ...handlers.typing import TypingHandler
from ..http import JsonRouter, parse_json_body
from .common import requester, room_id_param, user_id_param


def register(router: JsonRouter, auth: Authenticator, typing: TypingHandler,
             receipts: ReceiptHandler) -> None:
    async def set_typing(request: Request, room_id: str, user_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request, allow_empty=False)
        await typing.user_typing(who.user_id, room_id_param(room_id), user_id_param(user_id),
                                 body["typing"], body.get("timeout"))
        return 200, {}

    async def send_receipt(request: Request, room_id: str, receipt_type: str, event_id: str
                           ) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request)
        await receipts.send_receipt(who.user_id, room_id_param(room_id), receipt_type, event_id,
                                    body.get("thread_id"))
        return 200, {}

    async def read_markers(request: Request, room_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request)
        markers = {kind: body.get(kind) for kind in RECEIPT_TYPES}
        await receipts.set_read_markers(who.user_id, room_id_param(room_id),
                                        {k: v for k, v in markers.items() if v})
        return 200, {}

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        r = f"{prefix}/rooms/{{room_id}}"
        router.add("PUT", f"{r}/typing/{{user_id}}", set_typing, body="client/setTyping")
        router.add("POST", f"{r}/receipt/{{receipt_type}}/{{event_id}}", send_receipt,
                   body="client/postReceipt")
        router.add("POST", f"{r}/read_markers", read_markers, body="client/setReadMarker")
