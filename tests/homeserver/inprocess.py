"""An in-process homeserver core for handler tests: the real room writer,
state reader and stores on SQLite, with transactions run inline on a memory
reactor (so every coroutine completes at once)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from twisted.internet.task import Clock as ReactorClock

from federation.protocol.errors import MatrixError
from federation.protocol.signing import generate_server_key
from homeserver.clock import Clock
from homeserver.handlers.federation_reads import FederationReadHandler
from homeserver.handlers.membership import MembershipHandler
from homeserver.handlers.profiles import ProfileHandler
from homeserver.handlers.room_creation import RoomCreationHandler
from homeserver.rooms.state_reader import StateReader
from homeserver.rooms.writer import NewEvent, RoomWriter
from homeserver.storage import schema
from homeserver.storage.database import Database
from homeserver.storage.event_graph import EventGraphStore
from homeserver.storage.events import EventStore
from homeserver.storage.migrations import migrate
from homeserver.storage.positions import max_state_group, max_stream_position
from homeserver.storage.rooms import RoomStore
from homeserver.storage.stream import StreamIdGenerator
from homeserver.storage.users import UserStore
from tests.synchronous import done

HS = "hs.example"
REMOTE = "remote.example"
STRANGER = "stranger.example"
ALICE = "@alice:hs.example"
BOB = "@bob:remote.example"


def refused(work: Any) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        done(work)
    return info.value


@dataclass
class Env:
    db: Database
    writer: RoomWriter
    creation: RoomCreationHandler
    reads: FederationReadHandler
    users: UserStore
    rooms: RoomStore
    events: EventStore

    def room(self, **body: Any) -> str:
        room_id, _ = done(self.creation.create_room(ALICE, {"room_version": "11", **body}))
        return str(room_id)

    def send(self, room_id: str, event_type: str, content: dict[str, Any],
             sender: str = ALICE, state_key: str | None = None, redacts: str | None = None
             ) -> str:
        persisted = done(self.writer.send(room_id, NewEvent(event_type, sender, content,
                                                             state_key, redacts=redacts)))
        return str(persisted.event.event_id)

    def message(self, room_id: str, body: str, sender: str = ALICE) -> str:
        return self.send(room_id, "m.room.message", {"msgtype": "m.text", "body": body}, sender)

    def join(self, room_id: str, user_id: str = BOB) -> str:
        return self.send(room_id, "m.room.member", {"membership": "join"}, user_id, user_id)

    def stored_json(self, event_id: str) -> dict[str, Any]:
        text = self.db.run_sync("read", lambda c: c.execute(sa.select(schema.events.c.json).where(
            schema.events.c.event_id == event_id)).scalar())
        return dict(json.loads(text))

    def reject(self, event_id: str) -> None:
        self.db.run_sync("reject", lambda c: c.execute(sa.update(schema.events).where(
            schema.events.c.event_id == event_id).values(rejected_reason="test")))


def build_env(tmp_path: Path) -> Iterator[Env]:
    db = Database(f"sqlite:///{tmp_path / 'hs.db'}")
    migrate(db)
    reactor = ReactorClock()
    reactor.advance(1_700_000_000)
    db.start(reactor, inline=True)
    clock = Clock(reactor)
    events, rooms = EventStore(db), RoomStore(db)
    writer = RoomWriter(events, rooms, StreamIdGenerator(max_stream_position(db)),
                        StreamIdGenerator(max_state_group(db)), clock,
                        generate_server_key(HS, "a"))
    state = StateReader(events)
    writer.add_listener(state.event_persisted)
    profiles = ProfileHandler(UserStore(db), rooms, HS)
    membership = MembershipHandler(writer, rooms, profiles, HS)
    creation = RoomCreationHandler(writer, rooms, membership, profiles, HS, "11")
    reads = FederationReadHandler(events, EventGraphStore(db), state, writer, clock, HS)
    yield Env(db, writer, creation, reads, UserStore(db), rooms, events)
    db.stop()
