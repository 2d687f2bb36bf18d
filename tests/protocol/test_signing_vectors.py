"""The spec's cryptographic test vectors, event IDs, v12 room IDs and X-Matrix.

Vectors: appendices, "Cryptographic Test Vectors". The event-signing vectors
predate room version 11 and keep the top-level `origin` through redaction, so
they are checked with the v10 redaction rules.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest
from signedjson.key import decode_signing_key_base64

from federation.protocol import canonical_json
from federation.protocol.errors import Codes, SignatureError
from federation.protocol.events import Event
from federation.protocol.hashing import (
    add_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
    content_hash_matches,
    create_event_id_from_room_id,
    decode_base64,
    encode_base64,
    room_id_from_create_event_id,
)
from federation.protocol.identifiers import is_valid_event_id, is_valid_room_id
from federation.protocol.redaction import redact
from federation.protocol.request_auth import (
    XMatrixAuth,
    parse_authorization,
    request_json,
    sign_request,
    verify_request,
)
from federation.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12
from federation.protocol.signing import (
    ServerKey,
    generate_server_key,
    hash_and_sign_event,
    sign_event,
    sign_json,
    verify_event_signatures,
    verify_json,
    verify_key_from_base64,
)

SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
SERVER_NAME = "domain"
KEY_ID = "ed25519:1"


@pytest.fixture(scope="module")
def key() -> ServerKey:
    algorithm, version = KEY_ID.split(":")
    return ServerKey(SERVER_NAME, decode_signing_key_base64(algorithm, version, SEED))


@pytest.fixture(scope="module")
def keyring(key: ServerKey) -> dict[str, dict[str, Any]]:
    return {SERVER_NAME: {KEY_ID: key.verify_key}}


def test_key_id_and_serialization(key: ServerKey) -> None:
    assert key.key_id == KEY_ID
    # The spec's seed has non-zero trailing bits in its last base64 character, so
    # compare the decoded seed rather than the text.
    algorithm, version, seed = key.serialize().split()
    assert (algorithm, version) == ("ed25519", "1")
    assert decode_base64(seed) == decode_base64(SEED)
    assert len(decode_base64(seed)) == 32
    again = ServerKey.deserialize(SERVER_NAME, key.serialize())
    assert again.verify_key_base64 == key.verify_key_base64
    # The public key survives the base64 round trip used by key servers.
    vk = verify_key_from_base64(KEY_ID, key.verify_key_base64)
    assert bytes(vk) == bytes(key.verify_key)


# JSON signing ---------------------------------------------------------------

JSON_VECTORS = [
    (
        {},
        {
            "signatures": {
                "domain": {
                    "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/"
                    "7Xg4ahLwYGYZzuHGZKM5ZAQ"
                }
            }
        },
    ),
    (
        {"one": 1, "two": "Two"},
        {
            "one": 1,
            "signatures": {
                "domain": {
                    "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZ"
                    "hG6kYdD13EIMJpvhJI+6Bw"
                }
            },
            "two": "Two",
        },
    ),
]


@pytest.mark.parametrize(("unsigned_obj", "expected"), JSON_VECTORS)
def test_json_signing_vector(key: ServerKey, unsigned_obj: dict, expected: dict) -> None:
    signed = sign_json(copy.deepcopy(unsigned_obj), key.server_name, key.signing_key)
    assert signed == expected


@pytest.mark.parametrize(("unsigned_obj", "expected"), JSON_VECTORS)
def test_json_signing_vector_verifies(key: ServerKey, unsigned_obj: dict, expected: dict) -> None:
    verify_json(expected, SERVER_NAME, key.verify_key)
    # `unsigned` is not covered by the signature.
    verify_json({**expected, "unsigned": {"age": 5}}, SERVER_NAME, key.verify_key)


@pytest.mark.parametrize(("unsigned_obj", "expected"), JSON_VECTORS)
def test_json_signing_vector_tampered(key: ServerKey, unsigned_obj: dict, expected: dict) -> None:
    with pytest.raises(SignatureError):
        verify_json({**expected, "extra": True}, SERVER_NAME, key.verify_key)
    with pytest.raises(SignatureError):
        verify_json(expected, "other.server", key.verify_key)
    with pytest.raises(SignatureError):
        verify_json({k: v for k, v in expected.items() if k != "signatures"}, SERVER_NAME,
                    key.verify_key)


# Event signing --------------------------------------------------------------

MINIMAL_EVENT = {
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "signatures": {},
    "hashes": {},
    "type": "X",
    "content": {},
    "prev_events": [],
    "auth_events": [],
    "depth": 3,
    "unsigned": {"age_ts": 1000000},
}

MINIMAL_EVENT_SIGNED = {
    "auth_events": [],
    "content": {},
    "depth": 3,
    "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "prev_events": [],
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOo"
            "MszkwsQma+lYAg"
        }
    },
    "type": "X",
    "unsigned": {"age_ts": 1000000},
}

MESSAGE_EVENT = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {},
    "unsigned": {"age_ts": 1000000},
}

MESSAGE_EVENT_SIGNED = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "hashes": {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMG"
            "CA5McEiVPdhzBA"
        }
    },
    "unsigned": {"age_ts": 1000000},
}

EVENT_VECTORS = [
    pytest.param(MINIMAL_EVENT, MINIMAL_EVENT_SIGNED, id="minimal"),
    pytest.param(MESSAGE_EVENT, MESSAGE_EVENT_SIGNED, id="redactable"),
]


@pytest.mark.parametrize(("event", "expected"), EVENT_VECTORS)
def test_event_signing_vector(key: ServerKey, event: dict, expected: dict) -> None:
    original = copy.deepcopy(event)
    signed = hash_and_sign_event(event, key, ROOM_V10)
    assert signed == expected
    assert event == original, "hash_and_sign_event must not mutate its input"


@pytest.mark.parametrize(("event", "expected"), EVENT_VECTORS)
def test_event_content_hash_vector(event: dict, expected: dict) -> None:
    digest = compute_content_hash(event)
    assert len(digest) == 32
    assert encode_base64(digest) == expected["hashes"]["sha256"]
    assert add_content_hash(event)["hashes"] == expected["hashes"]


@pytest.mark.parametrize(("event", "expected"), EVENT_VECTORS)
def test_sign_event_after_hashing_matches_vector(
    key: ServerKey, event: dict, expected: dict
) -> None:
    signed = sign_event(add_content_hash(event), key, ROOM_V10)
    assert signed["signatures"] == expected["signatures"]


@pytest.mark.parametrize(("event", "expected"), EVENT_VECTORS)
def test_event_vector_signature_verifies(
    keyring: dict, key: ServerKey, event: dict, expected: dict
) -> None:
    verify_event_signatures(expected, ROOM_V10, keyring)
    # The signature is over the redacted form, so it checks out via verify_json too.
    redacted = redact(expected, ROOM_V10)
    verify_json(redacted, SERVER_NAME, key.verify_key)
    # And a redacted copy of the event still verifies: redaction never breaks signatures.
    verify_event_signatures(redacted, ROOM_V10, keyring)


def test_event_vector_redacted_content_changes_keep_signature(keyring: dict) -> None:
    changed = copy.deepcopy(MESSAGE_EVENT_SIGNED)
    changed["content"]["body"] = "Something else"
    # The body is redacted away before signing: the signature still verifies ...
    verify_event_signatures(changed, ROOM_V10, keyring)
    # ... but the content hash does not.
    assert not content_hash_matches(changed)


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.update(origin_server_ts=1000001),
        lambda e: e.update(room_id="!y:domain"),
        lambda e: e.update(type="Y"),
        lambda e: e.update(hashes={"sha256": "A" * 43}),
        lambda e: e.update(origin="elsewhere"),  # v10 keeps `origin`
        lambda e: e.update(depth=4),
        lambda e: e["signatures"]["domain"].update({KEY_ID: "A" * 86}),
    ],
)
def test_event_vector_tampered_fails(keyring: dict, change: Any) -> None:
    for expected in (MINIMAL_EVENT_SIGNED, MESSAGE_EVENT_SIGNED):
        tampered = copy.deepcopy(expected)
        change(tampered)
        with pytest.raises(SignatureError):
            verify_event_signatures(tampered, ROOM_V10, keyring)


def test_v11_rules_give_a_different_signature(keyring: dict, key: ServerKey) -> None:
    # v11 redaction drops top-level `origin`, so the signed bytes differ from the vector ...
    signed = hash_and_sign_event(MINIMAL_EVENT, key, ROOM_V11)
    assert signed["hashes"] == MINIMAL_EVENT_SIGNED["hashes"]
    assert signed["signatures"] != MINIMAL_EVENT_SIGNED["signatures"]
    verify_event_signatures(signed, ROOM_V11, keyring)
    # ... and under v11 rules `origin` is not covered by the signature.
    verify_event_signatures({**signed, "origin": "elsewhere"}, ROOM_V11, keyring)
    with pytest.raises(SignatureError):
        verify_event_signatures(MINIMAL_EVENT_SIGNED, ROOM_V11, keyring)


def test_verify_rejects_missing_or_unknown_signatures(keyring: dict, key: ServerKey) -> None:
    unsigned = {k: v for k, v in MINIMAL_EVENT_SIGNED.items() if k != "signatures"}
    with pytest.raises(SignatureError):
        verify_event_signatures(unsigned, ROOM_V10, keyring)
    with pytest.raises(SignatureError):
        verify_event_signatures({**MINIMAL_EVENT_SIGNED, "signatures": {}}, ROOM_V10, keyring)
    # Signed by the right server but with a key we don't know.
    with pytest.raises(SignatureError):
        verify_event_signatures(MINIMAL_EVENT_SIGNED, ROOM_V10, {SERVER_NAME: {}})
    with pytest.raises(SignatureError):
        verify_event_signatures(MINIMAL_EVENT_SIGNED, ROOM_V10, {})
    # Signed only by some other server.
    other = {**MINIMAL_EVENT_SIGNED, "signatures": {"other": MINIMAL_EVENT_SIGNED["signatures"][
        "domain"]}}
    with pytest.raises(SignatureError):
        verify_event_signatures(other, ROOM_V10, {"other": {KEY_ID: key.verify_key}, **keyring})


def test_sign_event_keeps_existing_signatures(key: ServerKey, keyring: dict) -> None:
    pdu = {**add_content_hash(MINIMAL_EVENT), "signatures": {"other": {"ed25519:x": "abc"}}}
    signed = sign_event(pdu, key, ROOM_V10)
    assert signed["signatures"]["other"] == {"ed25519:x": "abc"}
    assert signed["signatures"]["domain"] == MINIMAL_EVENT_SIGNED["signatures"]["domain"]
    assert pdu["signatures"] == {"other": {"ed25519:x": "abc"}}


# Content hash ------------------------------------------------------------------


def test_content_hash_matches() -> None:
    assert content_hash_matches(MINIMAL_EVENT_SIGNED)
    assert content_hash_matches(MESSAGE_EVENT_SIGNED)
    # `unsigned` and `signatures` are outside the content hash.
    assert content_hash_matches({**MINIMAL_EVENT_SIGNED, "unsigned": {"age": 1}})
    assert content_hash_matches({**MINIMAL_EVENT_SIGNED, "signatures": {}})
    assert not content_hash_matches({**MINIMAL_EVENT_SIGNED, "depth": 4})
    assert not content_hash_matches({**MINIMAL_EVENT_SIGNED, "content": {"a": 1}})
    assert not content_hash_matches({**MINIMAL_EVENT_SIGNED, "new_key": 1})


@pytest.mark.parametrize(
    "hashes",
    [None, {}, [], "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos", {"sha256": 5},
     {"sha256": "!!!not base64!!!"}, {"sha256": ""}, {"sha512": "5jM4wQpv"}],
)
def test_content_hash_malformed(hashes: Any) -> None:
    event = dict(MINIMAL_EVENT_SIGNED)
    if hashes is None:
        del event["hashes"]
    else:
        event["hashes"] = hashes
    assert content_hash_matches(event) is False


def test_content_hash_accepts_padded_base64() -> None:
    padded = MINIMAL_EVENT_SIGNED["hashes"]["sha256"] + "="
    assert content_hash_matches({**MINIMAL_EVENT_SIGNED, "hashes": {"sha256": padded}})


# Event IDs ---------------------------------------------------------------------


def _independent_reference_hash(pdu: dict, room_version: Any) -> bytes:
    redacted = redact(pdu, room_version)
    for k in ("signatures", "unsigned", "event_id"):
        redacted.pop(k, None)
    text = json.dumps(redacted, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).digest()


def _event_with_unsafe_b64_hash(key: ServerKey) -> tuple[dict, bytes]:
    """A signed event whose reference hash has '+' or '/' in standard base64."""
    for ts in range(1000000, 1000000 + 1000):
        pdu = hash_and_sign_event({**MINIMAL_EVENT, "origin_server_ts": ts}, key, ROOM_V10)
        digest = compute_reference_hash(pdu, ROOM_V10)
        if {"+", "/"} & set(base64.b64encode(digest).decode()):
            return pdu, digest
    raise AssertionError("no suitable event found")


def test_event_id_is_urlsafe_unpadded_base64_of_reference_hash(key: ServerKey) -> None:
    pdu, digest = _event_with_unsafe_b64_hash(key)
    assert len(digest) == 32
    assert digest == _independent_reference_hash(pdu, ROOM_V10)
    event_id = compute_event_id(pdu, ROOM_V10)
    assert event_id.startswith("$")
    assert len(event_id) == 44  # 32 bytes -> 43 unpadded base64 characters
    assert "=" not in event_id and "+" not in event_id and "/" not in event_id
    assert event_id[1:] == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert base64.urlsafe_b64decode(event_id[1:] + "=") == digest
    assert is_valid_event_id(event_id)


def test_event_id_ignores_unsigned_signatures_and_redactable_content(key: ServerKey) -> None:
    pdu = hash_and_sign_event(MESSAGE_EVENT, key, ROOM_V10)
    base = compute_event_id(pdu, ROOM_V10)
    assert compute_event_id({**pdu, "unsigned": {"x": 1}}, ROOM_V10) == base
    assert compute_event_id({**pdu, "signatures": {}}, ROOM_V10) == base
    assert compute_event_id(redact(pdu, ROOM_V10), ROOM_V10) == base
    # `event_id` is not part of the reference hash.
    assert compute_event_id({k: v for k, v in pdu.items() if k != "event_id"}, ROOM_V10) == base
    # But the content hash is, so changing the content changes the ID.
    rehashed = hash_and_sign_event({**MESSAGE_EVENT, "content": {"body": "x"}}, key, ROOM_V10)
    assert compute_event_id(rehashed, ROOM_V10) != base
    assert compute_event_id({**pdu, "depth": 9}, ROOM_V10) != base


def test_event_id_depends_on_room_version_redaction(key: ServerKey) -> None:
    pdu = hash_and_sign_event(MINIMAL_EVENT, key, ROOM_V10)
    # v10 keeps `origin` in the reference hash; v11 does not.
    assert compute_event_id({**pdu, "origin": "zzz"}, ROOM_V10) != compute_event_id(pdu, ROOM_V10)
    assert compute_event_id({**pdu, "origin": "zzz"}, ROOM_V11) == compute_event_id(pdu, ROOM_V11)


def test_event_wrapper_uses_computed_id(key: ServerKey) -> None:
    pdu = hash_and_sign_event(MINIMAL_EVENT, key, ROOM_V11)
    event = Event({**pdu, "event_id": "$ignored"}, ROOM_V11)
    assert "event_id" not in event.pdu
    assert event.event_id == compute_event_id(pdu, ROOM_V11)
    assert event.room_id == "!x:domain"


# v12 room IDs ------------------------------------------------------------------


def _v12_create(key: ServerKey) -> dict:
    return hash_and_sign_event(
        {
            "type": "m.room.create",
            "state_key": "",
            "sender": "@a:domain",
            "content": {"room_version": "12"},
            "prev_events": [],
            "auth_events": [],
            "depth": 1,
            "origin_server_ts": 1000000,
        },
        key,
        ROOM_V12,
    )


def test_v12_room_id_from_create_event(key: ServerKey) -> None:
    pdu = _v12_create(key)
    event_id = compute_event_id(pdu, ROOM_V12)
    room_id = room_id_from_create_event_id(event_id)
    assert room_id == "!" + event_id[1:]
    assert len(room_id) == 44 and ":" not in room_id
    assert is_valid_room_id(room_id)
    assert create_event_id_from_room_id(room_id) == event_id
    event = Event(pdu, ROOM_V12)
    assert event.event_id == event_id
    assert event.room_id == room_id
    assert event.is_create()


def test_v12_room_id_derivation_is_v12_only(key: ServerKey) -> None:
    pdu = {**_v12_create(key), "room_id": "!old:domain"}
    # In v11 the create event's room ID is the one it carries.
    assert Event(pdu, ROOM_V11).room_id == "!old:domain"


def test_v12_non_create_event_uses_its_room_id(key: ServerKey, keyring: dict) -> None:
    room_id = Event(_v12_create(key), ROOM_V12).room_id
    message = hash_and_sign_event(
        {**MESSAGE_EVENT, "room_id": room_id, "sender": "@u:domain"}, key, ROOM_V12
    )
    event = Event(message, ROOM_V12)
    assert event.room_id == room_id
    assert create_event_id_from_room_id(room_id) in event.auth_and_create_event_ids()
    verify_event_signatures(message, ROOM_V12, keyring)


# X-Matrix request signing --------------------------------------------------------

DEST = "destination.example.org"
URI = "/_matrix/federation/v1/send/123?x=1"
BODY = {"pdus": [], "edus": [{"edu_type": "m.typing", "content": {"typing": True}}]}


def test_request_round_trip(key: ServerKey) -> None:
    header = sign_request(key, "put", URI, DEST, BODY)
    assert header.startswith('X-Matrix origin="domain",destination="destination.example.org",')
    auth = parse_authorization(header)
    assert auth.origin == SERVER_NAME
    assert auth.destination == DEST
    assert auth.key_id == KEY_ID
    verify_request(auth, "PUT", URI, DEST, BODY, key.verify_key)
    # The method is case-normalised before signing.
    verify_request(auth, "put", URI, DEST, BODY, key.verify_key)


def test_request_signature_is_the_spec_json_signature(key: ServerKey) -> None:
    header = sign_request(key, "GET", URI, DEST)
    obj = {"method": "GET", "uri": URI, "origin": SERVER_NAME, "destination": DEST}
    assert request_json("get", URI, SERVER_NAME, DEST) == obj
    expected_sig = sign_json(dict(obj), SERVER_NAME, key.signing_key)["signatures"][
        SERVER_NAME][KEY_ID]
    assert parse_authorization(header).signature == expected_sig
    # No body: no `content` key, and GET verifies with content=None.
    verify_request(parse_authorization(header), "GET", URI, DEST, None, key.verify_key)


def test_request_wrong_destination_rejected(key: ServerKey) -> None:
    auth = parse_authorization(sign_request(key, "PUT", URI, DEST, BODY))
    with pytest.raises(SignatureError) as exc:
        verify_request(auth, "PUT", URI, "someone.else", BODY, key.verify_key)
    assert exc.value.status == 401 and exc.value.errcode == Codes.UNAUTHORIZED


def test_request_without_destination_param_checks_our_name(key: ServerKey) -> None:
    header = sign_request(key, "PUT", URI, DEST, BODY)
    auth = parse_authorization(header)
    legacy = XMatrixAuth(auth.origin, None, auth.key_id, auth.signature)
    verify_request(legacy, "PUT", URI, DEST, BODY, key.verify_key)
    # The destination is still part of the signed JSON.
    with pytest.raises(SignatureError):
        verify_request(legacy, "PUT", URI, "someone.else", BODY, key.verify_key)


@pytest.mark.parametrize(
    ("method", "uri", "content"),
    [
        ("POST", URI, BODY),
        ("PUT", URI + "&y=2", BODY),
        ("PUT", "/_matrix/federation/v1/send/124?x=1", BODY),
        ("PUT", URI, {**BODY, "pdus": [{}]}),
        ("PUT", URI, {}),
        ("PUT", URI, None),
    ],
)
def test_request_tampering_rejected(key: ServerKey, method: str, uri: str, content: Any) -> None:
    auth = parse_authorization(sign_request(key, "PUT", URI, DEST, BODY))
    with pytest.raises(SignatureError):
        verify_request(auth, method, uri, DEST, content, key.verify_key)


def test_request_wrong_origin_or_key_rejected(key: ServerKey) -> None:
    auth = parse_authorization(sign_request(key, "PUT", URI, DEST, BODY))
    spoofed = XMatrixAuth("evil.example", auth.destination, auth.key_id, auth.signature)
    with pytest.raises(SignatureError):
        verify_request(spoofed, "PUT", URI, DEST, BODY, key.verify_key)
    other_key = ServerKey(SERVER_NAME, decode_signing_key_base64("ed25519", "1", "A" * 43))
    with pytest.raises(SignatureError):
        verify_request(auth, "PUT", URI, DEST, BODY, other_key.verify_key)
    sig = bytearray(decode_base64(auth.signature))
    sig[0] ^= 1
    flipped = XMatrixAuth(auth.origin, auth.destination, auth.key_id, encode_base64(bytes(sig)))
    with pytest.raises(SignatureError):
        verify_request(flipped, "PUT", URI, DEST, BODY, key.verify_key)


@pytest.mark.parametrize(
    "header",
    [
        'X-Matrix origin="o.example",destination="d.example",key="ed25519:1",sig="c2ln"',
        "X-Matrix origin=o.example,destination=d.example,key=ed25519:1,sig=c2ln",
        'x-matrix ORIGIN="o.example",Destination=d.example,KEY="ed25519:1",Sig=c2ln',
        'X-MATRIX sig="c2ln",key=ed25519:1,destination="d.example",origin=o.example',
        'X-Matrix   origin="o.example" , destination="d.example",key="ed25519:1",  sig="c2ln"',
        'X-Matrix origin="o.example"\t,\tdestination="d.example",\tkey=ed25519:1\t,sig=c2ln',
        'X-Matrix origin="o.example",destination="d.example",key="ed25519:1",sig="c2ln",'
        'extra="ignored, really",other=x',
        'X-Matrix origin="o\\.example",destination="d.ex\\ample",key="ed25519\\:1",sig="c2\\ln"',
        '  X-Matrix origin="o.example",destination="d.example",key="ed25519:1",sig="c2ln"  ',
    ],
)
def test_parse_authorization_forms(header: str) -> None:
    assert parse_authorization(header) == XMatrixAuth(
        origin="o.example", destination="d.example", key_id="ed25519:1", signature="c2ln"
    )


def test_parse_authorization_escapes() -> None:
    auth = parse_authorization(
        'X-Matrix origin="a\\"b",destination="c\\\\d",key="k,=\\"",sig="s p"'
    )
    assert auth.origin == 'a"b'
    assert auth.destination == "c\\d"
    assert auth.key_id == 'k,="'
    assert auth.signature == "s p"


def test_parse_authorization_without_destination() -> None:
    auth = parse_authorization('X-Matrix origin=o.example,key="ed25519:1",sig=c2ln')
    assert auth.destination is None


@pytest.mark.parametrize(
    "header",
    [
        'Bearer origin="o",key="k",sig="s"',
        'X-Matrixorigin="o",key="k",sig="s"',
        "X-Matrix",
        'X-Matrix key="k",sig="s"',
        'X-Matrix origin="o",sig="s"',
        'X-Matrix origin="o",key="k"',
        'X-Matrix origin="o",key="k",sig="unterminated',
        "",
    ],
)
def test_parse_authorization_rejects(header: str) -> None:
    with pytest.raises(SignatureError):
        parse_authorization(header)


def test_canonical_json_used_for_signing_is_the_checked_encoder(key: ServerKey) -> None:
    # The bytes signed for the minimal vector are exactly its canonical redacted form.
    redacted = redact(MINIMAL_EVENT_SIGNED, ROOM_V10)
    del redacted["signatures"]
    message = canonical_json.encode(redacted)
    sig = decode_base64(MINIMAL_EVENT_SIGNED["signatures"]["domain"][KEY_ID])
    key.verify_key.verify(message, sig)


@pytest.mark.parametrize("version", ["1", "abc_DEF_09"])
def test_generate_server_key(version: str) -> None:
    generated = generate_server_key("example.org", version)
    assert generated.key_id == f"ed25519:{version}"
    signed = sign_json({"a": 1}, generated.server_name, generated.signing_key)
    verify_json(signed, "example.org", generated.verify_key)


@pytest.mark.parametrize("version", ["", "a:b", "a-b", "a b", "1\n", "\u00e9"])
def test_generate_server_key_rejects_bad_versions(version: str) -> None:
    with pytest.raises(ValueError):
        generate_server_key("example.org", version)
