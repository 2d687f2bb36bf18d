"""Builds real, signed PDUs for protocol tests.

`Room` keeps the current state and picks auth events the way a server does;
`make_event` builds one event with explicit references for DAG scenarios.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any, Mapping

from signedjson.key import decode_signing_key_base64

from federation.protocol.auth_events import select_auth_event_ids
from federation.protocol.events import Event, StateKey
from federation.protocol.hashing import encode_base64
from federation.protocol.identifiers import server_of
from federation.protocol.pdu_format import build_event
from federation.protocol.room_versions import RoomVersion
from federation.protocol.signing import ServerKey

_clock = itertools.count(1_700_000_000_000)


def server_key(server_name: str) -> ServerKey:
    """A deterministic signing key per server name."""
    seed = hashlib.sha256(server_name.encode()).digest()
    return ServerKey(server_name, decode_signing_key_base64("ed25519", "test", encode_base64(seed)))


def make_event(
    room_version: RoomVersion,
    event_type: str,
    sender: str,
    content: Mapping[str, Any] | None = None,
    *,
    state_key: str | None = None,
    room_id: str | None = None,
    auth_events: list[str] | None = None,
    prev_events: list[str] | None = None,
    depth: int = 1,
    ts: int | None = None,
    redacts: str | None = None,
    signer: str | None = None,
) -> Event:
    return build_event(
        room_version,
        server_key(signer or server_of(sender)),
        event_type=event_type,
        sender=sender,
        content=content or {},
        room_id=room_id,
        prev_events=prev_events or [],
        auth_events=auth_events or [],
        depth=depth,
        origin_server_ts=ts if ts is not None else next(_clock),
        state_key=state_key,
        redacts=redacts,
    )


class Room:
    """A linear room: each event follows the previous one, auth events selected from state."""

    def __init__(
        self,
        room_version: RoomVersion,
        creator: str = "@creator:example.org",
        *,
        join_rule: str | None = "public",
        power_levels: Mapping[str, Any] | None = None,
        create_content: Mapping[str, Any] | None = None,
    ) -> None:
        self.version = room_version
        self.creator = creator
        self.events: dict[str, Event] = {}
        self.state: dict[StateKey, Event] = {}
        self.last: Event | None = None
        content = dict(create_content or {})
        if not room_version.implicit_room_creator:
            content.setdefault("creator", creator)
        content.setdefault("room_version", room_version.identifier)
        room_id = None
        if not room_version.room_id_is_create_hash:
            room_id = f"!room:{server_of(creator)}"
        self.room_id = room_id or ""
        self.create = self.send("m.room.create", creator, content, state_key="", room_id=room_id)
        self.room_id = self.create.room_id
        self.send("m.room.member", creator, {"membership": "join"}, state_key=creator)
        if power_levels is None:
            users = {} if room_version.creators_have_infinite_power else {creator: 100}
            power_levels = {"users": users}
        self.send("m.room.power_levels", creator, power_levels, state_key="")
        if join_rule is not None:
            self.send("m.room.join_rules", creator, {"join_rule": join_rule}, state_key="")

    def build(
        self,
        event_type: str,
        sender: str,
        content: Mapping[str, Any] | None = None,
        *,
        state_key: str | None = None,
        room_id: str | None = None,
        auth_events: list[str] | None = None,
        prev_events: list[str] | None = None,
        signer: str | None = None,
        redacts: str | None = None,
    ) -> Event:
        """Build (but don't apply) the next event."""
        content = dict(content or {})
        if auth_events is None:
            ids = {k: e.event_id for k, e in self.state.items()}
            auth_events = select_auth_event_ids(
                self.version, event_type, sender, state_key, content, ids
            )
        if prev_events is None:
            prev_events = [self.last.event_id] if self.last else []
        depth = (self.last.depth + 1) if self.last else 1
        return make_event(
            self.version, event_type, sender, content, state_key=state_key,
            room_id=room_id if room_id is not None else (self.room_id or None),
            auth_events=auth_events, prev_events=prev_events, depth=depth,
            signer=signer, redacts=redacts,
        )

    def apply(self, event: Event) -> Event:
        self.events[event.event_id] = event
        if event.is_state():
            self.state[event.state_key_tuple] = event
        self.last = event
        return event

    def send(self, event_type: str, sender: str, content: Mapping[str, Any] | None = None,
             **kwargs: Any) -> Event:
        return self.apply(self.build(event_type, sender, content, **kwargs))

    def join(self, user: str) -> Event:
        return self.send("m.room.member", user, {"membership": "join"}, state_key=user)

    def auth_state(self) -> dict[StateKey, Event]:
        return dict(self.state)

    def cited(self, event: Event) -> list[Event]:
        return [self.events[a] for a in event.auth_event_ids]
