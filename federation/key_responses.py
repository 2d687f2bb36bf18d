"""Signing-key documents (`/_matrix/key/v2/server`): building ours, checking theirs.

Pure: data in, data out. A server's document lists its current `verify_keys`,
the `old_verify_keys` it used before (each with `expired_ts`), and
`valid_until_ts`; it is signed by the server with its current keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signedjson.sign import sign_json

from federation.protocol import canonical_json
from federation.protocol.errors import SignatureError
from federation.protocol.signing import ServerKey, VerifyKey, verify_json, verify_key_from_base64

# Spec (room versions 5+): a key is trusted until the lesser of its
# valid_until_ts and 7 days after we fetched it.
MAX_KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class ServerKeyRecord:
    """One key of a remote server, as fetched (and as stored)."""

    server_name: str
    key_id: str
    verify_key: str  # unpadded base64
    valid_until_ts: int | None  # current keys: the document's valid_until_ts
    expired_ts: int | None  # old keys: when the server stopped using it
    fetched_ts: int
    key_json: str  # the signed document it came from (origin's signatures only)

    def usable_at(self, ts: int) -> bool:
        """Whether this key verifies something signed at `ts`."""
        if self.expired_ts is not None:
            return self.expired_ts > ts
        assert self.valid_until_ts is not None
        return min(self.valid_until_ts, self.fetched_ts + MAX_KEY_VALIDITY_MS) >= ts

    def decoded(self) -> VerifyKey:
        return verify_key_from_base64(self.key_id, self.verify_key)


@dataclass(frozen=True)
class OldVerifyKey:
    verify_key_base64: str
    expired_ts: int


@dataclass(frozen=True)
class OwnKeys:
    """This server's signing key and former keys, and how long others may cache them."""

    signing_key: ServerKey
    old_keys: Mapping[str, OldVerifyKey]
    valid_for_ms: int

    @property
    def server_name(self) -> str:
        return self.signing_key.server_name

    def document(self, now_ms: int) -> dict[str, Any]:
        """Our `/_matrix/key/v2/server` answer, self-signed."""
        document = {
            "server_name": self.server_name,
            "valid_until_ts": now_ms + self.valid_for_ms,
            "verify_keys": {self.signing_key.key_id: {"key": self.signing_key.verify_key_base64}},
            "old_verify_keys": {
                key_id: {"key": old.verify_key_base64, "expired_ts": old.expired_ts}
                for key_id, old in self.old_keys.items()
            },
        }
        return self.sign(document)

    def sign(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """`obj` with our signature added to those it has."""
        return dict(sign_json(dict(obj), self.server_name, self.signing_key.signing_key))

    def verify_key(self, key_id: str, valid_at_ts: int) -> VerifyKey | None:
        if key_id == self.signing_key.key_id:
            return self.signing_key.verify_key
        old = self.old_keys.get(key_id)
        if old is not None and old.expired_ts > valid_at_ts:
            return verify_key_from_base64(key_id, old.verify_key_base64)
        return None


def parse_key_document(document: Any, server_name: str, fetched_ts: int
                       ) -> list[ServerKeyRecord]:
    """The keys in `server_name`'s signed key document; SignatureError unless
    it is well formed, names `server_name`, and is signed by its own keys."""
    if not isinstance(document, dict) or document.get("server_name") != server_name:
        raise SignatureError(f"key document is not for {server_name}")
    valid_until = document.get("valid_until_ts")
    current = document.get("verify_keys")
    old = document.get("old_verify_keys", {})
    if not _is_int(valid_until) or not isinstance(current, dict) or not isinstance(old, dict):
        raise SignatureError(f"malformed key document from {server_name}")
    keys = {key_id: _decode(server_name, key_id, entry) for key_id, entry in current.items()}
    _check_self_signed(document, server_name, keys)
    key_json = _origin_signed_json(document, server_name)
    records = [ServerKeyRecord(server_name, key_id, current[key_id]["key"], valid_until, None,
                               fetched_ts, key_json) for key_id in keys]
    for key_id, entry in old.items():
        _decode(server_name, key_id, entry)
        expired = entry.get("expired_ts")
        if not _is_int(expired):
            raise SignatureError(f"old key {key_id} of {server_name} lacks expired_ts")
        records.append(ServerKeyRecord(server_name, key_id, entry["key"], None, expired,
                                       fetched_ts, key_json))
    return records


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode(server_name: str, key_id: Any, entry: Any) -> VerifyKey:
    if not isinstance(key_id, str) or not key_id.startswith("ed25519:"):
        raise SignatureError(f"unsupported key {key_id!r} of {server_name}")
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        raise SignatureError(f"malformed key {key_id} of {server_name}")
    try:
        return verify_key_from_base64(key_id, entry["key"])
    except Exception as exc:  # bad base64 or key length
        raise SignatureError(f"undecodable key {key_id} of {server_name}") from exc


def _check_self_signed(document: Mapping[str, Any], server_name: str,
                       keys: Mapping[str, VerifyKey]) -> None:
    """Every signature by one of the document's own current keys must verify,
    and there must be at least one."""
    signatures = document.get("signatures")
    own = signatures.get(server_name) if isinstance(signatures, dict) else None
    signed_by = [key_id for key_id in (own or {}) if key_id in keys]
    if not signed_by:
        raise SignatureError(f"key document of {server_name} is not self-signed")
    for key_id in signed_by:
        verify_json(document, server_name, keys[key_id])


def _origin_signed_json(document: Mapping[str, Any], server_name: str) -> str:
    """The document with only its origin's signatures (a notary's are dropped)."""
    stripped = dict(document)
    stripped["signatures"] = {server_name: document["signatures"][server_name]}
    stripped.pop("unsigned", None)
    return canonical_json.encode_unchecked(stripped).decode("utf-8")


def load_key_json(record: ServerKeyRecord) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(record.key_json)
    return value
