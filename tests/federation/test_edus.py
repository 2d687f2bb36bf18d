"""EDU formats: what we send parses back as sent; what another server sends is
checked (shapes, and every user belongs to the sending server)."""

from __future__ import annotations

from typing import Any

import pytest

from federation import edus
from federation.edus import MalformedEdu

ORIGIN = "remote.test"
ROOM = "!room:hs.test"
EVENT = "$" + "e" * 43  # a room v4+ event ID
BOB = "@bob:remote.test"
MALLORY = "@mallory:other.test"


def test_typing_round_trip() -> None:
    sent = edus.typing_edu(ROOM, BOB, True)
    assert sent == {"edu_type": "m.typing",
                    "content": {"room_id": ROOM, "user_id": BOB, "typing": True}}
    assert edus.parse_typing(ORIGIN, sent["content"]) == edus.TypingUpdate(ROOM, BOB, True)


@pytest.mark.parametrize("content", [
    None, [], {"room_id": ROOM, "user_id": BOB},
    {"room_id": ROOM, "user_id": BOB, "typing": "yes"},
    {"room_id": "not a room", "user_id": BOB, "typing": True},
    {"room_id": ROOM, "user_id": "bob", "typing": True},
    {"room_id": ROOM, "user_id": MALLORY, "typing": True},  # another server's user
])
def test_bad_typing_is_refused(content: Any) -> None:
    with pytest.raises(MalformedEdu):
        edus.parse_typing(ORIGIN, content)


def test_receipt_round_trip_with_thread() -> None:
    update = edus.ReceiptUpdate(ROOM, "m.read", BOB, EVENT, 1234, "$thread")
    sent = edus.receipt_edu(update)
    assert sent["content"] == {ROOM: {"m.read": {BOB: {
        "event_ids": [EVENT], "data": {"ts": 1234, "thread_id": "$thread"}}}}}
    assert edus.parse_receipts(ORIGIN, sent["content"]) == [update]


def test_receipts_keep_only_valid_public_entries_of_the_origins_users() -> None:
    content = {
        ROOM: {
            "m.read": {
                BOB: {"event_ids": [EVENT], "data": {"ts": 5}},
                MALLORY: {"event_ids": [EVENT], "data": {"ts": 5}},
                "@carol:remote.test": {"event_ids": [], "data": {}},
                "@dave:remote.test": "garbage",
            },
            "m.read.private": {"@erin:remote.test": {"event_ids": [EVENT], "data": {}}},
        },
        "not a room": {"m.read": {BOB: {"event_ids": [EVENT]}}},
        "!other:hs.test": "garbage",
    }
    assert edus.parse_receipts(ORIGIN, content) == [
        edus.ReceiptUpdate(ROOM, "m.read", BOB, EVENT, 5, "")]


def test_presence_round_trip_and_bad_entries_skipped() -> None:
    good = edus.PresenceUpdate(BOB, "online", 1000, "here", True)
    sent = edus.presence_edu([good])
    content = {"push": sent["content"]["push"] + [
        {"user_id": MALLORY, "presence": "online"},
        {"user_id": BOB, "presence": "dancing"},
        "garbage",
    ]}
    assert edus.parse_presence(ORIGIN, content) == [good]
    with pytest.raises(MalformedEdu):
        edus.parse_presence(ORIGIN, {"push": "nope"})


def test_to_device_round_trip() -> None:
    messages = edus.ToDeviceMessages(BOB, "m.room_key_request", "msg1",
                                     {"@alice:hs.test": {"*": {"a": 1}, "DEV": {"b": 2}}})
    sent = edus.to_device_edu(messages)
    assert edus.parse_to_device(ORIGIN, sent["content"]) == messages


@pytest.mark.parametrize("change", [
    {"sender": MALLORY},
    {"message_id": ""},
    {"type": 5},
    {"messages": {"@alice:hs.test": {"DEV": "not an object"}}},
    {"messages": {"not a user": {"DEV": {}}}},
    {"messages": []},
])
def test_bad_to_device_is_refused(change: dict[str, Any]) -> None:
    content = {"sender": BOB, "type": "m.x", "message_id": "m1",
               "messages": {"@alice:hs.test": {"DEV": {}}}, **change}
    with pytest.raises(MalformedEdu):
        edus.parse_to_device(ORIGIN, content)


def test_device_list_update_round_trip() -> None:
    update = edus.DeviceListUpdate(BOB, "DEV", 7, [5], False)
    sent = edus.device_list_edu(update, keys={"device_id": "DEV"}, display_name="phone")
    assert sent["content"]["keys"] == {"device_id": "DEV"}
    assert sent["content"]["device_display_name"] == "phone"
    assert edus.parse_device_list_update(ORIGIN, sent["content"]) == update


@pytest.mark.parametrize("change", [
    {"user_id": MALLORY}, {"device_id": None}, {"stream_id": "7"}, {"stream_id": True},
    {"prev_id": ["5"]}, {"prev_id": 5},
])
def test_bad_device_list_update_is_refused(change: dict[str, Any]) -> None:
    content = {"user_id": BOB, "device_id": "DEV", "stream_id": 7, "prev_id": [], **change}
    with pytest.raises(MalformedEdu):
        edus.parse_device_list_update(ORIGIN, content)
