"""PDU format checks (receipt step 1) and building new PDUs.

A PDU is checked against its room version's event format before anything
else: required fields and their types, byte limits, and canonical JSON.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import canonical_json, identifiers
from .errors import Codes, InvalidEventError
from .events import Event
from .room_versions import RoomVersion
from .signing import ServerKey, hash_sign_and_identify_new_event

MAX_PDU_BYTES = 65536
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
MAX_DEPTH = 2**53 - 1
_BYTE_LIMITED = ("type", "state_key", "sender", "room_id")


def check_pdu_format(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    """Raise InvalidEventError unless `pdu` is a well-formed PDU for `room_version`."""
    if not isinstance(pdu, Mapping):
        raise InvalidEventError("PDU is not an object")
    canonical_json.check_canonical(pdu)
    _check_size(len(canonical_json.encode_unchecked(dict(pdu))))
    _check_fields(pdu, room_version)


def _check_size(size: int) -> None:
    if size > MAX_PDU_BYTES:
        raise InvalidEventError(f"PDU is {size} bytes, over {MAX_PDU_BYTES}", Codes.TOO_LARGE, 413)


def _check_fields(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    _check_field_types(pdu)
    _check_room_id(pdu, room_version)
    _check_event_references(pdu, room_version)
    for field in _BYTE_LIMITED:
        value = pdu.get(field)
        if isinstance(value, str) and len(value.encode("utf-8")) > identifiers.MAX_ID_BYTES:
            raise InvalidEventError(f"{field} is over 255 bytes")
    if not identifiers.is_valid_user_id(pdu["sender"]):
        raise InvalidEventError("sender is not a valid user ID")
    if not 0 <= pdu["depth"] <= MAX_DEPTH:
        raise InvalidEventError("depth out of range")
    if pdu.get("type") == "m.room.redaction" and not room_version.redacts_in_content:
        if not isinstance(pdu.get("redacts"), str):
            raise InvalidEventError("v10 redaction lacks a top-level redacts")


_REQUIRED_TYPES: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "sender": str,
    "origin_server_ts": int,
    "content": dict,
    "depth": int,
    "prev_events": list,
    "auth_events": list,
    "hashes": dict,
    "signatures": dict,
}


def _check_field_types(pdu: Mapping[str, Any]) -> None:
    for field, expected in _REQUIRED_TYPES.items():
        value = pdu.get(field)
        if value is None:
            raise InvalidEventError(f"PDU lacks {field}")
        if not isinstance(value, expected) or isinstance(value, bool):
            raise InvalidEventError(f"{field} has the wrong type")
    if "state_key" in pdu and not isinstance(pdu["state_key"], str):
        raise InvalidEventError("state_key is not a string")
    if "unsigned" in pdu and not isinstance(pdu["unsigned"], dict):
        raise InvalidEventError("unsigned is not an object")
    if not isinstance(pdu["hashes"].get("sha256"), str):
        raise InvalidEventError("hashes.sha256 missing")
    for server, sigs in pdu["signatures"].items():
        if not isinstance(sigs, dict) or not all(isinstance(s, str) for s in sigs.values()):
            raise InvalidEventError(f"signatures of {server} malformed")


def _check_room_id(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    is_create = pdu.get("type") == "m.room.create" and pdu.get("state_key") == ""
    room_id = pdu.get("room_id")
    if room_version.room_id_is_create_hash and is_create:
        if "room_id" in pdu:
            raise InvalidEventError("v12 create events have no room_id")
        return
    if not isinstance(room_id, str) or not identifiers.is_valid_room_id(room_id):
        raise InvalidEventError("room_id missing or invalid")
    if room_version.room_id_is_create_hash and not identifiers.is_valid_hash_id(room_id):
        raise InvalidEventError("v12 room IDs are the create event's hash")


def _check_event_references(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    prev, auth = pdu["prev_events"], pdu["auth_events"]
    if len(prev) > MAX_PREV_EVENTS:
        raise InvalidEventError("too many prev_events")
    if len(auth) > MAX_AUTH_EVENTS:
        raise InvalidEventError("too many auth_events")
    for ref in (*prev, *auth):
        if not identifiers.is_valid_event_id(ref):
            raise InvalidEventError(f"invalid event ID reference {ref!r}")


def build_event(
    room_version: RoomVersion,
    key: ServerKey,
    *,
    event_type: str,
    sender: str,
    content: Mapping[str, Any],
    room_id: str | None,
    prev_events: list[str],
    auth_events: list[str],
    depth: int,
    origin_server_ts: int,
    state_key: str | None = None,
    redacts: str | None = None,
    unsigned: Mapping[str, Any] | None = None,
) -> Event:
    """Build, hash and sign a new PDU we originate, and check its format."""
    pdu: dict[str, Any] = {
        "type": event_type,
        "sender": sender,
        "content": dict(content),
        "prev_events": list(prev_events),
        "auth_events": list(auth_events),
        "depth": min(depth, MAX_DEPTH),
        "origin_server_ts": origin_server_ts,
    }
    if room_id is not None:
        pdu["room_id"] = room_id
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None and event_type == "m.room.redaction":
        # v11+ keeps `redacts` in content; v10 at the top level.
        if room_version.redacts_in_content:
            pdu["content"].setdefault("redacts", redacts)
        else:
            pdu["redacts"] = redacts
    # check_pdu_format's checks, each canonical encoding made once: what
    # signing adds is our own base64 and names, so checking `pdu` checks `signed`.
    canonical_json.check_canonical(pdu)
    canonical_pdu = canonical_json.encode_unchecked(pdu)
    signed, event_id = hash_sign_and_identify_new_event(pdu, canonical_pdu, key, room_version)
    _check_signed_size(signed, bare_size=len(canonical_pdu))
    _check_fields(signed, room_version)
    if unsigned:
        signed["unsigned"] = dict(unsigned)
    return Event(signed, room_version, event_id=event_id)


def _check_signed_size(signed: dict[str, Any], bare_size: int) -> None:
    """The size check of `signed`, given the size without its hash and
    signatures: their own encoding's length bounds what adding them adds (one
    byte more than it does), so only a PDU near the limit is encoded again."""
    added = {"hashes": signed["hashes"], "signatures": signed["signatures"]}
    if bare_size + len(canonical_json.encode_unchecked(added)) > MAX_PDU_BYTES:
        _check_size(len(canonical_json.encode_unchecked(signed)))
