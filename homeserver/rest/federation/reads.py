"""Reading the room DAG over federation: `/event`, `/state`, `/state_ids`,
`/event_auth`, `/backfill`, `/get_missing_events` (all X-Matrix authenticated)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.web.http import Request

from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError

from ...handlers.federation_reads import (
    MAX_BACKFILL,
    FederationReadHandler,
    MissingEventsQuery,
)
from ..http import JsonRouter, parse_json_body, query_arg, query_int

V1 = "/_matrix/federation/v1"

Authenticate = Callable[[Request], Awaitable[str]]


def room_id_param(room_id: str) -> str:
    if not identifiers.is_valid_room_id(room_id):
        raise MatrixError(400, Codes.INVALID_PARAM, "Invalid room ID")
    return room_id


def event_id_param(event_id: str | None, name: str = "event_id") -> str:
    if event_id is None:
        raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameter: {name}")
    if not identifiers.is_valid_event_id(event_id):
        raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid event ID in {name}")
    return event_id


def _event_ids(values: list[str], name: str) -> list[str]:
    return [event_id_param(v, name) for v in values]


def _backfill_from(request: Request) -> list[str]:
    raw = request.args.get(b"v") or []
    if not raw:
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: v")
    ids = []
    for value in raw:
        try:
            ids.append(event_id_param(value.decode("utf-8"), "v"))
        except UnicodeDecodeError as exc:
            raise MatrixError(400, Codes.INVALID_PARAM, "v is not UTF-8") from exc
    return ids


def _missing_events_query(room_id: str, body: dict[str, Any]) -> MissingEventsQuery:
    """The query in a body matching its schema; the spec's defaults."""
    return MissingEventsQuery(
        room_id=room_id,
        earliest=_event_ids(body["earliest_events"], "earliest_events"),
        latest=_event_ids(body["latest_events"], "latest_events"),
        limit=body.get("limit", 10),
        min_depth=body.get("min_depth", 0))


def register(router: JsonRouter, authenticate: Authenticate,
             reads: FederationReadHandler) -> None:
    async def get_event(request: Request, event_id: str) -> tuple[int, Any]:
        origin = await authenticate(request)
        return 200, await reads.event(origin, event_id_param(event_id))

    async def get_state(request: Request, room_id: str) -> tuple[int, Any]:
        origin = await authenticate(request)
        event_id = event_id_param(query_arg(request, "event_id"))
        return 200, await reads.state(origin, room_id_param(room_id), event_id)

    async def get_state_ids(request: Request, room_id: str) -> tuple[int, Any]:
        origin = await authenticate(request)
        event_id = event_id_param(query_arg(request, "event_id"))
        return 200, await reads.state_ids(origin, room_id_param(room_id), event_id)

    async def get_event_auth(request: Request, room_id: str, event_id: str) -> tuple[int, Any]:
        origin = await authenticate(request)
        return 200, await reads.event_auth(origin, room_id_param(room_id),
                                           event_id_param(event_id))

    async def get_backfill(request: Request, room_id: str) -> tuple[int, Any]:
        origin = await authenticate(request)
        limit = query_int(request, "limit", maximum=MAX_BACKFILL)
        if limit is None:
            raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: limit")
        return 200, await reads.backfill(origin, room_id_param(room_id), _backfill_from(request),
                                         max(limit, 0))

    async def post_missing_events(request: Request, room_id: str) -> tuple[int, Any]:
        origin = await authenticate(request)
        body = parse_json_body(request, allow_empty=False)
        query = _missing_events_query(room_id_param(room_id), body)
        return 200, await reads.missing_events(origin, query)

    router.add("GET", f"{V1}/event/{{event_id}}", get_event)
    router.add("GET", f"{V1}/state/{{room_id}}", get_state)
    router.add("GET", f"{V1}/state_ids/{{room_id}}", get_state_ids)
    router.add("GET", f"{V1}/event_auth/{{room_id}}/{{event_id}}", get_event_auth)
    router.add("GET", f"{V1}/backfill/{{room_id}}", get_backfill)
    router.add("POST", f"{V1}/get_missing_events/{{room_id}}", post_missing_events,
               body="federation/getMissingPreviousEvents")
