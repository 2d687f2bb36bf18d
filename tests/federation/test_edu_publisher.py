"""EDUs our users cause, from the real handlers through the EduPublisher and the
real sender, to the test double of the network in test_sender.py: who gets
which EDU, and what never leaves the server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from federation.edus import DEVICE_LIST_UPDATE, DIRECT_TO_DEVICE, TYPING
from homeserver.clock import Clock
from homeserver.handlers.auth import Requester
from homeserver.handlers.e2e_keys import E2eKeysHandler
from homeserver.handlers.edu_publisher import EduPublisher
from homeserver.handlers.to_device import ToDeviceHandler
from homeserver.handlers.typing import TypingHandler
from homeserver.storage.device_lists import DeviceListStore
from homeserver.storage.e2e_keys import EndToEndKeyStore
from homeserver.storage.rooms import RoomStore
from homeserver.storage.stream import StreamIdGenerator
from homeserver.storage.to_device import ToDeviceStore
from homeserver.storage.users import UserStore
from homeserver.sync.notifier import Notifier
from tests.federation.test_sender import (  # noqa: F401 (fixtures)
    ALICE,
    HS,
    REMOTE_A,
    REMOTE_B,
    ROOM,
    World,
    database_url,
    done,
    postgres,
)
from tests.federation.test_sender import world as sender_world  # noqa: F401 (fixture)


class Handlers:
    def __init__(self, w: World) -> None:
        stream = StreamIdGenerator(1000)
        notifier = Notifier(stream)
        rooms = RoomStore(w.db)
        clock = Clock(w.reactor)
        publisher = EduPublisher(HS, w.sender, rooms, w.store, clock)
        self.typing = TypingHandler(stream, notifier, clock, rooms)
        self.typing.on_typing.append(publisher.typing_changed)
        self.keys = E2eKeysHandler(EndToEndKeyStore(w.db), DeviceListStore(w.db), rooms,
                                   stream, notifier, HS)
        self.keys.on_device_change.append(publisher.device_changed)
        self.to_device = ToDeviceHandler(ToDeviceStore(w.db), UserStore(w.db), stream,
                                         notifier, HS)
        self.to_device.remote_delivery = publisher.send_to_device


@pytest.fixture
def world(sender_world: World) -> Iterator[World]:  # noqa: F811
    sender_world.remote.auto = {REMOTE_A: {}, REMOTE_B: {}}
    yield sender_world


def edus_to(world: World, destination: str, edu_type: str) -> list[dict[str, Any]]:
    return [e["content"] for c in world.remote.to(destination) for e in c.body["edus"]
            if e["edu_type"] == edu_type]


def test_typing_of_our_user_goes_to_the_rooms_servers(world: World) -> None:
    handlers = Handlers(world)
    done(handlers.typing.user_typing(ALICE, ROOM, ALICE, True, 10_000))
    world.reactor.advance(11)  # the timeout ends it: the servers hear that too
    for server in (REMOTE_A, REMOTE_B):
        assert edus_to(world, server, TYPING) == [
            {"room_id": ROOM, "user_id": ALICE, "typing": True},
            {"room_id": ROOM, "user_id": ALICE, "typing": False}]


def test_remote_users_typing_is_not_sent_back(world: World) -> None:
    handlers = Handlers(world)
    handlers.typing.set_typing(ROOM, "@bob:a.test", True, 1000)
    world.reactor.advance(2)
    assert edus_to(world, REMOTE_A, TYPING) == edus_to(world, REMOTE_B, TYPING) == []


def test_device_changes_go_to_servers_sharing_a_room_with_a_prev_id_chain(
        world: World) -> None:
    handlers = Handlers(world)
    keys = {"user_id": ALICE, "device_id": "PHONE", "algorithms": ["a"],
            "keys": {"curve25519:PHONE": "k"}, "signatures": {}}
    done(handlers.keys.upload(Requester(ALICE, "PHONE"), {"device_keys": keys}))
    done(handlers.keys.device_removed(ALICE, "PHONE"))
    first, second = edus_to(world, REMOTE_A, DEVICE_LIST_UPDATE)
    assert (first["device_id"], first["deleted"], first["prev_id"], first["keys"]) == \
        ("PHONE", False, [], keys)
    assert (second["deleted"], second["prev_id"]) == (True, [first["stream_id"]])
    assert second["stream_id"] > first["stream_id"]
    assert edus_to(world, REMOTE_B, DEVICE_LIST_UPDATE) == [first, second]


def test_to_device_for_remote_users_goes_once_to_each_of_their_servers(world: World) -> None:
    handlers = Handlers(world)
    messages = {"@bob:a.test": {"*": {"n": 1}}, "@carol:b.test": {"D1": {"n": 2}},
                "@dave:a.test": {"D2": {"n": 3}}}
    done(handlers.to_device.send(ALICE, "PHONE", "m.test", "txn1", messages))
    done(handlers.to_device.send(ALICE, "PHONE", "m.test", "txn1", messages))  # a retry
    to_a = edus_to(world, REMOTE_A, DIRECT_TO_DEVICE)
    to_b = edus_to(world, REMOTE_B, DIRECT_TO_DEVICE)
    assert len(to_a) == len(to_b) == 1
    assert to_a[0]["messages"] == {"@bob:a.test": {"*": {"n": 1}},
                                   "@dave:a.test": {"D2": {"n": 3}}}
    assert to_b[0]["messages"] == {"@carol:b.test": {"D1": {"n": 2}}}
    assert (to_a[0]["sender"], to_a[0]["type"]) == (ALICE, "m.test")
    assert to_a[0]["message_id"] == to_b[0]["message_id"]
