"""The live model of rooms, members, presence, typing, receipts and unread counts.

Pure: `ClientModel.apply_sync(body)` takes a /sync body (from /sync or a stream
frame) and returns what is new; the caller does all I/O. Events already seen are
dropped by event ID, so replaying a body never duplicates anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


@dataclass
class Member:
    user_id: str
    membership: str
    displayname: str | None = None
    avatar_url: str | None = None


@dataclass
class RoomState:
    room_id: str
    membership: str = "join"
    state: dict[tuple[str, str], Event] = field(default_factory=dict)
    timeline: list[Event] = field(default_factory=list)
    # Local echoes by transaction ID, in send order (shown after the timeline).
    pending: dict[str, Event] = field(default_factory=dict)
    prev_batch: str | None = None
    typing: list[str] = field(default_factory=list)
    # user ID -> {"event_id", "ts"} of their latest m.read receipt.
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    notification_count: int = 0
    highlight_count: int = 0
    account_data: dict[str, dict[str, Any]] = field(default_factory=dict)
    invite_state: list[Event] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, repr=False)

    @property
    def name(self) -> str | None:
        return self._state_content("m.room.name").get("name")

    @property
    def topic(self) -> str | None:
        return self._state_content("m.room.topic").get("topic")

    @property
    def canonical_alias(self) -> str | None:
        return self._state_content("m.room.canonical_alias").get("alias")

    @property
    def display_name(self) -> str:
        return self.name or self.canonical_alias or self.room_id

    @property
    def members(self) -> dict[str, Member]:
        result = {}
        for (event_type, state_key), event in self.state.items():
            if event_type == "m.room.member":
                content = event.get("content", {})
                result[state_key] = Member(state_key, str(content.get("membership", "leave")),
                                           content.get("displayname"),
                                           content.get("avatar_url"))
        return result

    @property
    def joined_members(self) -> list[str]:
        return sorted(uid for uid, m in self.members.items() if m.membership == "join")

    def messages(self, include_pending: bool = True) -> list[Event]:
        """The timeline as a GUI shows it: known events, then our pending sends."""
        return self.timeline + (list(self.pending.values()) if include_pending else [])

    def has_event(self, event_id: str) -> bool:
        return event_id in self._seen

    def _state_content(self, event_type: str) -> dict[str, Any]:
        event = self.state.get((event_type, ""))
        return event.get("content", {}) if event else {}

    def apply_state(self, event: Event) -> None:
        if isinstance(event.get("state_key"), str) and isinstance(event.get("type"), str):
            self.state[(event["type"], event["state_key"])] = event

    def append_timeline(self, event: Event) -> bool:
        """Add a new event at the end; False when it was already known."""
        event_id = event.get("event_id")
        if not isinstance(event_id, str) or event_id in self._seen:
            return False
        self._seen.add(event_id)
        self.timeline.append(event)
        self.apply_state(event)
        return True

    def prepend_history(self, events_newest_first: list[Event]) -> list[Event]:
        """Add older events from /messages (dir=b); returns the new ones, oldest first."""
        added = []
        for event in events_newest_first:
            event_id = event.get("event_id")
            if isinstance(event_id, str) and event_id not in self._seen:
                self._seen.add(event_id)
                added.append(event)
        added.reverse()
        self.timeline[:0] = added
        return added


@dataclass
class SyncUpdate:
    """What one /sync body brought that the application had not seen."""

    timeline: list[tuple[str, Event]] = field(default_factory=list)
    resolved_echoes: list[tuple[str, str]] = field(default_factory=list)  # (room, txn)
    invites: list[tuple[str, list[Event]]] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    to_device: list[Event] = field(default_factory=list)
    changed_rooms: set[str] = field(default_factory=set)
    presence: list[Event] = field(default_factory=list)


class ClientModel:
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.rooms: dict[str, RoomState] = {}
        self.presence: dict[str, dict[str, Any]] = {}
        self.account_data: dict[str, dict[str, Any]] = {}
        self.next_batch: str | None = None

    def room(self, room_id: str) -> RoomState:
        if room_id not in self.rooms:
            self.rooms[room_id] = RoomState(room_id)
        return self.rooms[room_id]

    @property
    def joined_rooms(self) -> list[RoomState]:
        return [room for room in self.rooms.values() if room.membership == "join"]

    # Local echo ----------------------------------------------------------------

    def add_local_echo(self, room_id: str, txn_id: str, event_type: str,
                       content: dict[str, Any]) -> Event:
        echo: Event = {
            "type": event_type, "content": content, "sender": self.user_id,
            "room_id": room_id, "origin_server_ts": int(time.time() * 1000),
            "unsigned": {"transaction_id": txn_id}, "status": "sending",
        }
        self.room(room_id).pending[txn_id] = echo
        return echo

    def mark_echo(self, room_id: str, txn_id: str, status: str,
                  event_id: str | None = None) -> None:
        echo = self.room(room_id).pending.get(txn_id)
        if echo is None:
            return
        echo["status"] = status
        if event_id is not None:
            echo["event_id"] = event_id

    # Sync ------------------------------------------------------------------------

    def apply_sync(self, body: dict[str, Any]) -> SyncUpdate:
        update = SyncUpdate()
        rooms = body.get("rooms") or {}
        for room_id, section in (rooms.get("join") or {}).items():
            self._apply_joined(room_id, section, update)
        for room_id, section in (rooms.get("invite") or {}).items():
            self._apply_invite(room_id, section, update)
        for room_id, section in (rooms.get("leave") or {}).items():
            self._apply_left(room_id, section, update)
        for event in (body.get("presence") or {}).get("events") or []:
            if isinstance(event.get("sender"), str):
                self.presence[event["sender"]] = event.get("content") or {}
                update.presence.append(event)
        for event in (body.get("account_data") or {}).get("events") or []:
            if isinstance(event.get("type"), str):
                self.account_data[event["type"]] = event.get("content") or {}
        update.to_device = list((body.get("to_device") or {}).get("events") or [])
        if isinstance(body.get("next_batch"), str):
            self.next_batch = body["next_batch"]
        return update

    def _apply_joined(self, room_id: str, section: dict[str, Any], update: SyncUpdate) -> None:
        room = self.room(room_id)
        room.membership = "join"
        room.invite_state = []
        update.changed_rooms.add(room_id)
        for event in (section.get("state") or {}).get("events") or []:
            room.apply_state(event)
        timeline = section.get("timeline") or {}
        if room.prev_batch is None and isinstance(timeline.get("prev_batch"), str):
            room.prev_batch = timeline["prev_batch"]
        for event in timeline.get("events") or []:
            self._resolve_echo(room, event, update)
            if room.append_timeline(event):
                update.timeline.append((room_id, event))
        self._apply_ephemeral(room, (section.get("ephemeral") or {}).get("events") or [])
        for event in (section.get("account_data") or {}).get("events") or []:
            if isinstance(event.get("type"), str):
                room.account_data[event["type"]] = event.get("content") or {}
        counts = section.get("unread_notifications") or {}
        room.notification_count = int(counts.get("notification_count", room.notification_count))
        room.highlight_count = int(counts.get("highlight_count", room.highlight_count))

    def _resolve_echo(self, room: RoomState, event: Event, update: SyncUpdate) -> None:
        """The real event replaces our pending echo (matched by transaction ID or event ID)."""
        txn_id = (event.get("unsigned") or {}).get("transaction_id")
        if txn_id not in room.pending:
            txn_id = next((txn for txn, echo in room.pending.items()
                           if echo.get("event_id") == event.get("event_id")), None)
        if txn_id is not None and txn_id in room.pending:
            del room.pending[txn_id]
            update.resolved_echoes.append((room.room_id, txn_id))

    def _apply_ephemeral(self, room: RoomState, events: list[Event]) -> None:
        for event in events:
            content = event.get("content") or {}
            if event.get("type") == "m.typing":
                room.typing = [u for u in content.get("user_ids", []) if isinstance(u, str)]
            elif event.get("type") == "m.receipt":
                for event_id, kinds in content.items():
                    for user_id, receipt in (kinds.get("m.read") or {}).items():
                        room.receipts[user_id] = {"event_id": event_id,
                                                  "ts": (receipt or {}).get("ts")}

    def _apply_invite(self, room_id: str, section: dict[str, Any], update: SyncUpdate) -> None:
        room = self.room(room_id)
        events = list((section.get("invite_state") or {}).get("events") or [])
        if room.membership == "invite" and room.invite_state == events:
            return
        room.membership = "invite"
        room.invite_state = events
        for event in events:
            room.apply_state(event)
        update.invites.append((room_id, events))
        update.changed_rooms.add(room_id)

    def _apply_left(self, room_id: str, section: dict[str, Any], update: SyncUpdate) -> None:
        room = self.room(room_id)
        for event in (section.get("timeline") or {}).get("events") or []:
            room.append_timeline(event)
        for event in (section.get("state") or {}).get("events") or []:
            room.apply_state(event)
        if room.membership != "leave":
            room.membership = "leave"
            update.left.append(room_id)
        update.changed_rooms.add(room_id)
