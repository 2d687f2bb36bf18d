"""The stream's request methods, each the twin of a REST endpoint.

The dispatcher has checked each method's params against its schema
(`schemas/requests/stream/<method>.json`) before the method runs; IDs get
the REST paths' grammar checks here, with the same errors.
"""

from __future__ import annotations

from typing import Any

from ..handlers.auth import Requester
from ..handlers.presence import PresenceHandler
from ..handlers.ratelimit import RateLimiter
from ..handlers.receipts import ReceiptHandler
from ..handlers.room_events import RoomEventHandler
from ..handlers.to_device import ToDeviceHandler
from ..handlers.typing import TypingHandler
from ..rest.client.common import room_id_param, user_id_param
from .requests import RequestDispatcher


def add_room_methods(dispatcher: RequestDispatcher, room_events: RoomEventHandler,
                     limiter: RateLimiter | None = None) -> None:
    def limit(who: Requester) -> None:
        if limiter is not None:  # the same per-user bucket as the REST writes
            limiter.check(who.user_id)

    async def send(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """PUT /rooms/{room_id}/send/{event_type}/{txn_id}."""
        limit(who)
        event_id = await room_events.send_message(
            who.user_id, who.device_id, room_id_param(params["room_id"]),
            params["event_type"], params["txn_id"], params["content"])
        return {"event_id": event_id}

    async def state(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """PUT /rooms/{room_id}/state/{event_type}/{state_key}."""
        limit(who)
        event_id = await room_events.send_state(
            who.user_id, room_id_param(params["room_id"]), params["event_type"],
            params.get("state_key", ""), params["content"])
        return {"event_id": event_id}

    dispatcher.add("send", send, params="stream/send")
    dispatcher.add("state", state, params="stream/state")


def add_ephemeral_methods(dispatcher: RequestDispatcher, typing: TypingHandler,
                          receipts: ReceiptHandler, presence: PresenceHandler,
                          to_device: ToDeviceHandler) -> None:
    async def set_typing(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """PUT /rooms/{room_id}/typing/{user_id} (user_id defaults to yourself)."""
        await typing.user_typing(who.user_id, room_id_param(params["room_id"]),
                                 user_id_param(params.get("user_id", who.user_id)),
                                 params["typing"], params.get("timeout"))
        return {}

    async def receipt(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """POST /rooms/{room_id}/receipt/{receipt_type}/{event_id}."""
        await receipts.send_receipt(who.user_id, room_id_param(params["room_id"]),
                                    params.get("receipt_type", "m.read"), params["event_id"],
                                    params.get("thread_id"))
        return {}

    async def set_presence(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """PUT /presence/{user_id}/status for yourself."""
        await presence.set_presence(who.user_id, who.device_id, who.user_id,
                                    params["presence"], params.get("status_msg"))
        return {}

    async def send_to_device(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """PUT /sendToDevice/{event_type}/{txn_id}."""
        await to_device.send(who.user_id, who.device_id, params["event_type"],
                             params["txn_id"], params["messages"])
        return {}

    dispatcher.add("typing", set_typing, params="stream/typing")
    dispatcher.add("receipt", receipt, params="stream/receipt")
    dispatcher.add("presence", set_presence, params="stream/presence")
    dispatcher.add("to_device", send_to_device, params="stream/to_device")
