"""Sync and /messages filters (spec: filtering)."""

from __future__ import annotations

import fnmatch
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from federation.protocol.errors import Codes, MatrixError

DEFAULT_TIMELINE_LIMIT = 10


def _strings(raw: dict[str, Any], key: str) -> list[str] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MatrixError(400, Codes.BAD_JSON, f"filter {key} must be a list of strings")
    return value


def _flag(raw: dict[str, Any], key: str) -> bool | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, bool):
        raise MatrixError(400, Codes.BAD_JSON, f"filter {key} must be a boolean")
    return value


def _type_matches(event_type: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(event_type, p) if "*" in p else event_type == p
               for p in patterns)


@dataclass(frozen=True)
class EventFilter:
    limit: int | None = None
    types: list[str] | None = None
    not_types: list[str] = field(default_factory=list)
    senders: list[str] | None = None
    not_senders: list[str] = field(default_factory=list)
    rooms: list[str] | None = None
    not_rooms: list[str] = field(default_factory=list)
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False

    @classmethod
    def parse(cls, raw: Any) -> EventFilter:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise MatrixError(400, Codes.BAD_JSON, "filter must be an object")
        limit = raw.get("limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 0):
            raise MatrixError(400, Codes.BAD_JSON, "filter limit must be a positive integer")
        contains_url = _flag(raw, "contains_url")
        return cls(
            limit=limit, types=_strings(raw, "types"), not_types=_strings(raw, "not_types") or [],
            senders=_strings(raw, "senders"), not_senders=_strings(raw, "not_senders") or [],
            rooms=_strings(raw, "rooms"), not_rooms=_strings(raw, "not_rooms") or [],
            contains_url=contains_url,
            lazy_load_members=_flag(raw, "lazy_load_members") is True,
            include_redundant_members=_flag(raw, "include_redundant_members") is True,
        )

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    @property
    def allows_nothing(self) -> bool:
        """No event passes (`"types": []`, `"senders": []`, or every type excluded):
        clients that turn a section off this way need not have it computed."""
        return self.types == [] or self.senders == [] or "*" in self.not_types

    def allows(self, event_type: str, sender: str, room_id: str | None = None,
               content: dict[str, Any] | None = None) -> bool:
        if self.not_types and _type_matches(event_type, self.not_types):
            return False
        if self.types is not None and not _type_matches(event_type, self.types):
            return False
        if sender in self.not_senders:
            return False
        if self.senders is not None and sender not in self.senders:
            return False
        if room_id is not None and not self.allows_room(room_id):
            return False
        if self.contains_url is not None and content is not None:
            has_url = isinstance(content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True


@dataclass(frozen=True)
class SyncFilter:
    presence: EventFilter = EventFilter()
    account_data: EventFilter = EventFilter()
    rooms: list[str] | None = None
    not_rooms: list[str] = field(default_factory=list)
    include_leave: bool = False
    timeline: EventFilter = EventFilter()
    state: EventFilter = EventFilter()
    ephemeral: EventFilter = EventFilter()
    room_account_data: EventFilter = EventFilter()

    @classmethod
    def parse(cls, raw: Any) -> SyncFilter:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise MatrixError(400, Codes.BAD_JSON, "filter must be an object")
        room = raw.get("room")
        room = {} if room is None else room
        if not isinstance(room, dict):
            raise MatrixError(400, Codes.BAD_JSON, "filter room must be an object")
        if raw.get("event_format") not in (None, "client", "federation"):
            raise MatrixError(400, Codes.BAD_JSON, "filter event_format must be client or "
                              "federation")
        _strings(raw, "event_fields")
        return cls(
            presence=EventFilter.parse(raw.get("presence")),
            account_data=EventFilter.parse(raw.get("account_data")),
            rooms=_strings(room, "rooms"),
            not_rooms=_strings(room, "not_rooms") or [],
            include_leave=_flag(room, "include_leave") is True,
            timeline=EventFilter.parse(room.get("timeline")),
            state=EventFilter.parse(room.get("state")),
            ephemeral=EventFilter.parse(room.get("ephemeral")),
            room_account_data=EventFilter.parse(room.get("account_data")),
        )

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    @property
    def timeline_limit(self) -> int:
        limit = self.timeline.limit
        return DEFAULT_TIMELINE_LIMIT if limit is None else max(1, min(limit, 1000))


NO_FILTER = SyncFilter()
_INTERNED_MAX = 1000
_interned: OrderedDict[str, SyncFilter] = OrderedDict()


def interned_filter(raw: Any) -> SyncFilter:
    """The one SyncFilter object for equal filter definitions: /sync answers
    are shared between requests with the same filter, recognised by identity."""
    if raw is None:
        return NO_FILTER
    key = json.dumps(raw, sort_keys=True, separators=(",", ":"))
    found = _interned.get(key)
    if found is None:
        found = _interned[key] = SyncFilter.parse(raw)
        while len(_interned) > _INTERNED_MAX:
            _interned.popitem(last=False)
    else:
        _interned.move_to_end(key)
    return found
