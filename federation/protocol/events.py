"""PDUs: the signed, hashed events that rooms are made of.

`Event` wraps a PDU dict (federation format, no `event_id` field) with its
room version and derived ID. It is immutable apart from `rejected_reason`,
which the server sets after the receipt checks.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .hashing import compute_event_id, create_event_id_from_room_id, room_id_from_create_event_id
from .room_versions import RoomVersion

StateKey = tuple[str, str]

CREATE = "m.room.create"
MEMBER = "m.room.member"
POWER_LEVELS = "m.room.power_levels"
JOIN_RULES = "m.room.join_rules"
THIRD_PARTY_INVITE = "m.room.third_party_invite"
REDACTION = "m.room.redaction"
TOMBSTONE = "m.room.tombstone"

CREATE_KEY: StateKey = (CREATE, "")
POWER_LEVELS_KEY: StateKey = (POWER_LEVELS, "")
JOIN_RULES_KEY: StateKey = (JOIN_RULES, "")


class Event:
    """A PDU in a room of a known version."""

    __slots__ = ("pdu", "room_version", "event_id", "rejected_reason", "_room_id")

    def __init__(
        self,
        pdu: Mapping[str, Any],
        room_version: RoomVersion,
        *,
        event_id: str | None = None,
        rejected_reason: str | None = None,
    ) -> None:
        self.pdu: dict[str, Any] = {k: v for k, v in pdu.items() if k != "event_id"}
        self.room_version = room_version
        self.event_id = event_id or compute_event_id(self.pdu, room_version)
        self.rejected_reason = rejected_reason
        self._room_id = self._derive_room_id()

    def _derive_room_id(self) -> str:
        if self.room_version.room_id_is_create_hash and self.is_create():
            return room_id_from_create_event_id(self.event_id)
        room_id = self.pdu.get("room_id")
        return room_id if isinstance(room_id, str) else ""

    # Fields -------------------------------------------------------------

    @property
    def type(self) -> str:
        return self.pdu["type"]  # type: ignore[no-any-return]

    @property
    def sender(self) -> str:
        return self.pdu["sender"]  # type: ignore[no-any-return]

    @property
    def room_id(self) -> str:
        """The room ID (for a v12 create event, derived from its own ID)."""
        return self._room_id

    @property
    def content(self) -> dict[str, Any]:
        content = self.pdu.get("content")
        return content if isinstance(content, dict) else {}

    @property
    def state_key(self) -> str | None:
        key = self.pdu.get("state_key")
        return key if isinstance(key, str) else None

    @property
    def origin_server_ts(self) -> int:
        return self.pdu["origin_server_ts"]  # type: ignore[no-any-return]

    @property
    def depth(self) -> int:
        return self.pdu["depth"]  # type: ignore[no-any-return]

    @property
    def prev_event_ids(self) -> list[str]:
        return list(self.pdu.get("prev_events", []))

    @property
    def auth_event_ids(self) -> list[str]:
        """The `auth_events` field exactly as the PDU carries it."""
        return list(self.pdu.get("auth_events", []))

    @property
    def signatures(self) -> dict[str, Any]:
        sigs = self.pdu.get("signatures")
        return sigs if isinstance(sigs, dict) else {}

    @property
    def redacts(self) -> str | None:
        """Target of an `m.room.redaction`: `content.redacts` (v11+) or top-level (v10)."""
        if self.room_version.redacts_in_content:
            target = self.content.get("redacts")
        else:
            target = self.pdu.get("redacts")
        return target if isinstance(target, str) else None

    @property
    def membership(self) -> str | None:
        membership = self.content.get("membership")
        return membership if isinstance(membership, str) else None

    # Derived --------------------------------------------------------------

    def is_state(self) -> bool:
        return "state_key" in self.pdu

    def is_create(self) -> bool:
        return self.pdu.get("type") == CREATE and self.pdu.get("state_key") == ""

    @property
    def state_key_tuple(self) -> StateKey:
        """`(type, state_key)` of a state event."""
        return (self.type, self.pdu["state_key"])

    def auth_and_create_event_ids(self) -> list[str]:
        """`auth_events` plus, in v12 rooms, the create event the room ID implies.

        State resolution and auth chains treat the v12 create event as an auth
        event of every other event in the room, as if it were listed.
        """
        ids = self.auth_event_ids
        if self.room_version.room_id_is_create_hash and not self.is_create() and self.room_id:
            create_id = create_event_id_from_room_id(self.room_id)
            if create_id not in ids:
                ids.append(create_id)
        return ids

    def __repr__(self) -> str:
        key = f" {self.state_key!r}" if self.is_state() else ""
        return f"<Event {self.event_id} {self.pdu.get('type')}{key} from {self.pdu.get('sender')}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.event_id == self.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)


def state_map(events: Iterable[Event]) -> dict[StateKey, Event]:
    """Key state events by `(type, state_key)`; later entries win."""
    return {e.state_key_tuple: e for e in events if e.is_state()}
