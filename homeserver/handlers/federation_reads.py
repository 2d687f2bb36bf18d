"""Serving the room DAG to other servers (spec: server-server API, "Retrieving
events" and "Backfilling and retrieving missing events"): `/event`, `/state`,
`/state_ids`, `/event_auth`, `/backfill`, `/get_missing_events`.

Who may read: a server with a joined member in the room (now, or at the event
asked about), or anyone when the room is world-readable; never a server the
room's `m.room.server_acl` denies. PDUs go out exactly as stored, redacted
when redacted; an event a server could not see under the history visibility
at that point goes out redacted too (Synapse's `filter_events_for_server`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from federation.acl import SERVER_ACL, server_allowed
from federation.protocol.errors import Codes, MatrixError
from federation.protocol.events import MEMBER, Event, StateKey
from federation.protocol.identifiers import server_of
from federation.protocol.redaction import redact

from ..clock import Clock
from ..rooms.state_reader import StateReader
from ..rooms.writer import RoomWriter
from ..storage.event_graph import EventGraphStore
from ..storage.events import EventStore, StoredEvent

logger = logging.getLogger(__name__)

HISTORY_VISIBILITY_KEY: StateKey = ("m.room.history_visibility", "")
MAX_BACKFILL = 100
MAX_MISSING_EVENTS = 100
# Event IDs one request may name (`v`, earliest_events, latest_events).
MAX_REQUEST_IDS = 200


@dataclass(frozen=True)
class MissingEventsQuery:
    room_id: str
    earliest: list[str]
    latest: list[str]
    limit: int = 10
    min_depth: int = 0


def _not_found(what: str) -> MatrixError:
    return MatrixError(404, Codes.NOT_FOUND, what)


def _on_server(user_id: str, server: str) -> bool:
    if not user_id.endswith(":" + server):  # cheap test first: rooms have many members
        return False
    try:
        return server_of(user_id) == server
    except (ValueError, IndexError):
        return False


def _visibility(state: dict[StateKey, Event]) -> str:
    event = state.get(HISTORY_VISIBILITY_KEY)
    value = event.content.get("history_visibility") if event is not None else None
    # Missing or not understood: "assumed to be shared".
    return value if value in ("world_readable", "shared", "invited", "joined") else "shared"


def pdu_json(stored: StoredEvent) -> dict[str, Any]:
    """The PDU as stored (signatures and all), redacted if a redaction applies."""
    if stored.redacted_by:
        return redact(stored.event.pdu, stored.event.room_version)
    return dict(stored.event.pdu)


class FederationReadHandler:
    def __init__(self, events: EventStore, graph: EventGraphStore, state: StateReader,
                 writer: RoomWriter, clock: Clock, server_name: str) -> None:
        self._events = events
        self._graph = graph
        self._state = state
        self._writer = writer
        self._clock = clock
        self._server_name = server_name

    # Endpoints ----------------------------------------------------------------------

    async def event(self, origin: str, event_id: str) -> dict[str, Any]:
        """`GET /event/{eventId}`: one PDU (soft-failed ones too, never rejected ones)."""
        stored = await self._served_event(event_id)
        await self.check_access(origin, stored.event.room_id, at=stored)
        return self._transaction(await self._pdus_for(origin, [stored]))

    async def state_ids(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """`GET /state_ids/{roomId}?event_id=`: the state before the event, and its auth chain."""
        state_ids = await self._state_before(origin, room_id, event_id)
        chain = await self._graph.auth_chain_ids(state_ids)
        return {"pdu_ids": sorted(state_ids), "auth_chain_ids": sorted(chain)}

    async def state(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """`GET /state/{roomId}?event_id=`: as `/state_ids`, with the full PDUs."""
        state_ids = await self._state_before(origin, room_id, event_id)
        chain = await self._graph.auth_chain_ids(state_ids)
        return {"pdus": await self._stored_pdus(state_ids),
                "auth_chain": await self._stored_pdus(chain)}

    async def event_auth(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        """`GET /event_auth/{roomId}/{eventId}`: the event's full auth chain."""
        stored = await self._served_event(event_id, room_id)
        await self.check_access(origin, room_id, at=stored)
        chain = await self._graph.auth_chain_ids([event_id])
        return {"auth_chain": await self._stored_pdus(chain)}

    async def backfill(self, origin: str, room_id: str, from_ids: list[str], limit: int
                       ) -> dict[str, Any]:
        """`GET /backfill/{roomId}?v=&limit=`: the given events and their predecessors."""
        _check_id_count(from_ids)
        await self.check_access(origin, room_id)
        ids = await self._graph.backfill_ids(room_id, from_ids, min(limit, MAX_BACKFILL))
        stored = await self._events.get_stored(ids)
        return self._transaction(
            await self._pdus_for(origin, [stored[eid] for eid in ids if eid in stored]))

    async def missing_events(self, origin: str, query: MissingEventsQuery) -> dict[str, Any]:
        """`POST /get_missing_events/{roomId}`: what lies between earliest and latest."""
        _check_id_count(query.earliest)
        _check_id_count(query.latest)
        await self.check_access(origin, query.room_id)
        ids = await self._graph.missing_event_ids(
            query.room_id, query.earliest, query.latest,
            max(0, min(query.limit, MAX_MISSING_EVENTS)), query.min_depth)
        stored = await self._events.get_stored(ids)
        return {"events": await self._pdus_for(origin,
                                               [stored[eid] for eid in ids if eid in stored])}

    # Access -------------------------------------------------------------------------

    async def check_access(self, origin: str, room_id: str, at: StoredEvent | None = None
                           ) -> None:
        """403 unless `origin` may read the room (404 if we don't know it)."""
        current = await self._writer.current_state_events(room_id)
        if not current:
            raise _not_found("Unknown room")
        acl = current.get((SERVER_ACL, ""))
        if not server_allowed(acl.content if acl is not None else None, origin):
            logger.info("server ACL of %s denies a read by %s", room_id, origin)
            raise MatrixError(403, Codes.FORBIDDEN, "Server is banned from this room")
        if self._has_joined_member(current, origin) or _visibility(current) == "world_readable":
            return
        if at is not None and \
                self._has_joined_member(await self._state_after(at, origin), origin):
            return
        logger.info("refused a read of %s by %s: no member there", room_id, origin)
        raise MatrixError(403, Codes.FORBIDDEN, "Host not in room")

    @staticmethod
    def _has_joined_member(state: dict[StateKey, Event], origin: str) -> bool:
        return any(key[0] == MEMBER and event.membership == "join"
                   and _on_server(key[1], origin) for key, event in state.items())

    async def _state_after(self, stored: StoredEvent, origin: str) -> dict[StateKey, Event]:
        """What of the state after the event judges `origin`'s access: the history
        visibility and the members of `origin` (not the whole state)."""
        ids = await self._state.state_after(stored.event.event_id)
        wanted = {key: eid for key, eid in ids.items() if key == HISTORY_VISIBILITY_KEY
                  or key[0] == MEMBER and _on_server(key[1], origin)}
        loaded = await self._events.get_events(wanted.values())
        return {key: loaded[eid] for key, eid in wanted.items() if eid in loaded}

    async def _can_see(self, origin: str, stored: StoredEvent) -> bool:
        """History visibility for a server: any of its users allowed at the event."""
        state = await self._state_after(stored, origin)
        visibility = _visibility(state)
        if visibility in ("world_readable", "shared"):
            return True
        for key, event in state.items():
            if key[0] != MEMBER:
                continue
            if event.membership == "join" or \
                    (event.membership == "invite" and visibility == "invited"):
                return True
        return False

    # Events -------------------------------------------------------------------------

    async def _served_event(self, event_id: str, room_id: str | None = None) -> StoredEvent:
        """A stored event we may hand out: not rejected, in `room_id` if given."""
        stored = await self._events.get_event(event_id)
        if stored is None or stored.event.rejected_reason is not None or \
                (room_id is not None and stored.event.room_id != room_id):
            raise _not_found("Event not found")
        return stored

    async def _state_before(self, origin: str, room_id: str, event_id: str) -> list[str]:
        stored = await self._served_event(event_id, room_id)
        if stored.outlier:  # we hold it without the state at it
            raise _not_found("State at this event is not known")
        await self.check_access(origin, room_id, at=stored)
        return list((await self._state.state_before(event_id)).values())

    async def _stored_pdus(self, event_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = sorted(event_ids)
        stored = await self._events.get_stored(ids)
        return [pdu_json(stored[eid]) for eid in ids
                if eid in stored and stored[eid].event.rejected_reason is None]

    async def _pdus_for(self, origin: str, events: list[StoredEvent]) -> list[dict[str, Any]]:
        pdus = []
        for stored in events:
            pdu = pdu_json(stored)
            if not stored.redacted_by and not await self._can_see(origin, stored):
                pdu = redact(pdu, stored.event.room_version)
            pdus.append(pdu)
        return pdus

    def _transaction(self, pdus: list[dict[str, Any]]) -> dict[str, Any]:
        return {"origin": self._server_name, "origin_server_ts": self._clock.time_ms(),
                "pdus": pdus}


def _check_id_count(event_ids: list[str]) -> None:
    if len(event_ids) > MAX_REQUEST_IDS:
        raise MatrixError(400, Codes.INVALID_PARAM,
                          f"Too many event IDs (at most {MAX_REQUEST_IDS})")
