"""Property tests: canonical JSON, redaction and signing over generated inputs."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.exceptions import BadSignatureError

from federation.protocol.canonical_json import MAX_INT, MIN_INT, encode
from federation.protocol.errors import Codes, InvalidEventError, SignatureError
from federation.protocol.hashing import (
    compute_event_id,
    content_hash_matches,
    decode_base64,
    encode_base64,
)
from federation.protocol.identifiers import is_valid_event_id
from federation.protocol.redaction import redact
from federation.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12, RoomVersion
from federation.protocol.signing import (
    ServerKey,
    hash_and_sign_event,
    sign_json,
    verify_event_signatures,
    verify_json,
)
from tests.json_values import json_objects, json_scalars, json_values

from .factory import server_key

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

SERVER = "domain"
KEY: ServerKey = server_key(SERVER)
KEYRING = {SERVER: {KEY.key_id: KEY.verify_key}}
VERSIONS = st.sampled_from([ROOM_V10, ROOM_V11, ROOM_V12])



def _spec_reference_encoding(value: Any) -> bytes:
    """The appendix's Python definition of canonical JSON."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode(
        "UTF-8"
    )


def _object_key_orders(text: str) -> list[list[str]]:
    orders: list[list[str]] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        orders.append([k for k, _ in pairs])
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return orders


def _outside_strings(text: str) -> str:
    """`text` with the contents of every JSON string removed."""
    out, in_string, escaped = [], False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        else:
            out.append(ch)
    return "".join(out)


@PROPERTY_SETTINGS
@given(json_values)
def test_canonical_json_round_trip(value: Any) -> None:
    encoded = encode(value)
    assert json.loads(encoded) == value
    # Encoding is a fixed point: re-encoding the parsed bytes gives the same bytes.
    assert encode(json.loads(encoded)) == encoded
    assert encoded == _spec_reference_encoding(value)


@PROPERTY_SETTINGS
@given(json_values)
def test_canonical_json_keys_sorted_and_no_whitespace(value: Any) -> None:
    text = encode(value).decode("utf-8")
    for keys in _object_key_orders(text):
        assert keys == sorted(keys)  # Python compares str by code point
        assert all(
            [ord(c) for c in a] < [ord(c) for c in b] for a, b in zip(keys, keys[1:])
        )
    structure = _outside_strings(text)
    assert not any(ch in structure for ch in " \t\n\r")
    # Only raw UTF-8 outside escapes: no \uXXXX for anything at or above U+0020.
    assert all(ord(ch) >= 0x20 for ch in text)


@PROPERTY_SETTINGS
@given(st.dictionaries(st.text(max_size=8), st.integers(), max_size=4))
def test_canonical_json_integer_range(value: dict[str, int]) -> None:
    in_range = all(MIN_INT <= v <= MAX_INT for v in value.values())
    if in_range:
        assert json.loads(encode(value)) == value
    else:
        with pytest.raises(InvalidEventError) as exc:
            encode(value)
        assert exc.value.errcode == Codes.BAD_JSON


# Events ------------------------------------------------------------------------------

localparts = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._=-/+", min_size=1,
                     max_size=10)
user_ids = localparts.map(lambda lp: f"@{lp}:{SERVER}")
event_ids = st.binary(min_size=32, max_size=32).map(lambda b: "$" + encode_base64(b, True))

KNOWN_KEYS = {
    "m.room.member": ["membership", "join_authorised_via_users_server", "displayname",
                      "avatar_url", "reason", "third_party_invite"],
    "m.room.create": ["creator", "room_version", "m.federate", "predecessor", "type",
                      "additional_creators"],
    "m.room.join_rules": ["join_rule", "allow"],
    "m.room.power_levels": ["ban", "events", "events_default", "invite", "kick", "redact",
                            "state_default", "users", "users_default", "notifications"],
    "m.room.history_visibility": ["history_visibility"],
    "m.room.redaction": ["redacts", "reason"],
    "m.room.message": ["body", "msgtype"],
}


@st.composite
def contents(draw: st.DrawFn, event_type: str) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(json_scalars | st.lists(json_scalars, max_size=2))  # not an object
    names = KNOWN_KEYS.get(event_type, [])
    keys = st.sampled_from(names) | st.text(max_size=8) if names else st.text(max_size=8)
    content = draw(st.dictionaries(keys, json_values, max_size=5))
    if event_type == "m.room.member":
        if "join_authorised_via_users_server" in content or draw(st.booleans()):
            content["join_authorised_via_users_server"] = draw(user_ids)
        if "third_party_invite" in content or draw(st.booleans()):
            invite = draw(st.dictionaries(st.sampled_from(["signed", "display_name"]) |
                                          st.text(max_size=5), json_values, max_size=3))
            content["third_party_invite"] = invite
        if draw(st.booleans()):
            content["membership"] = draw(st.sampled_from(["join", "invite", "leave", "ban"]))
    return content


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(st.sampled_from(sorted(KNOWN_KEYS)) | st.text(max_size=12))
    pdu: dict[str, Any] = {
        "type": event_type,
        "room_id": draw(st.sampled_from(["!room:domain", "!" + "A" * 43])),
        "sender": draw(user_ids),
        "content": draw(contents(event_type)),
        "origin_server_ts": draw(st.integers(0, MAX_INT)),
        "depth": draw(st.integers(0, MAX_INT)),
        "prev_events": draw(st.lists(event_ids, max_size=3)),
        "auth_events": draw(st.lists(event_ids, max_size=3)),
    }
    optional = {
        "state_key": st.text(max_size=10),
        "origin": st.just(SERVER),
        "membership": st.sampled_from(["join", "leave"]),
        "prev_state": st.lists(event_ids, max_size=2),
        "redacts": event_ids,
        "unsigned": json_objects,
        "event_id": event_ids,
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            pdu[name] = draw(strategy)
    extra = draw(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=2))
    for name, value in extra.items():
        pdu.setdefault(name, value)
    return pdu


@PROPERTY_SETTINGS
@given(events(), VERSIONS)
def test_redaction_is_idempotent(pdu: dict[str, Any], version: RoomVersion) -> None:
    original = copy.deepcopy(pdu)
    once = redact(pdu, version)
    assert redact(once, version) == once
    assert pdu == original, "redact must not mutate its input"


@PROPERTY_SETTINGS
@given(events(), VERSIONS)
def test_redaction_keeps_event_id(pdu: dict[str, Any], version: RoomVersion) -> None:
    pdu = hash_and_sign_event(pdu, KEY, version)
    event_id = compute_event_id(pdu, version)
    assert is_valid_event_id(event_id)
    assert compute_event_id(redact(pdu, version), version) == event_id
    assert compute_event_id(redact(redact(pdu, version), version), version) == event_id


@PROPERTY_SETTINGS
@given(events(), VERSIONS)
def test_redaction_only_removes(pdu: dict[str, Any], version: RoomVersion) -> None:
    """Every redacted key was in the event, with the same value (or a subset for content)."""
    redacted = redact(pdu, version)
    for key, value in redacted.items():
        if key == "content":
            continue
        assert pdu[key] == value
    content = pdu.get("content")
    for key, value in redacted["content"].items():
        if key == "third_party_invite":
            assert value == {"signed": content[key]["signed"]}
        else:
            assert content[key] == value


# Signing --------------------------------------------------------------------------------

EXCLUDED_FROM_MUTATION = ("signatures",)


def _nodes(obj: Any, prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (*prefix, key), value
            yield from _nodes(value, (*prefix, key))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield (*prefix, index), value
            yield from _nodes(value, (*prefix, index))


def _mutated(value: Any) -> Any:
    """A different JSON value of the same shape."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1 if value < MAX_INT else value - 1
    if isinstance(value, str):
        # Keeps a user ID's server name: "@a:domain" -> "@Xa:domain".
        return value[:1] + "X" + value[1:]
    if value is None:
        return 0
    if isinstance(value, list):
        return [*value, 0]
    if isinstance(value, dict):
        return {**value, "\x00mutation" * (1 + len(value)): 0}
    raise AssertionError(value)


def _set(obj: Any, path: tuple, value: Any) -> Any:
    result = copy.deepcopy(obj)
    target = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return result


def _verifies(pdu: dict[str, Any], version: RoomVersion) -> bool:
    try:
        verify_event_signatures(pdu, version, KEYRING)
    except SignatureError:
        return False
    return True


def _signed_form(pdu: dict[str, Any], version: RoomVersion) -> bytes:
    redacted = redact(pdu, version)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return encode(redacted)


@PROPERTY_SETTINGS
@given(events(), VERSIONS)
def test_sign_then_verify(pdu: dict[str, Any], version: RoomVersion) -> None:
    signed = hash_and_sign_event(pdu, KEY, version)
    assert content_hash_matches(signed)
    verify_event_signatures(signed, version, KEYRING)
    verify_event_signatures(redact(signed, version), version, KEYRING)
    # The signature is an ordinary JSON signature over the redacted event.
    verify_json(redact(signed, version), SERVER, KEY.verify_key)


@PROPERTY_SETTINGS
@given(events(), VERSIONS, st.data())
def test_changing_the_signed_form_breaks_the_signature(
    pdu: dict[str, Any], version: RoomVersion, data: st.DataObject
) -> None:
    """Change any one value (scalar or array) that survives redaction: verification fails."""
    signed = redact(hash_and_sign_event(pdu, KEY, version), version)
    candidates = [
        (path, value)
        for path, value in _nodes(signed)
        if path[0] not in EXCLUDED_FROM_MUTATION and not isinstance(value, dict)
    ]
    path, value = data.draw(st.sampled_from(candidates), label="mutated node")
    tampered = _set(signed, path, _mutated(value))
    assert _signed_form(tampered, version) != _signed_form(signed, version)
    with pytest.raises(SignatureError):
        verify_event_signatures(tampered, version, KEYRING)


@PROPERTY_SETTINGS
@given(events(), VERSIONS, st.data())
def test_signature_covers_exactly_the_redacted_form(
    pdu: dict[str, Any], version: RoomVersion, data: st.DataObject
) -> None:
    """Any change anywhere in the full event: the signature fails iff the redacted form
    changed, and the content hash fails unless only `unsigned` (or `hashes` beside
    `sha256`) changed."""
    signed = hash_and_sign_event(pdu, KEY, version)
    candidates = [
        (path, value)
        for path, value in _nodes(signed)
        if path[0] not in EXCLUDED_FROM_MUTATION
    ]
    path, value = data.draw(st.sampled_from(candidates), label="mutated node")
    tampered = _set(signed, path, _mutated(value))
    signed_form_changed = _signed_form(tampered, version) != _signed_form(signed, version)
    assert _verifies(tampered, version) is not signed_form_changed
    # The content hash covers everything but `unsigned`, `signatures` and `hashes` itself.
    hash_unchanged = tampered["hashes"].get("sha256") == signed["hashes"]["sha256"]
    outside_hash = path[0] == "unsigned" or (path[0] == "hashes" and hash_unchanged)
    assert content_hash_matches(tampered) is outside_hash


@PROPERTY_SETTINGS
@given(events(), VERSIONS, st.integers(0, 63), st.integers(0, 7))
def test_changing_the_signature_breaks_it(
    pdu: dict[str, Any], version: RoomVersion, byte: int, bit: int
) -> None:
    signed = hash_and_sign_event(pdu, KEY, version)
    sig = bytearray(decode_base64(signed["signatures"][SERVER][KEY.key_id]))
    assert len(sig) == 64
    sig[byte] ^= 1 << bit
    tampered = copy.deepcopy(signed)
    tampered["signatures"][SERVER][KEY.key_id] = encode_base64(bytes(sig))
    with pytest.raises(SignatureError):
        verify_event_signatures(tampered, version, KEYRING)
    # A signature under an unknown key ID doesn't count either.
    renamed = copy.deepcopy(signed)
    renamed["signatures"][SERVER] = {"ed25519:other": signed["signatures"][SERVER][KEY.key_id]}
    with pytest.raises(SignatureError):
        verify_event_signatures(renamed, version, KEYRING)


@PROPERTY_SETTINGS
@given(json_objects, st.data())
def test_json_signature_covers_every_byte(obj: dict[str, Any], data: st.DataObject) -> None:
    obj.pop("signatures", None)
    obj.pop("unsigned", None)
    signed = sign_json(copy.deepcopy(obj), SERVER, KEY.signing_key)
    verify_json(signed, SERVER, KEY.verify_key)
    signature = decode_base64(signed["signatures"][SERVER][KEY.key_id])
    message = encode(obj)
    KEY.verify_key.verify(message, signature)
    # Flip any one bit of any one byte of the signed bytes: the signature no longer holds.
    index = data.draw(st.integers(0, len(message) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    tampered = bytearray(message)
    tampered[index] ^= 1 << bit
    with pytest.raises(BadSignatureError):
        KEY.verify_key.verify(bytes(tampered), signature)
    # And any one structural change to the object does too.
    nodes = list(_nodes(obj))
    if nodes:
        path, value = data.draw(st.sampled_from(nodes), label="mutated node")
        changed = _set(signed, path, _mutated(value))
        with pytest.raises(SignatureError):
            verify_json(changed, SERVER, KEY.verify_key)


@PROPERTY_SETTINGS
@given(events(), VERSIONS)
def test_event_id_is_hash_of_redacted_form(pdu: dict[str, Any], version: RoomVersion) -> None:
    pdu = hash_and_sign_event(pdu, KEY, version)
    redacted = redact(pdu, version)
    for key in ("signatures", "unsigned", "event_id"):
        redacted.pop(key, None)
    digest = hashlib.sha256(_spec_reference_encoding(redacted)).digest()
    assert compute_event_id(pdu, version) == "$" + encode_base64(digest, urlsafe=True)
