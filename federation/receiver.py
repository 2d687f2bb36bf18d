"""Inbound PDUs: the spec's checks, in the spec's order.

Server-Server API, "Checks performed on receipt of a PDU":
  1. format for the room version      -> drop
  2. signatures of the required servers -> drop
  3. content hash                        -> redact, then go on
  4. auth against the event's auth events -> reject
  5. auth against the state before it    -> reject
  6. auth against the current state      -> soft-fail (done by the room writer,
     under the room's lock, so it sees the state it will change)
A rejected event is stored and never shown; a dropped one is forgotten. Every
verdict other than "accepted" is logged with the event ID, origin and reason.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Iterable, Mapping

from twisted.internet.defer import DeferredLock

from federation import fetch
from federation.acl import SERVER_ACL, server_allowed
from federation.ports import EventVerifier, RoomEvents
from federation.protocol import identifiers
from federation.protocol.auth_rules import check_auth_events, check_auth_rules
from federation.protocol.errors import AuthError, MatrixError
from federation.protocol.events import CREATE_KEY, Event, StateKey
from federation.protocol.hashing import content_hash_matches, create_event_id_from_room_id
from federation.protocol.pdu_format import check_pdu_format
from federation.protocol.redaction import redact
from federation.protocol.room_versions import RoomVersion

logger = logging.getLogger(__name__)

# How far back /get_missing_events looks before we fall back to /state_ids.
MISSING_EVENTS_LIMIT = 10


class PduDropped(Exception):
    """The PDU fails format or signature checks: it is not stored at all."""


class Receiver:
    def __init__(self, rooms: RoomEvents, verifier: EventVerifier, client: Any,
                 server_name: str) -> None:
        self._rooms = rooms
        self._verifier = verifier
        self._client = client
        self._server_name = server_name
        self._locks: dict[str, DeferredLock] = defaultdict(DeferredLock)

    # Transactions --------------------------------------------------------------

    async def on_pdus(self, origin: str, pdus: list[Any]) -> dict[str, dict[str, str]]:
        """Process a transaction's PDUs in order; the answer maps each event ID
        to `{}` or `{"error": ...}` (a PDU's failure never fails the transaction)."""
        results: dict[str, dict[str, str]] = {}
        for raw in pdus:
            event_id, error = await self._on_pdu(origin, raw)
            if event_id is not None:
                results[event_id] = {"error": error} if error else {}
        return results

    async def _on_pdu(self, origin: str, raw: Any) -> tuple[str | None, str | None]:
        if not isinstance(raw, dict) or not isinstance(raw.get("room_id"), str):
            logger.info("dropped a PDU from %s: not an object with a room_id", origin)
            return None, None
        room_id = raw["room_id"]
        version = await self._rooms.room_version(room_id)
        if version is None:
            return None, "unknown room"  # without a room version there is no event ID
        denied = await self.acl_denies(room_id, origin, raw.get("sender"))
        if denied:
            logger.warning("refused PDU %s from %s in %s: the room's server ACL denies %s",
                           _event_id_or_none(raw, version), origin, room_id, denied)
            return _event_id_or_none(raw, version), "denied by the room's server ACL"
        try:
            event = await self.receive(origin, raw, version)
        except PduDropped as exc:
            return _event_id_or_none(raw, version), str(exc)
        except Exception:  # one PDU's bug must not fail the transaction
            logger.exception("failed to process a PDU from %s in %s", origin, room_id)
            return _event_id_or_none(raw, version), "internal error"
        if event.rejected_reason is not None:
            return event.event_id, event.rejected_reason
        return event.event_id, None

    async def acl_denies(self, room_id: str, origin: str, sender: Any) -> str | None:
        """The server the room's m.room.server_acl denies (origin or sender's), if any."""
        acl_id = (await self._rooms.current_state(room_id)).get((SERVER_ACL, ""))
        if acl_id is None:
            return None
        acl = (await self._rooms.get_events([acl_id])).get(acl_id)
        content = acl.content if acl is not None else None
        servers = [origin]
        if isinstance(sender, str) and identifiers.is_valid_user_id(sender):
            servers.append(identifiers.server_of(sender))
        return next((s for s in servers if not server_allowed(content, s)), None)

    # One PDU -------------------------------------------------------------------

    async def receive(self, origin: str, raw: Mapping[str, Any], version: RoomVersion,
                      *, fetch_missing: bool = True) -> Event:
        """Run one DAG event through every check and persist it."""
        event = await self.checked_event(origin, raw, version)
        async with self._locks[event.room_id]:
            return await self._process(origin, event, fetch_missing)

    async def receive_checked(self, origin: str, event: Event) -> Event:
        """`receive` for an event whose format and signatures are checked already."""
        async with self._locks[event.room_id]:
            return await self._process(origin, event, fetch_missing=True)

    async def verify_signatures(self, event: Event) -> None:
        try:
            await self._verifier.verify_event(event.pdu, event.room_version)
        except MatrixError as exc:
            raise PduDropped(f"bad signature: {exc.message}") from exc

    async def _process(self, origin: str, event: Event, fetch_missing: bool) -> Event:
        """Steps 4-6 for a format- and signature-checked event (room lock held)."""
        if await self._rooms.has_state(event.event_id):
            return (await self._rooms.get_events([event.event_id]))[event.event_id]
        event = await self._check_auth_events(origin, event)
        state_before = await self._state_before(origin, event, fetch_missing)
        event = _check_against(event, await self._auth_state(state_before),
                               "the state before it", origin)
        visible = await self._rooms.persist_remote(event, state_before)
        if event.rejected_reason is None and not visible:
            logger.warning("soft-failed %s (%s) from %s in %s: not allowed by the current state",
                           event.event_id, event.type, origin, event.room_id)
        return event

    async def checked_event(self, origin: str, raw: Mapping[str, Any], version: RoomVersion
                            ) -> Event:
        """Steps 1-3: format, signatures, content hash (redacted on mismatch)."""
        pdu = {k: v for k, v in raw.items() if k != "unsigned"}
        try:
            check_pdu_format(pdu, version)
        except MatrixError as exc:
            _log_dropped(origin, raw, version, f"format: {exc.message}")
            raise PduDropped(f"bad format: {exc.message}") from exc
        try:
            await self._verifier.verify_event(pdu, version)
        except MatrixError as exc:
            _log_dropped(origin, raw, version, f"signatures: {exc.message}")
            raise PduDropped(f"bad signature: {exc.message}") from exc
        if not content_hash_matches(pdu):
            logger.info("content hash mismatch on %s from %s: redacted",
                        _event_id_or_none(pdu, version), origin)
            pdu = redact(pdu, version)
        return Event(pdu, version)

    # Step 4: the event's own auth events ------------------------------------------

    async def _check_auth_events(self, origin: str, event: Event) -> Event:
        return _judge_by_auth_events(event, await self._auth_events_of(origin, event), origin)

    async def _auth_events_of(self, origin: str, event: Event) -> dict[str, Event]:
        wanted = event.auth_and_create_event_ids()
        known = await self._rooms.get_events(wanted)
        if len(known) < len(set(wanted)):
            await self._fetch_auth_chain(origin, event)
            known = await self._rooms.get_events(wanted)
        return known

    async def _fetch_auth_chain(self, origin: str, event: Event) -> None:
        """Fetch the event's auth chain from `origin` and store it as checked outliers."""
        try:
            chain = await fetch.fetch_event_auth(self._client, origin, event.room_id,
                                                 event.event_id)
        except Exception as exc:
            logger.info("could not fetch the auth chain of %s from %s: %s",
                        event.event_id, origin, exc)
            return
        await self.store_outliers(origin, chain, event.room_version)

    async def store_outliers(self, origin: str, pdus: Iterable[Any], version: RoomVersion
                             ) -> dict[str, Event]:
        """Check events we hold without their state (an auth chain, a join's
        state) against their own auth events, oldest first, and store them."""
        checked: dict[str, Event] = {}
        for raw in pdus:
            if not isinstance(raw, dict):
                continue
            try:
                event = await self.checked_event(origin, raw, version)
            except PduDropped:
                continue
            checked[event.event_id] = event
        known = await self._rooms.get_events(checked)
        ordered = sorted((e for e in checked.values() if e.event_id not in known),
                         key=lambda e: (e.depth, e.event_id))
        pool = {**known}
        for event in ordered:
            pool[event.event_id] = _judge_by_auth_events(event, pool, origin)
        if ordered:
            await self._rooms.persist_outliers([pool[e.event_id] for e in ordered])
        return {eid: pool.get(eid, e) for eid, e in checked.items()}

    # Backfill -----------------------------------------------------------------

    async def backfill(self, room_id: str, servers: list[str], limit: int) -> int:
        """History older than what we hold, from the first server that has it;
        each event checked as on receipt, stored below the room's head."""
        version = await self._rooms.room_version(room_id)
        from_ids = await self._rooms.backward_extremities(room_id)
        if version is None or not from_ids:
            return 0
        for server in servers:
            try:
                pdus = await fetch.fetch_backfill(self._client, server, room_id, from_ids,
                                                  max(1, min(limit, 100)))
            except Exception as exc:
                logger.info("backfill of %s from %s failed: %s", room_id, server, exc)
                continue
            return await self._store_backfilled(server, room_id, pdus, version)
        return 0

    async def _store_backfilled(self, origin: str, room_id: str, pdus: list[Any],
                                version: RoomVersion) -> int:
        events = []
        for raw in pdus:
            if not isinstance(raw, dict) or raw.get("room_id") != room_id:
                continue
            try:
                events.append(await self.checked_event(origin, raw, version))
            except PduDropped:
                continue
        stored = 0
        async with self._locks[room_id]:
            for event in sorted(events, key=lambda e: (e.depth, e.event_id)):
                if await self._rooms.has_state(event.event_id):
                    continue
                event = await self._check_auth_events(origin, event)
                state_before = await self._state_before(origin, event, fetch_missing=False)
                event = _check_against(event, await self._auth_state(state_before),
                                       "the state before it", origin)
                await self._rooms.persist_backfilled(event, state_before)
                stored += 1
        return stored

    # Step 5: the state before the event -----------------------------------------

    async def _state_before(self, origin: str, event: Event, fetch_missing: bool
                            ) -> dict[StateKey, str]:
        prevs = event.prev_event_ids
        missing = [p for p in prevs if not await self._rooms.has_state(p)]
        if missing and fetch_missing:
            await self._fetch_missing_prevs(origin, event)
            missing = [p for p in prevs if not await self._rooms.has_state(p)]
        states = []
        for prev in prevs:
            if prev in missing:
                state = await self._remote_state_after(origin, event, prev)
                if state is None:
                    continue
                states.append(state)
            else:
                states.append(await self._rooms.state_after(prev))
        if not states:
            # Nothing known before it: judge it by the room's current state.
            return await self._rooms.current_state(event.room_id)
        if len(states) == 1:
            return states[0]
        return await self._rooms.resolve(event.room_version, states)

    async def _fetch_missing_prevs(self, origin: str, event: Event) -> None:
        """`/get_missing_events` between our forward extremities and the event;
        what comes back goes through the whole pipeline, oldest first."""
        earliest = await self._rooms.forward_extremities(event.room_id)
        try:
            pdus = await fetch.fetch_missing_events(
                self._client, origin, event.room_id, earliest, [event.event_id],
                MISSING_EVENTS_LIMIT, 0)
        except Exception as exc:
            logger.info("get_missing_events for %s from %s failed: %s", event.event_id, origin,
                        exc)
            return
        candidates = []
        for raw in pdus:
            if isinstance(raw, dict) and raw.get("room_id") == event.room_id:
                candidates.append(raw)
        candidates.sort(key=lambda p: p.get("depth", 0) if isinstance(p.get("depth"), int) else 0)
        for raw in candidates:
            try:
                earlier = await self.checked_event(origin, raw, event.room_version)
            except PduDropped:
                continue
            await self._process(origin, earlier, fetch_missing=False)

    async def _remote_state_after(self, origin: str, event: Event, prev_id: str
                                  ) -> dict[StateKey, str] | None:
        """The state after a prev event we lack, asked of `origin` (/state_ids at
        it, plus the event itself); unknown events are fetched and checked."""
        try:
            state_ids, auth_ids = await fetch.fetch_state_ids(self._client, origin,
                                                              event.room_id, prev_id)
            wanted = set(state_ids) | set(auth_ids) | {prev_id}
            known = await self._rooms.get_events(wanted)
            pdus = [await fetch.fetch_event(self._client, origin, eid)
                    for eid in sorted(wanted - set(known))]
        except Exception as exc:
            logger.info("could not learn the state at %s from %s: %s", prev_id, origin, exc)
            return None
        events = {**known, **await self.store_outliers(origin, pdus, event.room_version)}
        state: dict[StateKey, str] = {}
        for eid in state_ids:
            if eid in events and events[eid].is_state():
                state[events[eid].state_key_tuple] = eid
        prev = events.get(prev_id)
        if prev is not None and prev.is_state() and prev.rejected_reason is None:
            state[prev.state_key_tuple] = prev_id
        return state

    async def _auth_state(self, state: Mapping[StateKey, str]) -> dict[StateKey, Event]:
        loaded = await self._rooms.get_events(state.values())
        return {k: loaded[eid] for k, eid in state.items() if eid in loaded}


# Verdicts --------------------------------------------------------------------


def _check_against(event: Event, state: Mapping[StateKey, Event], what: str, origin: str
                   ) -> Event:
    if event.rejected_reason is not None:
        return event
    try:
        check_auth_rules(event, state)
    except AuthError as exc:
        return _rejected(event, f"auth against {what}: rule {exc.rule}: {exc.message}", origin)
    return event


def _judge_by_auth_events(event: Event, pool: Mapping[str, Event], origin: str) -> Event:
    """Step 4: the event against its own auth events, found in `pool` (the
    store's, or an auth chain being checked oldest first)."""
    cited = [pool[eid] for eid in event.auth_event_ids if eid in pool]
    create = pool.get(_create_id(event)) if event.room_version.room_id_is_create_hash else None
    if len(cited) < len(set(event.auth_event_ids)):
        return _rejected(event, "auth events unavailable", origin)
    try:
        check_auth_events(event, cited, create)
        if event.is_create():
            return event
        state = {e.state_key_tuple: e for e in cited}
        if create is not None:
            state[CREATE_KEY] = create
        if any(e.rejected_reason for e in cited):
            return _rejected(event, "cites a rejected auth event", origin)
        check_auth_rules(event, state)
    except AuthError as exc:
        return _rejected(event, f"rule {exc.rule}: {exc.message}", origin)
    return event


def _rejected(event: Event, reason: str, origin: str) -> Event:
    logger.warning("rejected %s (%s) from %s in %s: %s", event.event_id, event.type, origin,
                   event.room_id, reason)
    return Event(event.pdu, event.room_version, event_id=event.event_id, rejected_reason=reason)


def _log_dropped(origin: str, raw: Mapping[str, Any], version: RoomVersion, reason: str
                 ) -> None:
    logger.warning("dropped PDU %s from %s in %s: %s", _event_id_or_none(raw, version), origin,
                   raw.get("room_id"), reason)


def _create_id(event: Event) -> str:
    return create_event_id_from_room_id(event.room_id)


def _event_id_or_none(raw: Mapping[str, Any], version: RoomVersion | None = None) -> str | None:
    """The event ID a PDU would have, for the transaction answer and logs."""
    if version is None:
        return None
    try:
        return Event({k: v for k, v in raw.items() if k != "unsigned"}, version).event_id
    except Exception:
        return None

