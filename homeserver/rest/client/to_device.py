"""Send-to-device messaging: PUT /sendToDevice/{eventType}/{txnId}."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from ...handlers.auth import Authenticator
from ...handlers.to_device import ToDeviceHandler
from ..http import JsonRouter, parse_json_body
from .common import requester


def register(router: JsonRouter, auth: Authenticator, to_device: ToDeviceHandler) -> None:
    async def send(request: Request, event_type: str, txn_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request, allow_empty=False)
        await to_device.send(who.user_id, who.device_id, event_type, txn_id,
                             body["messages"])
        return 200, {}

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        router.add("PUT", f"{prefix}/sendToDevice/{{event_type}}/{{txn_id}}", send,
                   body="client/sendToDevice")
