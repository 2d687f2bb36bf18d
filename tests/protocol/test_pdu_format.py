"""PDU format checks (receipt step 1) and the PDU builder."""

from __future__ import annotations

import copy

import pytest

from federation.protocol.errors import InvalidEventError
from federation.protocol.events import Event
from federation.protocol.hashing import content_hash_matches
from federation.protocol.pdu_format import MAX_PDU_BYTES, check_pdu_format
from federation.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12
from tests.protocol.factory import Room

VERSIONS = [ROOM_V10, ROOM_V11, ROOM_V12]


@pytest.fixture(params=VERSIONS, ids=lambda v: v.identifier)
def room(request: pytest.FixtureRequest) -> Room:
    return Room(request.param)


def _message(room: Room, body: str = "hello") -> dict:
    return copy.deepcopy(room.build("m.room.message", room.creator, {"body": body}).pdu)


def test_built_events_are_well_formed(room: Room) -> None:
    for event in room.events.values():
        check_pdu_format(event.pdu, room.version)
        assert content_hash_matches(event.pdu)


@pytest.mark.parametrize(
    "field", ["type", "sender", "origin_server_ts", "content", "depth", "prev_events",
              "auth_events", "hashes", "signatures", "room_id"],
)
def test_missing_required_field_is_rejected(room: Room, field: str) -> None:
    pdu = _message(room)
    del pdu[field]
    with pytest.raises(InvalidEventError):
        check_pdu_format(pdu, room.version)


@pytest.mark.parametrize(
    "field,value",
    [("type", 5), ("content", []), ("depth", "3"), ("depth", True), ("prev_events", "x"),
     ("origin_server_ts", 1.5), ("state_key", 3), ("unsigned", [])],
)
def test_wrong_field_type_is_rejected(room: Room, field: str, value: object) -> None:
    pdu = _message(room)
    pdu[field] = value
    with pytest.raises(InvalidEventError):
        check_pdu_format(pdu, room.version)


def test_oversized_pdu_is_m_too_large(room: Room) -> None:
    pdu = _message(room)
    pdu["content"]["body"] = "x" * MAX_PDU_BYTES
    with pytest.raises(InvalidEventError) as info:
        check_pdu_format(pdu, room.version)
    assert info.value.errcode == "M_TOO_LARGE" and info.value.status == 413


def test_pdu_just_under_the_limit_is_accepted(room: Room) -> None:
    from federation.protocol.canonical_json import encode

    pdu = _message(room, "")
    pdu["content"]["body"] = "x" * (MAX_PDU_BYTES - len(encode(pdu)))
    assert len(encode(pdu)) == MAX_PDU_BYTES
    check_pdu_format(pdu, room.version)
    pdu["content"]["body"] += "x"
    with pytest.raises(InvalidEventError):
        check_pdu_format(pdu, room.version)


def test_float_anywhere_is_m_bad_json(room: Room) -> None:
    pdu = _message(room)
    pdu["content"]["n"] = 0.5
    with pytest.raises(InvalidEventError) as info:
        check_pdu_format(pdu, room.version)
    assert info.value.errcode == "M_BAD_JSON"


def test_too_many_prev_or_auth_events(room: Room) -> None:
    ref = room.last.event_id
    pdu = _message(room)
    pdu["prev_events"] = [ref] * 21
    with pytest.raises(InvalidEventError, match="prev_events"):
        check_pdu_format(pdu, room.version)
    pdu = _message(room)
    pdu["auth_events"] = [ref] * 11
    with pytest.raises(InvalidEventError, match="auth_events"):
        check_pdu_format(pdu, room.version)


def test_event_references_must_be_event_ids(room: Room) -> None:
    pdu = _message(room)
    pdu["prev_events"] = ["$legacy:example.org"]
    with pytest.raises(InvalidEventError):
        check_pdu_format(pdu, room.version)


def test_long_type_is_rejected(room: Room) -> None:
    pdu = _message(room)
    pdu["type"] = "x" * 256
    with pytest.raises(InvalidEventError, match="255"):
        check_pdu_format(pdu, room.version)


def test_invalid_sender_is_rejected(room: Room) -> None:
    pdu = _message(room)
    pdu["sender"] = "not-a-user"
    with pytest.raises(InvalidEventError, match="sender"):
        check_pdu_format(pdu, room.version)


def test_v12_create_event_must_not_have_room_id() -> None:
    room = Room(ROOM_V12)
    pdu = copy.deepcopy(room.create.pdu)
    check_pdu_format(pdu, ROOM_V12)
    pdu["room_id"] = "!abc:example.org"
    with pytest.raises(InvalidEventError, match="room_id"):
        check_pdu_format(pdu, ROOM_V12)


def test_v12_room_ids_are_hashes() -> None:
    room = Room(ROOM_V12)
    pdu = _message(room)
    pdu["room_id"] = "!room:example.org"
    with pytest.raises(InvalidEventError, match="hash"):
        check_pdu_format(pdu, ROOM_V12)


def test_v12_room_id_is_the_create_event_hash() -> None:
    room = Room(ROOM_V12)
    assert room.room_id == "!" + room.create.event_id[1:]
    assert all(e.room_id == room.room_id for e in room.events.values())
    # The create event is never cited: the room ID stands for it.
    for event in room.events.values():
        assert room.create.event_id not in event.auth_event_ids
        if not event.is_create():
            assert room.create.event_id in event.auth_and_create_event_ids()


def test_redacts_placement_per_version() -> None:
    for version, in_content in ((ROOM_V10, False), (ROOM_V11, True), (ROOM_V12, True)):
        room = Room(version)
        target = room.send("m.room.message", room.creator, {"body": "oops"})
        redaction = room.build("m.room.redaction", room.creator, {}, redacts=target.event_id)
        assert redaction.redacts == target.event_id
        assert ("redacts" in redaction.content) is in_content
        assert ("redacts" in redaction.pdu) is not in_content


def test_v10_redaction_without_top_level_redacts_is_rejected() -> None:
    room = Room(ROOM_V10)
    pdu = _message(room)
    pdu["type"] = "m.room.redaction"
    with pytest.raises(InvalidEventError, match="redacts"):
        check_pdu_format(pdu, ROOM_V10)


def test_event_id_field_is_dropped_on_receipt() -> None:
    room = Room(ROOM_V11)
    event = room.last
    pdu = dict(event.pdu, event_id="$forged")
    assert Event(pdu, ROOM_V11).event_id == event.event_id
