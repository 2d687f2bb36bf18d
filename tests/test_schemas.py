"""The JSON Schemas load, are valid schemas, and accept/reject real documents."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# The stream's frames (frames/) and the /sync body they carry (responses/) ---------------

EMPTY_SYNC = {"next_batch": "s1", "rooms": {"join": {}, "invite": {}, "leave": {}, "knock": {}},
              "presence": {"events": []}, "account_data": {"events": []},
              "to_device": {"events": []}, "device_lists": {"changed": [], "left": []}}


@pytest.mark.parametrize("kind,name", [(kind, name) for kind in ("frames", "responses")
                                       for name in schemas.available(kind)])
def test_every_frame_and_response_schema_is_a_valid_schema(kind: str, name: str) -> None:
    schemas._validator(kind, name)
    assert schemas.load(kind, name)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_frame_schemas_are_sync_reply_and_error() -> None:
    assert schemas.available("frames") == ["error", "reply", "sync"]


@pytest.mark.parametrize("name,frame", [
    ("sync", {"type": "sync", "next_batch": "s1", "data": EMPTY_SYNC}),
    ("sync", {"type": "sync", "next_batch": "s2", "data": {**EMPTY_SYNC, "rooms": {"join": {
        "!r:x": {"timeline": {"events": [{"type": "m.room.message", "event_id": "$e",
                                          "sender": "@a:x", "origin_server_ts": 1,
                                          "content": {"body": "hi"}}],
                              "limited": False, "prev_batch": "p"},
                 "ephemeral": {"events": [{"type": "m.typing", "content": {"user_ids": []}}]},
                 "unread_notifications": {"notification_count": 1, "highlight_count": 0}}}}}}),
    ("reply", {"id": "a", "result": {"event_id": "$abc"}}),
    ("reply", {"id": "b", "result": {}}),
    ("error", {"id": "c", "error": {"errcode": "M_FORBIDDEN", "error": "no"}}),
    ("error", {"id": None, "error": {"errcode": "M_LIMIT_EXCEEDED", "error": "slow down",
                                     "retry_after_ms": 100}}),
])
def test_frames_the_server_sends_pass(name: str, frame: dict) -> None:
    schemas.validate("frames", name, frame)


@pytest.mark.parametrize("name,frame", [
    ("sync", {"type": "sync", "next_batch": "s1", "data": {"next_batch": "s1"}}),
    ("sync", {"type": "sync", "data": EMPTY_SYNC}),
    ("sync", {"type": "sync", "next_batch": "s1", "data": {**EMPTY_SYNC, "presence": []}}),
    ("sync", {"type": "sync", "next_batch": "s1", "data": {
        **EMPTY_SYNC, "rooms": {"join": {"!r:x": {"timeline": {"events": [5]}}}}}}),
    ("reply", {"id": "a", "result": {"event_id": "abc"}}),
    ("reply", {"result": {}}),
    ("reply", {"id": "a", "result": {}, "error": {}}),
    ("error", {"id": 5, "error": {"errcode": "M_BAD_JSON", "error": "x"}}),
    ("error", {"id": "a", "error": {"errcode": "nope", "error": "x"}}),
    ("error", {"id": "a", "error": {"errcode": "M_UNKNOWN"}}),
])
def test_malformed_frames_fail(name: str, frame: dict) -> None:
    with pytest.raises(schemas.SchemaError):
        schemas.validate("frames", name, frame)


# The plain-text fast path of validate_event_content must accept nothing the
# m.room.message schema refuses. Editing the schema changes this digest: then
# check is_plain_text_message against the new rules and update it.
MESSAGE_SCHEMA_SHA256 = "176961aeafc96f27144837dd7cb5d33172016b13de6fe0fd3fdbd3355259325f"
MSGTYPES = st.sampled_from(["m.text", "m.notice", "m.emote", "m.image", "m.file", "m.audio",
                            "m.video", "m.location"])
MESSAGE_VALUES = st.none() | st.booleans() | st.integers() | st.text(max_size=6) | MSGTYPES \
    | st.sampled_from(["geo:1,2", "mxc://a/b"]) | st.lists(st.text(max_size=3), max_size=2) \
    | st.just({})
MESSAGE_KEYS = st.sampled_from(["msgtype", "body", "geo_uri", "url", "info", "format"])


def test_the_message_schema_is_the_one_the_fast_path_was_checked_against() -> None:
    text = (Path(schemas.__file__).parent / "events" / "m.room.message.json").read_bytes()
    assert hashlib.sha256(text).hexdigest() == MESSAGE_SCHEMA_SHA256


@settings(max_examples=400, deadline=None)
@given(content=st.dictionaries(MESSAGE_KEYS, MESSAGE_VALUES, max_size=4)
       | st.fixed_dictionaries({"msgtype": MSGTYPES | MESSAGE_VALUES,
                                 "body": st.text(max_size=6) | MESSAGE_VALUES}))
def test_plain_text_fast_path_accepts_only_what_the_schema_accepts(content: dict) -> None:
    validator = schemas._validator("events", "m.room.message")
    if schemas.is_plain_text_message(content):
        assert validator.is_valid(content)
    if validator.is_valid(content):
        schemas.validate_event_content("m.room.message", content)
    else:
        with pytest.raises(schemas.SchemaError):
            schemas.validate_event_content("m.room.message", content)


@pytest.mark.parametrize("content, fast", [
    ({"msgtype": "m.text", "body": "hi"}, True),
    ({"msgtype": "m.image", "body": "cat.png"}, True),
    ({"msgtype": "m.location", "body": "here"}, False),
    ({"msgtype": "m.text", "body": 5}, False),
    ({"msgtype": "m.text"}, False),
    ({"msgtype": "m.text", "body": "hi", "format": "org.matrix.custom.html"}, False),
    (["msgtype", "body"], False),
])
def test_plain_text_fast_path_cases(content: Any, fast: bool) -> None:
    assert schemas.is_plain_text_message(content) is fast
