"""Room versions 10, 11 and 12 as named feature flags.

Code branches on flags, never on version strings: each version is the previous
one plus the flags it changes (as ruma and Synapse express them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class StateResVersion(Enum):
    V2 = "v2"
    V2_1 = "v2.1"


@dataclass(frozen=True)
class RoomVersion:
    identifier: str
    state_res: StateResVersion
    # v10: power-level values must be integers (rule 10.1/9.1).
    enforce_int_power_levels: bool
    # v10: `knock_restricted` join rule exists.
    knock_restricted_join_rule: bool
    # v11: the creator is the create event's sender; no `content.creator`.
    implicit_room_creator: bool
    # v11: redaction keeps the whole create content, `invite` in power levels,
    # `redacts` in redactions, `third_party_invite.signed`; drops `origin`,
    # `membership`, `prev_state` at the top level.
    updated_redaction_rules: bool
    # v11: `m.room.redaction` carries `redacts` in `content`.
    redacts_in_content: bool
    # v12 (MSC4291): the room ID is `!` + the create event's reference hash;
    # the create event has no `room_id` and is never in `auth_events`.
    room_id_is_create_hash: bool
    # v12 (MSC4289): the create sender and `additional_creators` have infinite
    # power and may not be listed in `users`.
    creators_have_infinite_power: bool


ROOM_V10 = RoomVersion(
    identifier="10",
    state_res=StateResVersion.V2,
    enforce_int_power_levels=True,
    knock_restricted_join_rule=True,
    implicit_room_creator=False,
    updated_redaction_rules=False,
    redacts_in_content=False,
    room_id_is_create_hash=False,
    creators_have_infinite_power=False,
)

ROOM_V11 = replace(
    ROOM_V10,
    identifier="11",
    implicit_room_creator=True,
    updated_redaction_rules=True,
    redacts_in_content=True,
)

ROOM_V12 = replace(
    ROOM_V11,
    identifier="12",
    state_res=StateResVersion.V2_1,
    room_id_is_create_hash=True,
    creators_have_infinite_power=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v for v in (ROOM_V10, ROOM_V11, ROOM_V12)
}

DEFAULT_ROOM_VERSION = ROOM_V12


def get_room_version(identifier: str) -> RoomVersion | None:
    return KNOWN_ROOM_VERSIONS.get(identifier)
