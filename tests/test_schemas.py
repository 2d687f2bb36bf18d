"""The JSON Schemas load, are valid schemas, and accept/reject real documents."""

from __future__ import annotations

import pytest

import schemas
from federation.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12
from tests.protocol.factory import Room


@pytest.mark.parametrize("name", schemas.available("events"))
def test_every_event_schema_is_a_valid_schema(name: str) -> None:
    schemas._validator("events", name)  # raises if the schema itself is invalid


@pytest.mark.parametrize("version", [ROOM_V10, ROOM_V11, ROOM_V12], ids=lambda v: v.identifier)
def test_real_pdus_match_the_pdu_schema(version) -> None:
    room = Room(version)
    room.send("m.room.message", room.creator, {"msgtype": "m.text", "body": "hi"})
    for event in room.events.values():
        schemas.validate("events", "pdu", event.pdu)
        schemas.validate_event_content(event.type, event.content)


def test_bad_member_content_is_m_bad_json() -> None:
    with pytest.raises(schemas.SchemaError) as info:
        schemas.validate_event_content("m.room.member", {"membership": "dance"})
    assert info.value.errcode == "M_BAD_JSON"
    assert info.value.status == 400


def test_float_power_level_is_rejected() -> None:
    with pytest.raises(schemas.SchemaError, match="ban"):
        schemas.validate_event_content("m.room.power_levels", {"ban": 50.5})


def test_unknown_event_types_are_not_validated() -> None:
    schemas.validate_event_content("com.example.anything", {"whatever": [1, 2]})


def test_message_requires_body_and_msgtype() -> None:
    with pytest.raises(schemas.SchemaError):
        schemas.validate_event_content("m.room.message", {"msgtype": "m.text"})
