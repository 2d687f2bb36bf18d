"""Ed25519 signing of JSON, events and federation requests (via signedjson).

Keys are `ed25519:<version>`; an event is signed over its redacted form so
that redaction never breaks a signature.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Mapping

from signedjson.key import (
    decode_signing_key_base64,
    decode_verify_key_bytes,
    encode_signing_key_base64,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
)
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from signedjson.types import SigningKey, VerifyKey

from . import identifiers
from .canonical_json import encode_unchecked
from .errors import SignatureError
from .hashing import add_content_hash, decode_base64, encode_base64, event_id_from_reference_hash
from .redaction import redact
from .room_versions import RoomVersion

__all__ = [
    "SigningKey", "VerifyKey", "SignatureVerifyException", "ServerKey",
    "generate_server_key", "parse_key_id", "sign_json", "sign_event", "hash_and_sign_event",
    "hash_sign_and_identify_new_event",
    "verify_json", "verify_event_signatures", "servers_that_must_sign", "verify_key_from_base64",
]

_KEY_VERSION = re.compile(r"^[a-zA-Z0-9_]+\Z")


@dataclass(frozen=True)
class ServerKey:
    """A server's signing key: its name and the key (whose `version` is the key id suffix)."""

    server_name: str
    signing_key: SigningKey

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.signing_key.version}"

    @property
    def verify_key(self) -> VerifyKey:
        return get_verify_key(self.signing_key)

    @property
    def verify_key_base64(self) -> str:
        return str(encode_verify_key_base64(self.verify_key))

    def serialize(self) -> str:
        """`ed25519 <version> <seed>`, the format Synapse's key files use."""
        seed = encode_signing_key_base64(self.signing_key)
        return f"ed25519 {self.signing_key.version} {seed}"

    @classmethod
    def deserialize(cls, server_name: str, text: str) -> ServerKey:
        algorithm, version, seed = text.split()
        return cls(server_name, decode_signing_key_base64(algorithm, version, seed))


def generate_server_key(server_name: str, version: str) -> ServerKey:
    if not _KEY_VERSION.match(version):
        raise ValueError("key versions are [a-zA-Z0-9_]")
    return ServerKey(server_name, generate_signing_key(version))


def parse_key_id(key_id: str) -> tuple[str, str]:
    """`ed25519:abc` -> ("ed25519", "abc")."""
    algorithm, sep, version = key_id.partition(":")
    if not sep or not version:
        raise ValueError(f"invalid key id {key_id!r}")
    return algorithm, version


def verify_key_from_base64(key_id: str, key_base64: str) -> VerifyKey:
    algorithm, version = parse_key_id(key_id)
    return decode_verify_key_bytes(key_id, decode_base64(key_base64))


def verify_json(signed: Mapping[str, Any], server_name: str, verify_key: VerifyKey) -> None:
    """Raise SignatureError unless `server_name` signed `signed` with `verify_key`."""
    try:
        verify_signed_json(dict(signed), server_name, verify_key)
    except SignatureVerifyException as exc:
        raise SignatureError(str(exc)) from exc


def sign_event(pdu: dict[str, Any], key: ServerKey, room_version: RoomVersion) -> dict[str, Any]:
    """Add `key`'s signature (over the redacted event) to a copy of `pdu`."""
    redacted = redact(pdu, room_version)
    redacted.pop("unsigned", None)
    redacted.pop("signatures", None)
    signed = sign_json(redacted, key.server_name, key.signing_key)
    signatures = {s: dict(v) for s, v in pdu.get("signatures", {}).items()}
    signatures.setdefault(key.server_name, {}).update(signed["signatures"][key.server_name])
    result = dict(pdu)
    result["signatures"] = signatures
    return result


def hash_and_sign_event(
    pdu: dict[str, Any], key: ServerKey, room_version: RoomVersion
) -> dict[str, Any]:
    """Set the content hash, then sign: what every event we originate goes through."""
    return sign_event(add_content_hash(pdu), key, room_version)


def hash_sign_and_identify_new_event(
    pdu: dict[str, Any], canonical_pdu: bytes, key: ServerKey, room_version: RoomVersion
) -> tuple[dict[str, Any], str]:
    """`hash_and_sign_event` of a PDU we are creating, and its event ID.

    `pdu` has no `hashes`, `signatures` or `unsigned` yet, and `canonical_pdu`
    is its canonical JSON (checked by the caller): so it is what the content
    hash covers, without encoding it again. The redacted event is what is
    signed (by signedjson) and what the reference hash covers (tests pin the
    results to the step-by-step path).
    """
    hashed = dict(pdu)
    hashed["hashes"] = {"sha256": encode_base64(hashlib.sha256(canonical_pdu).digest())}
    redacted = redact(hashed, room_version)
    reference = hashlib.sha256(encode_unchecked(redacted)).digest()
    hashed["signatures"] = sign_json(redacted, key.server_name, key.signing_key)["signatures"]
    return hashed, event_id_from_reference_hash(reference)


def servers_that_must_sign(pdu: Mapping[str, Any], room_version: RoomVersion) -> set[str]:
    """The sender's server, plus the authorising server of a restricted join."""
    servers = {identifiers.server_of(pdu["sender"])}
    content = pdu.get("content")
    if (
        pdu.get("type") == "m.room.member"
        and isinstance(content, dict)
        and content.get("membership") == "join"
        and isinstance(content.get("join_authorised_via_users_server"), str)
    ):
        servers.add(identifiers.server_of(content["join_authorised_via_users_server"]))
    return servers


def verify_event_signatures(
    pdu: Mapping[str, Any],
    room_version: RoomVersion,
    keys: Mapping[str, Mapping[str, VerifyKey]],
) -> None:
    """Check every required server's signature on `pdu`.

    `keys` maps server name -> key id -> verify key, already filtered by the
    caller to keys valid at the event's `origin_server_ts`. Raises
    SignatureError unless each required server has a verifying signature.
    """
    redacted = redact(dict(pdu), room_version)
    redacted.pop("unsigned", None)
    signatures = redacted.get("signatures")
    if not isinstance(signatures, dict):
        raise SignatureError("event has no signatures")
    for server in sorted(servers_that_must_sign(pdu, room_version)):
        server_sigs = signatures.get(server)
        if not isinstance(server_sigs, dict) or not server_sigs:
            raise SignatureError(f"event not signed by {server}")
        if not _any_signature_verifies(redacted, server, server_sigs, keys.get(server, {})):
            raise SignatureError(f"no valid signature from {server} with a known key")


def _any_signature_verifies(
    redacted: dict[str, Any],
    server: str,
    server_sigs: Mapping[str, Any],
    server_keys: Mapping[str, VerifyKey],
) -> bool:
    for key_id in server_sigs:
        verify_key = server_keys.get(key_id)
        if verify_key is None:
            continue  # unknown or expired key: skip, as the spec says
        only_this = dict(redacted)
        only_this["signatures"] = {server: {key_id: server_sigs[key_id]}}
        try:
            verify_signed_json(only_this, server, verify_key)
        except SignatureVerifyException:
            return False
        return True
    return False
