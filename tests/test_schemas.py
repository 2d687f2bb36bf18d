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


@pytest.mark.parametrize("content", [
    {"msgtype": "m.image", "body": "cat.png", "url": "mxc://example.org/abc",
     "info": {"mimetype": "image/png", "size": 31037, "w": 394, "h": 398,
              "thumbnail_url": "mxc://example.org/def"}},
    {"msgtype": "m.file", "body": "a.txt", "filename": "a.txt", "file": {"url": "mxc://x/y"}},
    {"msgtype": "m.audio", "body": "a.ogg", "url": "mxc://x/y", "info": {"duration": 2140}},
    {"msgtype": "m.location", "body": "Big Ben", "geo_uri": "geo:51.5008,0.1247"},
    {"msgtype": "m.emote", "body": "waves", "format": "org.matrix.custom.html",
     "formatted_body": "<b>waves</b>"},
    {"msgtype": "org.example.custom", "body": "x", "url": 5},
])
def test_message_contents_per_msgtype_pass(content: dict) -> None:
    schemas.validate_event_content("m.room.message", content)


@pytest.mark.parametrize("content", [
    {"msgtype": "m.image", "body": "cat.png", "url": "https://example.org/cat.png"},
    {"msgtype": "m.video", "body": "v", "url": "mxc://x/y", "info": {"duration": "2s"}},
    {"msgtype": "m.file", "body": "a", "filename": 5},
    {"msgtype": "m.location", "body": "Big Ben"},
    {"msgtype": "m.location", "body": "Big Ben", "geo_uri": "51.5,0.12"},
])
def test_message_contents_per_msgtype_fail(content: dict) -> None:
    with pytest.raises(schemas.SchemaError) as info:
        schemas.validate_event_content("m.room.message", content)
    assert info.value.errcode == "M_BAD_JSON"
