"""The stream's request methods, each the twin of a REST endpoint."""

from __future__ import annotations

from typing import Any

from ..handlers.auth import Requester
from ..handlers.presence import PresenceHandler
from ..handlers.receipts import ReceiptHandler
from ..handlers.to_device import ToDeviceHandler
from ..handlers.typing import TypingHandler
from ..handlers.ratelimit import RateLimiter
from ..handlers.room_events import RoomEventHandler
from .requests import RequestDispatcher, param


def add_room_methods(dispatcher: RequestDispatcher, room_events: RoomEventHandler,
                     limiter: RateLimiter | None = None) -> None:
    def limit(who: Requester) -> None:
        if limiter is not None:  # the same per-user bucket as the REST writes
            limiter.check(who.user_id)

    async def send(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """PUT /rooms/{room_id}/send/{event_type}/{txn_id}."""
        limit(who)
        event_id = await room_events.send_message(
            who.user_id, who.device_id, param(params, "room_id", str),
            param(params, "event_type", str), param(params, "txn_id", str),
            param(params, "content", dict))
        return {"event_id": event_id}

    async def state(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """PUT /rooms/{room_id}/state/{event_type}/{state_key}."""
        limit(who)
        event_id = await room_events.send_state(
            who.user_id, param(params, "room_id", str), param(params, "event_type", str),
            param(params, "state_key", str, ""), param(params, "content", dict))
        return {"event_id": event_id}

    dispatcher.add("send", send)
    dispatcher.add("state", state)


def add_ephemeral_methods(dispatcher: RequestDispatcher, typing: TypingHandler,
                          receipts: ReceiptHandler, presence: PresenceHandler,
                          to_device: ToDeviceHandler) -> None:
    async def set_typing(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """PUT /rooms/{room_id}/typing/{user_id} (user_id defaults to yourself)."""
        await typing.user_typing(who.user_id, param(params, "room_id", str),
                                 param(params, "user_id", str, who.user_id),
                                 param(params, "typing", bool), param(params, "timeout", int, None))
        return {}

    async def receipt(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """POST /rooms/{room_id}/receipt/{receipt_type}/{event_id}."""
        await receipts.send_receipt(who.user_id, param(params, "room_id", str),
                                    param(params, "receipt_type", str, "m.read"),
                                    param(params, "event_id", str),
                                    param(params, "thread_id", str, None))
        return {}

    async def set_presence(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """PUT /presence/{user_id}/status for yourself."""
        await presence.set_presence(who.user_id, who.device_id, who.user_id,
                                    param(params, "presence", str),
                                    param(params, "status_msg", str, None))
        return {}

    async def send_to_device(who: Requester, params: dict[str, Any]) -> dict[str, Any]:
        """PUT /sendToDevice/{event_type}/{txn_id}."""
        await to_device.send(who.user_id, who.device_id, param(params, "event_type", str),
                             param(params, "txn_id", str), param(params, "messages", dict))
        return {}

    dispatcher.add("typing", set_typing)
    dispatcher.add("receipt", receipt)
    dispatcher.add("presence", set_presence)
    dispatcher.add("to_device", send_to_device)
