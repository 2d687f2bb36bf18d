"""Incoming EDUs applied by FederationEduHandler to the real handlers and stores
(SQLite, transactions inline, time from twisted's Clock). The room is seeded as
rows: our user Alice and the remote users Bob and Mallory are joined."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from twisted.internet.task import Clock as ReactorClock

from federation import edus
from federation.protocol.signing import generate_server_key
from homeserver.clock import Clock
from homeserver.handlers.e2e_keys import E2eKeysHandler
from homeserver.handlers.federation_edus import FederationEduHandler
from homeserver.handlers.presence import PresenceHandler
from homeserver.handlers.receipts import ReceiptHandler
from homeserver.handlers.to_device import ToDeviceHandler
from homeserver.handlers.typing import TypingHandler
from homeserver.rooms.writer import RoomWriter
from homeserver.storage import schema
from homeserver.storage.database import Database
from homeserver.storage.device_lists import DeviceListStore
from homeserver.storage.e2e_keys import EndToEndKeyStore
from homeserver.storage.events import EventStore
from homeserver.storage.migrations import migrate
from homeserver.storage.presence import PresenceStore
from homeserver.storage.receipts import ReceiptStore
from homeserver.storage.rooms import RoomStore
from homeserver.storage.stream import StreamIdGenerator
from homeserver.storage.to_device import ToDeviceStore
from homeserver.storage.users import UserStore
from homeserver.sync.notifier import Notifier
from tests.synchronous import done

HS = "hs.test"
ORIGIN = "remote.test"
ROOM = "!room:hs.test"
ALICE = "@alice:hs.test"
BOB = "@bob:remote.test"
MALLORY = "@mallory:evil.test"
EVENT = "$" + "e" * 43


@dataclass
class World:
    reactor: ReactorClock
    db: Database
    handler: FederationEduHandler
    typing: TypingHandler
    receipts: ReceiptStore
    presence: PresenceStore
    to_device: ToDeviceStore
    stream: StreamIdGenerator

    def receive(self, *items: Any, origin: str = ORIGIN) -> None:
        done(self.handler.handle_edus(origin, list(items)))

    def set_state(self, event_type: str, state_key: str, content: dict[str, Any],
                  membership: str | None = None) -> None:
        event_id = "$" + f"{event_type}{state_key}".encode().hex()[:43].ljust(43, "x")
        pdu = {"type": event_type, "room_id": ROOM, "sender": ALICE, "state_key": state_key,
               "content": content, "depth": 1, "prev_events": [], "auth_events": [],
               "origin_server_ts": 0, "hashes": {}, "signatures": {}}
        position = self.stream.allocate()
        self.stream.finish(position)

        def txn(conn: sa.Connection) -> None:
            conn.execute(sa.insert(schema.events).values(
                event_id=event_id, room_id=ROOM, room_version="10", stream_ordering=position,
                depth=1, type=event_type, state_key=state_key, sender=ALICE,
                origin_server_ts=0, json=json.dumps(pdu)))
            conn.execute(sa.insert(schema.current_state).values(
                room_id=ROOM, type=event_type, state_key=state_key, event_id=event_id,
                membership=membership))

        self.db.run_sync("seed_state", txn)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    db = Database(f"sqlite:///{tmp_path / 'hs.db'}")
    migrate(db)
    reactor = ReactorClock()
    reactor.advance(1_000_000)
    db.start(reactor, inline=True)
    clock = Clock(reactor)
    stream = StreamIdGenerator(0)
    notifier = Notifier(stream)
    rooms, events, users = RoomStore(db), EventStore(db), UserStore(db)
    writer = RoomWriter(events, rooms, stream, StreamIdGenerator(0), clock,
                        generate_server_key(HS, "a"))
    typing = TypingHandler(stream, notifier, clock, rooms)
    receipt_store, presence_store, to_device_store = \
        ReceiptStore(db), PresenceStore(db), ToDeviceStore(db)
    # Remote receipts need only the store, stream and notifier of the handler.
    receipts = ReceiptHandler(receipt_store, None, None, events, stream,  # type: ignore[arg-type]
                              notifier, clock)
    presence = PresenceHandler(presence_store, rooms, stream, notifier, clock)
    to_device = ToDeviceHandler(to_device_store, users, stream, notifier, HS)
    e2e_keys = E2eKeysHandler(EndToEndKeyStore(db), DeviceListStore(db), rooms, stream,
                              notifier, HS)
    handler = FederationEduHandler(rooms, writer, events, clock, typing, receipts, presence,
                                   to_device, e2e_keys)
    done(rooms.store_room(ROOM, "10", ALICE, False, 0))
    w = World(reactor, db, handler, typing, receipt_store, presence_store, to_device_store,
              stream)
    for user in (ALICE, BOB, MALLORY):
        w.set_state("m.room.member", user, {"membership": "join"}, "join")
    done(users.create_device_and_token(ALICE, "PHONE", None, "token-phone", 0))
    done(users.create_device_and_token(ALICE, "LAPTOP", None, "token-laptop", 0))
    yield w
    db.stop()


def test_typing_of_a_joined_remote_user_shows_and_expires(world: World) -> None:
    world.receive(edus.typing_edu(ROOM, BOB, True))
    assert world.typing.typing_users(ROOM) == [BOB]
    world.reactor.advance(31)
    assert world.typing.typing_users(ROOM) == []


def test_typing_is_refused_for_another_servers_user_or_a_non_member(world: World) -> None:
    world.receive(edus.typing_edu(ROOM, MALLORY, True))  # not from evil.test
    world.receive(edus.typing_edu(ROOM, "@stranger:remote.test", True))  # not in the room
    world.receive(edus.typing_edu("!unknown:hs.test", BOB, True))
    assert world.typing.typing_users(ROOM) == []


def test_server_acl_denies_typing_and_receipts(world: World) -> None:
    world.set_state("m.room.server_acl", "", {"allow": ["*"], "deny": [ORIGIN]})
    world.receive(edus.typing_edu(ROOM, BOB, True),
                  edus.receipt_edu(edus.ReceiptUpdate(ROOM, "m.read", BOB, EVENT, 5, "")))
    assert world.typing.typing_users(ROOM) == []
    assert done(world.receipts.for_rooms([ROOM], 0, world.stream.current)) == []
    world.receive(edus.typing_edu(ROOM, MALLORY, True), origin="evil.test")  # allowed
    assert world.typing.typing_users(ROOM) == [MALLORY]


def test_public_receipts_are_stored_for_the_room(world: World) -> None:
    world.receive({"edu_type": "m.receipt", "content": {ROOM: {
        "m.read": {BOB: {"event_ids": [EVENT], "data": {"ts": 77, "thread_id": "main"}},
                   MALLORY: {"event_ids": [EVENT], "data": {"ts": 78}}},
        "m.read.private": {BOB: {"event_ids": [EVENT], "data": {"ts": 79}}}}}})
    stored = done(world.receipts.for_rooms([ROOM], 0, world.stream.current))
    assert [(r.user_id, r.receipt_type, r.event_id, r.ts, r.thread_id) for r in stored] == \
        [(BOB, "m.read", EVENT, 77, "main")]


def test_presence_of_remote_users_sharing_a_room(world: World) -> None:
    world.receive(edus.presence_edu([
        edus.PresenceUpdate(BOB, "online", 1000, "hi", True),
        edus.PresenceUpdate("@nobody:remote.test", "online", 0, None, True),  # shares no room
        edus.PresenceUpdate(MALLORY, "online", 0, None, True),  # another server's user
    ]))
    rows = done(world.presence.get_many([BOB, "@nobody:remote.test", MALLORY]))
    assert set(rows) == {BOB}
    bob = rows[BOB].presence
    assert (bob.state, bob.status_msg, bob.currently_active) == ("online", "hi", True)
    assert bob.last_active_ts == world.reactor.seconds() * 1000 - 1000


def test_to_device_reaches_every_addressed_device_once(world: World) -> None:
    message = edus.to_device_edu(edus.ToDeviceMessages(
        BOB, "m.room_key_request", "msg-1",
        {ALICE: {"*": {"n": 1}}, "@ghost:hs.test": {"X": {}}, "@carol:other.test": {"Y": {}}}))
    world.receive(message)
    world.receive(message)  # a retransmission: same message_id
    for device in ("PHONE", "LAPTOP"):
        inbox = done(world.to_device.pending(ALICE, device, world.stream.current))
        assert [m for _, m in inbox] == [
            {"sender": BOB, "type": "m.room_key_request", "content": {"n": 1}}]


def test_device_list_update_marks_the_remote_user_changed(world: World) -> None:
    since = world.stream.current
    world.receive(edus.device_list_edu(edus.DeviceListUpdate(BOB, "DEV", 3, [], False)))
    delta = done(DeviceListStore(world.db).changes(ALICE, since, world.stream.current))
    assert BOB in delta.changed


@pytest.mark.parametrize("garbage", [
    None, 5, "x", [], {}, {"edu_type": 5}, {"edu_type": "m.typing"},
    {"edu_type": "m.typing", "content": []},
    {"edu_type": "m.receipt", "content": {ROOM: {"m.read": {BOB: None}}}},
    {"edu_type": "m.presence", "content": {"push": [None, {"user_id": 5}]}},
    {"edu_type": "m.direct_to_device", "content": {"messages": "x"}},
    {"edu_type": "m.device_list_update", "content": {"user_id": BOB}},
    {"edu_type": "m.unknown.type", "content": {"anything": True}},
])
def test_garbage_is_ignored_and_the_rest_applied(world: World, garbage: Any) -> None:
    world.receive(garbage, edus.typing_edu(ROOM, BOB, True))
    assert world.typing.typing_users(ROOM) == [BOB]


def test_a_non_list_of_edus_is_ignored(world: World) -> None:
    done(world.handler.handle_edus(ORIGIN, {"not": "a list"}))
