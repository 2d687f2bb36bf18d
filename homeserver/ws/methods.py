"""The stream's request methods, each the twin of a REST endpoint."""

from __future__ import annotations

from typing import Any

from ..handlers.auth import Requester
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
