"""Content hashes, reference hashes, and the IDs derived from them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from . import canonical_json
from .redaction import redact
from .room_versions import RoomVersion


_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/_-]*\Z")


def encode_base64(data: bytes, urlsafe: bool = False) -> str:
    """Unpadded base64: standard for hashes/signatures/keys, URL-safe for IDs."""
    encoded = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return encoded.rstrip(b"=").decode("ascii")


def decode_base64(text: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not; ValueError if invalid."""
    text = text.rstrip("=")
    if not _BASE64_CHARS.match(text):
        raise ValueError("invalid base64 characters")
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64: {exc}") from exc


def compute_content_hash(pdu: dict[str, Any]) -> bytes:
    """SHA-256 of the canonical PDU without `unsigned`, `signatures`, `hashes`."""
    stripped = {k: v for k, v in pdu.items() if k not in ("unsigned", "signatures", "hashes")}
    return hashlib.sha256(canonical_json.encode(stripped)).digest()


def add_content_hash(pdu: dict[str, Any]) -> dict[str, Any]:
    """Return `pdu` with `hashes.sha256` set to its content hash."""
    hashed = dict(pdu)
    hashed["hashes"] = {"sha256": encode_base64(compute_content_hash(pdu))}
    return hashed


def content_hash_matches(pdu: dict[str, Any]) -> bool:
    expected = pdu.get("hashes", {})
    if not isinstance(expected, dict) or not isinstance(expected.get("sha256"), str):
        return False
    try:
        given = decode_base64(expected["sha256"])
    except ValueError:
        return False
    return given == compute_content_hash(pdu)


def compute_reference_hash(pdu: dict[str, Any], room_version: RoomVersion) -> bytes:
    """SHA-256 of the redacted PDU without `signatures`, `unsigned` (and `event_id`)."""
    redacted = redact(pdu, room_version)
    for key in ("signatures", "unsigned", "event_id"):
        redacted.pop(key, None)
    return hashlib.sha256(canonical_json.encode(redacted)).digest()


def compute_event_id(pdu: dict[str, Any], room_version: RoomVersion) -> str:
    """Event IDs (room version 4+): `$` + URL-safe base64 of the reference hash."""
    return event_id_from_reference_hash(compute_reference_hash(pdu, room_version))


def event_id_from_reference_hash(reference_hash: bytes) -> str:
    return "$" + encode_base64(reference_hash, urlsafe=True)


def room_id_from_create_event_id(create_event_id: str) -> str:
    """v12: the room ID is the create event's ID with the sigil `!`."""
    return "!" + create_event_id[1:]


def create_event_id_from_room_id(room_id: str) -> str:
    """v12: the create event's ID, recovered from the room ID."""
    return "$" + room_id[1:]
