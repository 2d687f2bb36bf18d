"""`build_event` encodes each canonical form once; its events must stay byte for
byte what hashing, signing and identifying them one step at a time gives.

The pinned IDs, hashes and signatures were produced by the step-by-step
builder (`hash_and_sign_event`, `check_pdu_format`, `compute_event_id`)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from signedjson.key import decode_signing_key_base64

from federation.protocol import canonical_json
from federation.protocol.errors import Codes, InvalidEventError
from federation.protocol.events import Event
from federation.protocol.hashing import compute_event_id, encode_base64
from federation.protocol.pdu_format import MAX_PDU_BYTES, build_event, check_pdu_format
from federation.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12, RoomVersion
from federation.protocol.signing import ServerKey, hash_and_sign_event
from tests.json_values import json_values

KEY = ServerKey("pinned.example", decode_signing_key_base64(
    "ed25519", "pin", encode_base64(hashlib.sha256(b"pinned").digest())))
SENDER = "@alice:pinned.example"
MESSAGE = {"msgtype": "m.text", "body": "caf\u00e9 \u2603 pinned",
           "m.mentions": {"user_ids": ["@bob:pinned.example"]}}


def _room_id(version: RoomVersion) -> str:
    return "!" + "R" * 43 if version.room_id_is_create_hash else "!room:pinned.example"


def _message(version: RoomVersion, content: dict[str, Any] = MESSAGE) -> Event:
    return build_event(version, KEY, event_type="m.room.message", sender=SENDER,
                       content=content, room_id=_room_id(version),
                       prev_events=["$" + "P" * 43], auth_events=["$" + "A" * 43], depth=42,
                       origin_server_ts=1_700_000_000_123, unsigned={"age": 7})


def _create(version: RoomVersion) -> Event:
    return build_event(version, KEY, event_type="m.room.create", sender=SENDER,
                       content={"room_version": version.identifier},
                       room_id=None if version.room_id_is_create_hash else _room_id(version),
                       prev_events=[], auth_events=[], depth=1,
                       origin_server_ts=1_700_000_000_000, state_key="")


# version -> (event ID, content hash, signature) of _message, then _create's ID and signature
PINNED = {
    ROOM_V10: ("$Z_3ih33-nTCI9NRZ2eTehMoA9Dylj_NPGw07CuAvmeY",
               "DjdGbKf+gbiE5fUIwG6sWsUY+oY1lfyxAiMLY7/VtHs",
               ("WOgmuFN8GI1v0TQuR1HbRMlO9NPy8nwF3okdIihaRrafHCoTnTEfmHq27ucGt7a18/dEArvnTnHyRQ0O"
                "G2vGDA"),
               "$H9v86eSw1ROwGoR-r9nvBrNsuoFY3x8LchN2eC5i2ZI",
               ("RfsWfs24om/7gppasaEoXA9fMY6j9jUZtmMGufU3jfjIDOYnpzGOLoTVLh8etjb+tn0RLheyTbI0qMEw"
                "8cTXBw")),
    ROOM_V11: ("$Z_3ih33-nTCI9NRZ2eTehMoA9Dylj_NPGw07CuAvmeY",
               "DjdGbKf+gbiE5fUIwG6sWsUY+oY1lfyxAiMLY7/VtHs",
               ("WOgmuFN8GI1v0TQuR1HbRMlO9NPy8nwF3okdIihaRrafHCoTnTEfmHq27ucGt7a18/dEArvnTnHyRQ0O"
                "G2vGDA"),
               "$6VL7zHeQz9P8QBP4cGLTeVfVSuTiFNtS-PjdMGlR3nA",
               ("JzoSF6vLSW8ri0oqsGNfAJeCw1wPe3FCIXShb7pME5+T5fTLFxkweKFEHb19iMv2i9YUJzb9Ls9sZ1os"
                "RRQvBA")),
    ROOM_V12: ("$DSmMGfb29wu5x_RJZaOQe2uneCvpR2XtfrGWHwcyLAk",
               "/piww/eBEa5bcpzAMxxYcnEhqk0Wuob+CbE7J/xqpqw",
               ("yIGGso3LvEIUEuGyPPblbQqEmUBUrURAflYca2nw1NGprJ0XHtgzCFiySKP+8KHV1NUsbYrB1yb8x+gW"
                "YksTCw"),
               "$AED9B0aU1Q7jSZm5oRiQF4-kb20VJwCmHKYzCEqtzIY",
               ("F6Iuvb45oaljmCKMS2/hAvKd789UbNmN9AUu62F+fp5AsoPPRI/VdsAOr5HYE79As7OaxapeRBurdCnyUQN5"
                "Bw")),
}


@pytest.mark.parametrize("version", list(PINNED), ids=lambda v: f"v{v.identifier}")
def test_built_events_are_pinned(version: RoomVersion) -> None:
    event_id, content_hash, signature, create_id, create_signature = PINNED[version]
    message, create = _message(version), _create(version)
    assert message.event_id == event_id
    assert message.pdu["hashes"] == {"sha256": content_hash}
    assert message.pdu["signatures"] == {"pinned.example": {"ed25519:pin": signature}}
    assert message.pdu["unsigned"] == {"age": 7}
    assert create.event_id == create_id
    assert create.pdu["signatures"] == {"pinned.example": {"ed25519:pin": create_signature}}
    if version.room_id_is_create_hash:
        assert create.room_id == "!" + create_id[1:]


def _step_by_step(version: RoomVersion, event: Event) -> tuple[dict[str, Any], str]:
    """What the builder did before: hash and sign, check the format, derive the ID."""
    fresh = {k: v for k, v in event.pdu.items() if k not in ("hashes", "signatures", "unsigned")}
    signed = hash_and_sign_event(fresh, KEY, version)
    check_pdu_format(signed, version)
    return signed, compute_event_id(signed, version)




@settings(max_examples=150, deadline=None)
@given(content=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
       version=st.sampled_from([ROOM_V10, ROOM_V11, ROOM_V12]))
def test_built_events_match_the_step_by_step_builder(content: dict[str, Any],
                                                     version: RoomVersion) -> None:
    event = _message(version, content)
    signed, event_id = _step_by_step(version, event)
    assert event.event_id == event_id
    assert canonical_json.encode(event.pdu) == canonical_json.encode({**signed,
                                                                       "unsigned": {"age": 7}})


@pytest.mark.parametrize("slack", [-2, -1, 0, 1, 2])
def test_size_limit_is_exact_at_the_boundary(slack: int) -> None:
    """An event of exactly MAX_PDU_BYTES is built; one byte more is refused."""
    base = len(canonical_json.encode({**_message(ROOM_V10, {"body": ""}).pdu}))
    base -= len(canonical_json.encode({"age": 7})) + len(',"unsigned":')
    body = "x" * (MAX_PDU_BYTES - base + slack)
    if slack > 0:
        with pytest.raises(InvalidEventError) as raised:
            _message(ROOM_V10, {"body": body})
        assert raised.value.errcode == Codes.TOO_LARGE
    else:
        event = _message(ROOM_V10, {"body": body})
        without_unsigned = {k: v for k, v in event.pdu.items() if k != "unsigned"}
        assert len(canonical_json.encode(without_unsigned)) == MAX_PDU_BYTES + slack


@pytest.mark.parametrize("bad", [1.5, 2**53, "\ud800", {1: "x"}, {"k": {"\udfff": 1}}])
def test_non_canonical_content_is_refused_as_before(bad: Any) -> None:
    with pytest.raises(InvalidEventError) as raised:
        _message(ROOM_V10, {"body": "b", "bad": bad})
    assert raised.value.errcode == Codes.BAD_JSON
