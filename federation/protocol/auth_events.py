"""Auth-events selection: which state events an event must cite."""

from __future__ import annotations

from typing import Any, Mapping

from .events import CREATE_KEY, JOIN_RULES_KEY, MEMBER, POWER_LEVELS_KEY, THIRD_PARTY_INVITE
from .events import Event, StateKey
from .room_versions import RoomVersion


def auth_types_for_event(
    room_version: RoomVersion,
    event_type: str,
    sender: str,
    state_key: str | None,
    content: Mapping[str, Any],
) -> list[StateKey]:
    """The `(type, state_key)` pairs the spec's selection algorithm may pick.

    v12 never selects the create event: the room ID stands for it.
    """
    if event_type == "m.room.create" and state_key == "":
        return []
    keys: list[StateKey] = []
    if not room_version.room_id_is_create_hash:
        keys.append(CREATE_KEY)
    keys += [POWER_LEVELS_KEY, (MEMBER, sender)]
    if event_type == MEMBER and state_key is not None:
        keys += _member_auth_types(state_key, content)
    return list(dict.fromkeys(keys))


def _member_auth_types(state_key: str, content: Mapping[str, Any]) -> list[StateKey]:
    keys: list[StateKey] = [(MEMBER, state_key)]
    membership = content.get("membership")
    if membership in ("join", "invite", "knock"):
        keys.append(JOIN_RULES_KEY)
    invite = content.get("third_party_invite")
    if membership == "invite" and isinstance(invite, dict):
        signed = invite.get("signed")
        if isinstance(signed, dict) and isinstance(signed.get("token"), str):
            keys.append((THIRD_PARTY_INVITE, signed["token"]))
    authoriser = content.get("join_authorised_via_users_server")
    if membership == "join" and isinstance(authoriser, str):
        keys.append((MEMBER, authoriser))
    return keys


def auth_types_for(event: Event) -> list[StateKey]:
    return auth_types_for_event(
        event.room_version, event.type, event.sender, event.state_key, event.content
    )


def select_auth_event_ids(
    room_version: RoomVersion,
    event_type: str,
    sender: str,
    state_key: str | None,
    content: Mapping[str, Any],
    current_state: Mapping[StateKey, str],
) -> list[str]:
    """The auth event IDs a new event should cite, given the current state IDs."""
    keys = auth_types_for_event(room_version, event_type, sender, state_key, content)
    return [current_state[k] for k in keys if k in current_state]
