"""Writing events: /send, /state and /redact."""

from __future__ import annotations

from typing import Any

from federation.protocol import canonical_json, identifiers
from federation.protocol.errors import Codes, MatrixError
from federation.protocol.events import MEMBER
from federation.protocol.pdu_format import MAX_PDU_BYTES
from federation.protocol.power_levels import named_level, user_power_level

import schemas

from ..rooms.writer import NewEvent, RoomWriter
from ..storage.events import EventStore
from ..storage.rooms import RoomStore

_MAX_TYPE_BYTES = 255
# The spec sets no limit; ours keeps the (user, device, path) key of a stored
# transaction within PostgreSQL's B-tree row limit (2704 bytes).
_MAX_TXN_ID_BYTES = 1024


def _check_key(value: str, limit: int, what: str, empty_ok: bool = False) -> None:
    """Types, state keys and txn IDs are stored as text: bounded, no NUL."""
    if (not value and not empty_ok) or "\x00" in value or len(value.encode("utf-8")) > limit:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid {what}")


def _check_type(event_type: str) -> None:
    _check_key(event_type, _MAX_TYPE_BYTES, "event type")


def _check_txn_id(txn_id: str) -> None:
    _check_key(txn_id, _MAX_TXN_ID_BYTES, "transaction ID")


def check_event_content(event_type: str, content: dict[str, Any]) -> None:
    # Content alone over the PDU limit can never fit; the builder checks the rest.
    if len(canonical_json.encode(content)) > MAX_PDU_BYTES:
        raise MatrixError(413, Codes.TOO_LARGE, "Event too large")
    try:
        schemas.validate_event_content(event_type, content)
    except schemas.SchemaError as exc:
        raise MatrixError(400, Codes.BAD_JSON, str(exc)) from exc


class RoomEventHandler:
    def __init__(self, writer: RoomWriter, events: EventStore, rooms: RoomStore) -> None:
        self._writer = writer
        self._events = events
        self._rooms = rooms

    async def send_message(self, user_id: str, device_id: str, room_id: str, event_type: str,
                           txn_id: str, content: dict[str, Any]) -> str:
        _check_type(event_type)
        _check_txn_id(txn_id)
        # A retried txnId is answered by the writer (committed or still in flight).
        txn = (user_id, device_id, f"send/{room_id}/{event_type}/{txn_id}")
        if event_type == "m.room.redaction":
            target = content.get("redacts")
            if not identifiers.is_valid_event_id(target):
                raise MatrixError(400, Codes.BAD_JSON, "m.room.redaction needs content.redacts")
            return await self._redact(user_id, room_id, target, content, txn, txn_id)
        check_event_content(event_type, content)
        persisted = await self._writer.send(room_id, NewEvent(
            event_type, user_id, content, txn=txn, txn_id=txn_id))
        return persisted.event.event_id

    async def send_state(self, user_id: str, room_id: str, event_type: str, state_key: str,
                         content: dict[str, Any]) -> str:
        _check_type(event_type)
        _check_key(state_key, 255, "state key", empty_ok=True)
        check_event_content(event_type, content)
        if event_type == "m.room.canonical_alias":
            await self._check_canonical_alias(room_id, content)
        state = await self._writer.current_state_events(room_id)
        existing = state.get((event_type, state_key))
        if existing is not None and existing.sender == user_id and existing.content == content \
                and event_type != MEMBER:
            return existing.event_id  # identical state: answer the existing event, as Synapse does
        persisted = await self._writer.send(room_id, NewEvent(
            event_type, user_id, content, state_key=state_key))
        return persisted.event.event_id

    async def _check_canonical_alias(self, room_id: str, content: dict[str, Any]) -> None:
        aliases = [content.get("alias")] if content.get("alias") is not None else []
        alt = content.get("alt_aliases", [])
        if not isinstance(alt, list):
            raise MatrixError(400, Codes.INVALID_PARAM, "alt_aliases must be a list")
        for alias in aliases + alt:
            if not isinstance(alias, str) or not identifiers.is_valid_room_alias(alias):
                raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid alias {alias!r}")
            found = await self._rooms.get_alias(alias)
            if found is None or found[0] != room_id:
                raise MatrixError(400, Codes.BAD_ALIAS, f"{alias} does not point to this room")

    async def redact(self, user_id: str, device_id: str, room_id: str, target: str,
                     txn_id: str, reason: str | None) -> str:
        _check_txn_id(txn_id)
        if not identifiers.is_valid_event_id(target):
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid event ID")
        txn = (user_id, device_id, f"redact/{room_id}/{target}/{txn_id}")
        earlier = await self._events.get_txn_response(*txn)
        if earlier is not None:
            return str(earlier["event_id"])
        content: dict[str, Any] = {}
        if reason is not None:
            content["reason"] = reason
        return await self._redact(user_id, room_id, target, content, txn, txn_id)

    async def _redact(self, user_id: str, room_id: str, target: str, content: dict[str, Any],
                      txn: tuple[str, str, str], txn_id: str) -> str:
        """Redactions need the redact level unless you redact your own event
        (spec: handling redactions); the target must be in this room."""
        stored = await self._events.get_event(target)
        if stored is not None and stored.event.room_id == room_id \
                and stored.event.sender != user_id:
            state = await self._writer.current_state_events(room_id)
            if state and user_power_level(user_id, state) < named_level(state, "redact"):
                raise MatrixError(403, Codes.FORBIDDEN, "You cannot redact other users' events")
        if stored is not None and stored.event.room_id != room_id:
            raise MatrixError(404, Codes.NOT_FOUND, "Event not found in this room")
        body = {k: v for k, v in content.items() if k != "redacts"}
        persisted = await self._writer.send(room_id, NewEvent(
            "m.room.redaction", user_id, body, redacts=target, txn=txn, txn_id=txn_id))
        return persisted.event.event_id
