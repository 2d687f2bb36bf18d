"""History via `/messages`: paging back on demand, and filling a sync's gap.

When an incremental sync's timeline is `limited` (more events happened than the
filter's limit, e.g. after a long disconnection), the events between what we
had and the new batch are fetched backwards from its `prev_batch` until an
event we know, and put in front of the batch, so nothing is lost.
"""

from __future__ import annotations

import logging
from typing import Any

from client.sdk.http import CLIENT_V3, HttpApi, path_segment
from client.sdk.model import ClientModel, Event, RoomState

logger = logging.getLogger(__name__)

PAGE_LIMIT = 100
MAX_GAP_EVENTS = 5000


async def messages(http: HttpApi, room_id: str, from_token: str | None, direction: str = "b",
                   limit: int = PAGE_LIMIT) -> dict[str, Any]:
    params = {"dir": direction, "limit": str(limit)}
    if from_token:
        params["from"] = from_token
    return dict(await http.request(
        "GET", f"{CLIENT_V3}/rooms/{path_segment(room_id)}/messages", params=params))


async def paginate_back(http: HttpApi, room: RoomState, limit: int) -> list[Event]:
    """Up to `limit` events older than the room's oldest known one, oldest first."""
    added: list[Event] = []
    while len(added) < limit:
        page = await messages(http, room.room_id, room.prev_batch, "b",
                              min(PAGE_LIMIT, limit - len(added)))
        chunk = list(page.get("chunk") or [])
        added[:0] = room.prepend_history(chunk)
        room.prev_batch = page.get("end")
        if not chunk or room.prev_batch is None:
            break
    return added


async def fill_gaps(http: HttpApi, model: ClientModel, body: dict[str, Any]) -> None:
    """Put the missed events in front of every limited timeline of a sync body."""
    for room_id, section in ((body.get("rooms") or {}).get("join") or {}).items():
        timeline = section.get("timeline") or {}
        room = model.rooms.get(room_id)
        if not timeline.get("limited") or room is None or not room.timeline:
            continue
        missed = await _events_since_known(http, room, timeline.get("prev_batch"))
        if missed:
            logger.info("filled a gap of %d events in %s", len(missed), room_id)
        timeline["events"] = missed + list(timeline.get("events") or [])


async def _events_since_known(http: HttpApi, room: RoomState, token: str | None
                              ) -> list[Event]:
    """Events between the room's newest known event and `token`, oldest first."""
    found: list[Event] = []
    while token and len(found) < MAX_GAP_EVENTS:
        page = await messages(http, room.room_id, token, "b")
        chunk = list(page.get("chunk") or [])
        for event in chunk:
            if room.has_event(str(event.get("event_id"))):
                found.reverse()
                return found
            found.append(event)
        token = page.get("end")
        if not chunk:
            break
    found.reverse()
    return found
