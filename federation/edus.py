"""EDU wire formats (spec: server-server API, "EDUs"): building the ones we
send and parsing the ones we receive.

Parsers take the untrusted `content` of an EDU and return a typed value, or
raise `MalformedEdu`; they check shapes and that every user named belongs to
the sending server, nothing that needs storage. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from federation.protocol import identifiers

TYPING = "m.typing"
RECEIPT = "m.receipt"
PRESENCE = "m.presence"
DIRECT_TO_DEVICE = "m.direct_to_device"
DEVICE_LIST_UPDATE = "m.device_list_update"

PUBLIC_RECEIPT = "m.read"  # m.read.private never leaves its server
PRESENCE_STATES = ("online", "unavailable", "offline")


class MalformedEdu(ValueError):
    """The EDU is not what the spec describes, or names another server's user."""


def edu(edu_type: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"edu_type": edu_type, "content": content}


# Typed EDUs ---------------------------------------------------------------------


@dataclass(frozen=True)
class TypingUpdate:
    room_id: str
    user_id: str
    typing: bool


@dataclass(frozen=True)
class ReceiptUpdate:
    room_id: str
    receipt_type: str
    user_id: str
    event_id: str
    ts: int
    thread_id: str  # "" = unthreaded


@dataclass(frozen=True)
class PresenceUpdate:
    user_id: str
    presence: str
    last_active_ago: int | None
    status_msg: str | None
    currently_active: bool


@dataclass(frozen=True)
class ToDeviceMessages:
    sender: str
    event_type: str
    message_id: str
    messages: dict[str, dict[str, dict[str, Any]]]  # user -> device or "*" -> content


@dataclass(frozen=True)
class DeviceListUpdate:
    user_id: str
    device_id: str
    stream_id: int
    prev_id: list[int]
    deleted: bool


# Building --------------------------------------------------------------------------


def typing_edu(room_id: str, user_id: str, typing: bool) -> dict[str, Any]:
    return edu(TYPING, {"room_id": room_id, "user_id": user_id, "typing": typing})


def receipt_edu(update: ReceiptUpdate) -> dict[str, Any]:
    data: dict[str, Any] = {"ts": update.ts}
    if update.thread_id:
        data["thread_id"] = update.thread_id
    return edu(RECEIPT, {update.room_id: {update.receipt_type: {
        update.user_id: {"event_ids": [update.event_id], "data": data}}}})


def presence_edu(updates: list[PresenceUpdate]) -> dict[str, Any]:
    push = []
    for update in updates:
        entry: dict[str, Any] = {"user_id": update.user_id, "presence": update.presence,
                                 "currently_active": update.currently_active}
        if update.last_active_ago is not None:
            entry["last_active_ago"] = update.last_active_ago
        if update.status_msg is not None:
            entry["status_msg"] = update.status_msg
        push.append(entry)
    return edu(PRESENCE, {"push": push})


def to_device_edu(messages: ToDeviceMessages) -> dict[str, Any]:
    return edu(DIRECT_TO_DEVICE, {"sender": messages.sender, "type": messages.event_type,
                                  "message_id": messages.message_id,
                                  "messages": messages.messages})


def device_list_edu(update: DeviceListUpdate, keys: dict[str, Any] | None = None,
                    display_name: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"user_id": update.user_id, "device_id": update.device_id,
                               "stream_id": update.stream_id, "prev_id": update.prev_id,
                               "deleted": update.deleted}
    if keys is not None:
        content["keys"] = keys
    if display_name is not None:
        content["device_display_name"] = display_name
    return edu(DEVICE_LIST_UPDATE, content)


# Parsing ---------------------------------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise MalformedEdu(message)


def _user_of(origin: str, user_id: Any) -> str:
    _require(identifiers.is_valid_user_id(user_id), f"invalid user ID {user_id!r}")
    _require(identifiers.server_of(user_id) == origin, f"{user_id} does not belong to {origin}")
    return str(user_id)


def _room(room_id: Any) -> str:
    _require(identifiers.is_valid_room_id(room_id), f"invalid room ID {room_id!r}")
    return str(room_id)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_typing(origin: str, content: Any) -> TypingUpdate:
    _require(isinstance(content, dict), "content must be an object")
    _require(isinstance(content.get("typing"), bool), "typing must be a boolean")
    return TypingUpdate(_room(content.get("room_id")), _user_of(origin, content.get("user_id")),
                        content["typing"])


def parse_receipts(origin: str, content: Any) -> list[ReceiptUpdate]:
    """Every public receipt in the EDU; other receipt types are skipped, a
    malformed entry skips only itself."""
    _require(isinstance(content, dict), "content must be an object")
    out: list[ReceiptUpdate] = []
    for room_id, by_type in content.items():
        if not identifiers.is_valid_room_id(room_id) or not isinstance(by_type, dict):
            continue
        by_user = by_type.get(PUBLIC_RECEIPT)
        if not isinstance(by_user, dict):
            continue
        for user_id, receipt in by_user.items():
            try:
                out.append(_parse_receipt(origin, room_id, user_id, receipt))
            except MalformedEdu:
                continue
    return out


def _parse_receipt(origin: str, room_id: str, user_id: Any, receipt: Any) -> ReceiptUpdate:
    _require(isinstance(receipt, dict), "receipt must be an object")
    event_ids = receipt.get("event_ids")
    _require(isinstance(event_ids, list) and len(event_ids) > 0
             and all(identifiers.is_valid_event_id(e) for e in event_ids),
             "event_ids must be a non-empty list of event IDs")
    data = receipt.get("data")
    data = data if isinstance(data, dict) else {}
    ts = data.get("ts")
    thread_id = data.get("thread_id")
    thread = thread_id if isinstance(thread_id, str) and thread_id else ""
    return ReceiptUpdate(room_id, PUBLIC_RECEIPT, _user_of(origin, user_id), event_ids[-1],
                         ts if _int(ts) else 0, thread)


def parse_presence(origin: str, content: Any) -> list[PresenceUpdate]:
    """Every valid entry of `push`; a malformed entry skips only itself."""
    _require(isinstance(content, dict) and isinstance(content.get("push"), list),
             "push must be a list")
    out: list[PresenceUpdate] = []
    for entry in content["push"]:
        try:
            out.append(_parse_presence_entry(origin, entry))
        except MalformedEdu:
            continue
    return out


def _parse_presence_entry(origin: str, entry: Any) -> PresenceUpdate:
    _require(isinstance(entry, dict), "presence entry must be an object")
    user_id = _user_of(origin, entry.get("user_id"))
    _require(entry.get("presence") in PRESENCE_STATES, "unknown presence state")
    ago = entry.get("last_active_ago")
    status = entry.get("status_msg")
    return PresenceUpdate(user_id, entry["presence"], ago if _int(ago) and ago >= 0 else None,
                          status if isinstance(status, str) else None,
                          entry.get("currently_active") is True)


def parse_to_device(origin: str, content: Any) -> ToDeviceMessages:
    _require(isinstance(content, dict), "content must be an object")
    sender = _user_of(origin, content.get("sender"))
    event_type, message_id = content.get("type"), content.get("message_id")
    _require(isinstance(event_type, str) and bool(event_type), "type must be a string")
    _require(isinstance(message_id, str) and bool(message_id), "message_id must be a string")
    messages = content.get("messages")
    _require(isinstance(messages, dict), "messages must be an object")
    for user_id, by_device in messages.items():
        _require(identifiers.is_valid_user_id(user_id), f"invalid user ID {user_id!r}")
        _require(isinstance(by_device, dict) and all(
            isinstance(d, str) and d and isinstance(c, dict) for d, c in by_device.items()),
            "messages must map device IDs to content objects")
    return ToDeviceMessages(sender, event_type, message_id, messages)


def parse_device_list_update(origin: str, content: Any) -> DeviceListUpdate:
    _require(isinstance(content, dict), "content must be an object")
    user_id = _user_of(origin, content.get("user_id"))
    device_id, stream_id = content.get("device_id"), content.get("stream_id")
    _require(isinstance(device_id, str) and bool(device_id), "device_id must be a string")
    _require(_int(stream_id), "stream_id must be an integer")
    prev_id = content.get("prev_id", [])
    _require(isinstance(prev_id, list) and all(_int(p) for p in prev_id),
             "prev_id must be a list of integers")
    return DeviceListUpdate(user_id, device_id, stream_id, prev_id,
                            content.get("deleted") is True)
