"""/createRoom: the events of a new room, in the spec's order."""

from __future__ import annotations

import secrets
import string
from typing import Any

from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError
from federation.protocol.power_levels import default_power_levels_content
from federation.protocol.room_versions import get_room_version

from ..rooms.writer import NewEvent, RoomWriter
from ..storage.rooms import RoomStore
from .membership import MembershipHandler
from .profiles import ProfileHandler
from .room_events import check_event_content

PRESETS = {
    "private_chat": {"join_rule": "invite", "history_visibility": "shared",
                     "guest_access": "can_join", "invitees_have_ops": False},
    "trusted_private_chat": {"join_rule": "invite", "history_visibility": "shared",
                             "guest_access": "can_join", "invitees_have_ops": True},
    "public_chat": {"join_rule": "public", "history_visibility": "shared",
                    "guest_access": "forbidden", "invitees_have_ops": False},
}


def _random_localpart() -> str:
    return "".join(secrets.choice(string.ascii_letters) for _ in range(18))


class RoomCreationHandler:
    def __init__(self, writer: RoomWriter, rooms: RoomStore, membership: MembershipHandler,
                 profiles: ProfileHandler, server_name: str, default_version: str) -> None:
        self._writer = writer
        self._rooms = rooms
        self._membership = membership
        self._profiles = profiles
        self._server_name = server_name
        self._default_version = default_version

    async def create_room(self, creator: str, body: dict[str, Any]) -> tuple[str, str | None]:
        """Returns (room_id, alias)."""
        spec = _CreateRoomRequest.parse(body, self._server_name, self._default_version)
        if spec.alias is not None and await self._rooms.get_alias(spec.alias) is not None:
            raise MatrixError(400, Codes.ROOM_IN_USE, "Room alias already taken")
        version = spec.version
        creation_content = dict(spec.creation_content)
        if version.creators_have_infinite_power and spec.preset_config["invitees_have_ops"]:
            extra = set(creation_content.get("additional_creators") or []) | set(spec.invite)
            if extra:
                creation_content["additional_creators"] = sorted(extra)
        room_id = None if version.room_id_is_create_hash else (
            f"!{_random_localpart()}:{self._server_name}")
        created = await self._writer.create_room(version, creator, creation_content, room_id,
                                                 spec.visibility == "public")
        room_id = created.event.room_id
        send = self._sender(room_id, creator)
        member = {"membership": "join", **await self._profiles.member_content(creator)}
        await send("m.room.member", member, creator)
        await send("m.room.power_levels", self._power_levels(spec, creator), "")
        if spec.alias is not None:
            if not await self._rooms.create_alias(spec.alias, room_id, creator):
                raise MatrixError(400, Codes.ROOM_IN_USE, "Room alias already taken")
            await send("m.room.canonical_alias", {"alias": spec.alias}, "")
        preset = spec.preset_config
        for event_type, content in (
            ("m.room.join_rules", {"join_rule": preset["join_rule"]}),
            ("m.room.history_visibility", {"history_visibility": preset["history_visibility"]}),
            ("m.room.guest_access", {"guest_access": preset["guest_access"]}),
        ):
            if (event_type, "") not in spec.initial_state:
                await send(event_type, content, "")
        for (event_type, state_key), content in spec.initial_state.items():
            await send(event_type, content, state_key)
        if spec.name is not None:
            await send("m.room.name", {"name": spec.name}, "")
        if spec.topic is not None:
            await send("m.room.topic", {"topic": spec.topic, "m.topic": [
                {"mimetype": "text/plain", "body": spec.topic}]}, "")
        for invitee in spec.invite:
            await self._membership.invite(creator, room_id, invitee, is_direct=spec.is_direct)
        return room_id, spec.alias

    def _sender(self, room_id: str, creator: str) -> Any:
        async def send(event_type: str, content: dict[str, Any], state_key: str) -> None:
            await self._writer.send(room_id, NewEvent(event_type, creator, content, state_key))

        return send

    def _power_levels(self, spec: _CreateRoomRequest, creator: str) -> dict[str, Any]:
        if ("m.room.power_levels", "") in spec.initial_state:
            return spec.initial_state.pop(("m.room.power_levels", ""))
        ops = spec.invite if spec.preset_config["invitees_have_ops"] else None
        content = default_power_levels_content(spec.version, creator, ops)
        # A shallow update, as Synapse does: an `events` key replaces the whole map.
        content.update(spec.power_level_override)
        return content


class _CreateRoomRequest:
    def __init__(self) -> None:
        self.version: Any = None
        self.visibility = "private"
        self.preset_config: dict[str, Any] = {}
        self.alias: str | None = None
        self.name: str | None = None
        self.topic: str | None = None
        self.invite: list[str] = []
        self.is_direct = False
        self.initial_state: dict[tuple[str, str], dict[str, Any]] = {}
        self.power_level_override: dict[str, Any] = {}
        self.creation_content: dict[str, Any] = {}

    @classmethod
    def parse(cls, body: dict[str, Any], server_name: str, default_version: str
              ) -> _CreateRoomRequest:
        req = cls()
        version_id = body.get("room_version", default_version)
        version = get_room_version(version_id) if isinstance(version_id, str) else None
        if version is None:
            raise MatrixError(400, Codes.UNSUPPORTED_ROOM_VERSION,
                              f"Unsupported room version {version_id!r}")
        req.version = version
        req.visibility = _choice(body, "visibility", ("public", "private"), "private")
        default_preset = "public_chat" if req.visibility == "public" else "private_chat"
        preset = _choice(body, "preset", tuple(PRESETS), default_preset)
        req.preset_config = PRESETS[preset]
        alias_name = _string(body, "room_alias_name")
        if alias_name is not None:
            alias = f"#{alias_name}:{server_name}"
            if not alias_name or ":" in alias_name or not identifiers.is_valid_room_alias(alias):
                raise MatrixError(400, Codes.INVALID_PARAM, "Invalid room_alias_name")
            req.alias = alias
        req.name = _string(body, "name")
        req.topic = _string(body, "topic")
        invite = body.get("invite", [])
        if not isinstance(invite, list) or not all(identifiers.is_valid_user_id(u)
                                                   for u in invite):
            raise MatrixError(400, Codes.INVALID_PARAM, "invite must be a list of user IDs")
        req.invite = list(dict.fromkeys(invite))
        req.is_direct = _bool(body, "is_direct")
        if not isinstance(body.get("invite_3pid", []), list):
            raise MatrixError(400, Codes.BAD_JSON, "invite_3pid must be a list")
        req.initial_state = _initial_state(body.get("initial_state", []))
        override = body.get("power_level_content_override", {})
        if not isinstance(override, dict):
            raise MatrixError(400, Codes.BAD_JSON, "power_level_content_override must be an object")
        # Checked before the room exists: a bad event half-way would leave half a room.
        check_event_content("m.room.power_levels", override)
        req.power_level_override = override
        creation = body.get("creation_content", {})
        if not isinstance(creation, dict):
            raise MatrixError(400, Codes.BAD_JSON, "creation_content must be an object")
        req.creation_content = {k: v for k, v in creation.items()
                                if k not in ("room_version", "creator")}
        check_event_content("m.room.create", req.creation_content)
        return req


def _choice(body: dict[str, Any], key: str, options: tuple[str, ...], default: str) -> str:
    value = body.get(key, default)
    if value not in options:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid {key}")
    return str(value)


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise MatrixError(400, Codes.INVALID_PARAM, f"{key} must be a boolean")
    return value


def _string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise MatrixError(400, Codes.INVALID_PARAM, f"{key} must be a string")
    return value


def _initial_state(raw: Any) -> dict[tuple[str, str], dict[str, Any]]:
    if not isinstance(raw, list):
        raise MatrixError(400, Codes.INVALID_ROOM_STATE, "initial_state must be a list")
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or \
                not isinstance(entry.get("content"), dict) or \
                not isinstance(entry.get("state_key", ""), str):
            raise MatrixError(400, Codes.INVALID_ROOM_STATE, "Invalid initial_state entry")
        if entry["type"] in ("m.room.create", "m.room.member"):
            raise MatrixError(400, Codes.INVALID_ROOM_STATE,
                              f"initial_state may not set {entry['type']}")
        check_event_content(entry["type"], entry["content"])
        state[(entry["type"], entry.get("state_key", ""))] = entry["content"]
    return state
