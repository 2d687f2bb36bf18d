"""Power levels: who may do what, with the spec's defaults.

All lookups take the auth state (a map from `(type, state_key)` to events)
that contains at least the create event.
"""

from __future__ import annotations

from typing import Any, Mapping

from .events import CREATE_KEY, POWER_LEVELS_KEY, Event, StateKey
from .room_versions import RoomVersion

# v12 creators have infinite power; any value above the largest legal
# canonical-JSON integer (2**53 - 1) compares as infinite against real levels.
CREATOR_POWER_LEVEL = 2**53

# Defaults for keys missing from `m.room.power_levels` content.
NAMED_LEVEL_DEFAULTS = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
}
# With no power-levels event at all, `state_default` etc. keep these defaults
# and the creator alone has 100.
NO_POWER_LEVELS_CREATOR_LEVEL = 100

AuthState = Mapping[StateKey, Event]


def room_creators(create_event: Event) -> set[str]:
    """The creators: v10 `content.creator`; v11 sender; v12 sender + additional_creators."""
    version = create_event.room_version
    if not version.implicit_room_creator:
        creator = create_event.content.get("creator")
        return {creator} if isinstance(creator, str) else set()
    creators = {create_event.sender}
    if version.creators_have_infinite_power:
        extra = create_event.content.get("additional_creators")
        if isinstance(extra, list):
            creators.update(u for u in extra if isinstance(u, str))
    return creators


def _as_int(value: Any, default: int) -> int:
    """Power levels are integers from v10 on; older rooms might hold strings."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return default
    return default


def user_power_level(user_id: str, auth_state: AuthState) -> int:
    create = auth_state.get(CREATE_KEY)
    if create is None:
        raise ValueError("a create event is needed to compute power levels")
    creators = room_creators(create)
    if create.room_version.creators_have_infinite_power and user_id in creators:
        return CREATOR_POWER_LEVEL
    power_levels = auth_state.get(POWER_LEVELS_KEY)
    if power_levels is None:
        return NO_POWER_LEVELS_CREATOR_LEVEL if user_id in creators else 0
    content = power_levels.content
    users = content.get("users")
    default = _as_int(content.get("users_default"), 0)
    if isinstance(users, dict) and user_id in users:
        return _as_int(users[user_id], default)
    return default


def named_level(auth_state: AuthState, name: str) -> int:
    """`ban`, `kick`, `redact`, `invite`, `state_default`, ... with spec defaults."""
    default = NAMED_LEVEL_DEFAULTS[name]
    power_levels = auth_state.get(POWER_LEVELS_KEY)
    if power_levels is None:
        return default
    return _as_int(power_levels.content.get(name), default)


def send_level(event_type: str, is_state: bool, auth_state: AuthState) -> int:
    """The required power level to send an event of `event_type`."""
    power_levels = auth_state.get(POWER_LEVELS_KEY)
    content = power_levels.content if power_levels is not None else {}
    events = content.get("events")
    fallback = named_level(auth_state, "state_default" if is_state else "events_default")
    if isinstance(events, dict) and event_type in events:
        return _as_int(events[event_type], fallback)
    return fallback


def notification_level(auth_state: AuthState, key: str = "room") -> int:
    power_levels = auth_state.get(POWER_LEVELS_KEY)
    notifications = power_levels.content.get("notifications") if power_levels else None
    if isinstance(notifications, dict) and key in notifications:
        return _as_int(notifications[key], 50)
    return 50


def default_power_levels_content(
    room_version: RoomVersion, creator: str, invitees_have_ops: list[str] | None = None
) -> dict[str, Any]:
    """The power levels `/createRoom` writes before applying overrides.

    In v12 the creator is implicit (listing a creator is rejected by rule
    10.4) and `m.room.tombstone` needs 150, above every non-creator, so only a
    creator can upgrade the room (MSC4289).
    """
    v12 = room_version.creators_have_infinite_power
    users: dict[str, int] = {} if v12 else {creator: 100}
    if invitees_have_ops and not v12:
        users.update({user: 100 for user in invitees_have_ops})
    return {
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 150 if v12 else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50,
    }
