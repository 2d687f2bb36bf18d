"""Hostile input over federation: nothing forged, mis-signed, unauthorised or
banned ever reaches a client, garbage gets the spec's errors, never a 5xx."""

from __future__ import annotations

import copy
import re
import time
from typing import Any, Iterator

import pytest

from tests.federation.accounts import Account, quote
from tests.federation.certs import TestCA
from tests.federation.cluster import FederatedServer
from tests.federation.rogue import RoguePeer, event_id
from tests.federation.test_rooms import create_room, send_text, timeline_bodies, wait_for
from tests.harness import http_json

VERSION = "11"


@pytest.fixture
def rogue(test_ca: TestCA) -> Iterator[RoguePeer]:
    peer = RoguePeer(test_ca)
    yield peer
    peer.close()


def state_ids(account: Account, room_id: str) -> dict[tuple[str, str], str]:
    status, events = account.request("GET", f"/rooms/{quote(room_id)}/state")
    assert status == 200, events
    return {(e["type"], e["state_key"]): e["event_id"] for e in events}


class Room:
    """A room on our server that the rogue's user @eve joined."""

    def __init__(self, server: FederatedServer, owner: Account, rogue: RoguePeer) -> None:
        self.server, self.owner, self.rogue = server, owner, rogue
        self.room_id = create_room(owner, room_version=VERSION)
        self.join = rogue.join(server.server_name, self.room_id, "eve")
        self.eve = rogue.user_id("eve")
        self.head = event_id(self.join, VERSION)
        self.depth = self.join["depth"]

    def auth_for_eve(self) -> list[str]:
        state = state_ids(self.owner, self.room_id)
        return [state[("m.room.create", "")], state[("m.room.power_levels", "")],
                state[("m.room.member", self.eve)]]

    def message(self, body: str, **overrides: Any) -> dict[str, Any]:
        fields = dict(type="m.room.message", room_id=self.room_id, sender=self.eve,
                      content={"msgtype": "m.text", "body": body},
                      prev_events=[self.head], auth_events=self.auth_for_eve(),
                      depth=self.depth + 1)
        fields.update(overrides)
        return self.rogue.event(VERSION, **fields)

    def accept(self, pdu: dict[str, Any]) -> None:
        """The rogue's head moves on to an event our server accepted."""
        self.head, self.depth = event_id(pdu, VERSION), pdu["depth"]

    def send(self, *pdus: dict[str, Any]) -> dict[str, Any]:
        status, answer = self.rogue.send(self.server.server_name, list(pdus))
        assert status == 200, answer
        return answer["pdus"]


def test_forged_tampered_and_unauthorised_pdus_never_reach_clients(
        fed_servers: list[FederatedServer], rogue: RoguePeer, unique: str) -> None:
    server = fed_servers[0]
    alice = server.register(f"alice{unique}")
    room = Room(server, alice, rogue)

    good = room.message("legit")
    assert room.send(good)[event_id(good, VERSION)] == {}
    room.accept(good)
    wait_for(lambda: "legit" in timeline_bodies(alice, room.room_id), what="a good PDU")

    mis_signed = room.message("forged signature")
    sig = mis_signed["signatures"][rogue.server_name]
    key_id = next(iter(sig))
    sig[key_id] = sig[key_id][:-4] + ("AAAA" if not sig[key_id].endswith("AAAA") else "BBBB")
    answers = room.send(mis_signed)
    assert "signature" in answers[event_id(mis_signed, VERSION)]["error"]

    other_sender = room.message("pretends to be alice", sender=alice.user_id)
    assert "signature" in room.send(other_sender)[event_id(other_sender, VERSION)]["error"]

    tampered = room.message("original text")
    tampered = copy.deepcopy(tampered)
    tampered["content"]["body"] = "tampered text"
    assert room.send(tampered)[event_id(tampered, VERSION)] == {}  # accepted, redacted

    no_auth = room.message("cites no auth events", auth_events=[])
    assert "error" in room.send(no_auth)[event_id(no_auth, VERSION)]

    topic = room.rogue.event(VERSION, type="m.room.topic", state_key="", room_id=room.room_id,
                             sender=room.eve, content={"topic": "eve's topic"},
                             prev_events=[room.head], auth_events=room.auth_for_eve(),
                             depth=room.depth + 1)
    assert "error" in room.send(topic)[event_id(topic, VERSION)]

    oversize = room.message("x" * 70000)
    assert "format" in room.send(oversize)[event_id(oversize, VERSION)]["error"]

    final = room.message("still talking")
    room.send(final)
    wait_for(lambda: "still talking" in timeline_bodies(alice, room.room_id), what="final PDU")
    bodies = timeline_bodies(alice, room.room_id)
    for hidden in ("forged signature", "pretends to be alice", "original text", "tampered text",
                   "cites no auth events"):
        assert hidden not in bodies
    assert all(len(b or "") < 70000 for b in bodies)
    status, topic_now = alice.request("GET", f"/rooms/{quote(room.room_id)}/state/m.room.topic")
    assert status == 404 or topic_now.get("topic") != "eve's topic"
    # The tampered event survives only redacted (spec: content hash mismatch).
    status, redacted = alice.request(
        "GET", f"/rooms/{quote(room.room_id)}/event/{quote(event_id(tampered, VERSION))}")
    assert status == 200, redacted
    assert redacted["content"] == {}
    # The operator can see why: event ID, origin and the failed rule.
    origin = re.escape(rogue.server_name)
    server.wait_for_log(rf"dropped PDU {re.escape(event_id(mis_signed, VERSION))} from "
                        rf"{origin} .*signature")
    server.wait_for_log(rf"rejected {re.escape(event_id(topic, VERSION))} \(m\.room\.topic\) "
                        rf"from {origin} .*rule \d")


def test_garbage_transactions_get_spec_errors(fed_servers: list[FederatedServer],
                                              rogue: RoguePeer) -> None:
    server = fed_servers[0]
    dest = server.server_name
    status, answer = rogue.request(dest, "PUT", "/_matrix/federation/v1/send/g1",
                                   {"origin": rogue.server_name, "pdus": "nope"})
    assert status == 400 and answer["errcode"] == "M_BAD_JSON"
    status, answer = rogue.send(dest, [{"room_id": 5}, "text", None, {"room_id": "!x:y"}])
    assert status == 200, answer
    status, answer = rogue.send(dest, [{}] * 51)
    assert status == 400 and answer["errcode"] == "M_BAD_JSON"
    # Unsigned and wrongly signed requests.
    status, answer = http_json("PUT", f"https://{dest}/_matrix/federation/v1/send/g2",
                               {"pdus": []}, context=rogue._client_context)
    assert status == 401 and answer["errcode"] == "M_UNAUTHORIZED"
    status, answer = rogue.request(dest, "PUT", "/_matrix/federation/v1/send/g3", None,
                                   raw=b"{not json")
    assert status in (400, 401) and answer["errcode"] in ("M_NOT_JSON", "M_UNAUTHORIZED")


def test_acl_banned_server_and_soft_failed_events(fed_servers: list[FederatedServer],
                                                  rogue: RoguePeer, unique: str) -> None:
    server = fed_servers[0]
    alice = server.register(f"alice{unique}")
    room = Room(server, alice, rogue)
    before_ban = room.message("sent before the ban, arriving after it")
    # Alice bans eve; the rogue then sends an event built on the state before
    # the ban: it passes its own auth events and the state before it, and
    # fails the current state: soft-failed, hidden.
    status, _ = alice.request("POST", f"/rooms/{quote(room.room_id)}/ban",
                              {"user_id": room.eve, "reason": "rogue"})
    assert status == 200
    # Accepted into the DAG (the answer is not the verdict clients see)...
    assert room.send(before_ban)[event_id(before_ban, VERSION)] == {}
    server.wait_for_log(rf"soft-failed {re.escape(event_id(before_ban, VERSION))} .*from "
                        rf"{re.escape(rogue.server_name)}")
    send_text(alice, room.room_id, "after the ban")
    time.sleep(0.5)
    assert "sent before the ban, arriving after it" not in timeline_bodies(alice, room.room_id)

    acl_room = Room(server, alice, rogue)
    status, _ = alice.request("PUT", f"/rooms/{quote(acl_room.room_id)}/state/m.room.server_acl",
                              {"allow": ["*"], "deny": [rogue.ip], "allow_ip_literals": True})
    assert status == 200
    denied = acl_room.message("from a denied server")
    answers = acl_room.send(denied)
    assert "error" in answers.get(event_id(denied, VERSION), {"error": "absent"})
    assert "from a denied server" not in timeline_bodies(alice, acl_room.room_id)


def test_membership_handshakes_refuse_bad_requests(fed_servers: list[FederatedServer],
                                                   rogue: RoguePeer, unique: str) -> None:
    server = fed_servers[0]
    dest = server.server_name
    alice = server.register(f"alice{unique}")
    room_id = create_room(alice, room_version=VERSION)
    eve = quote(rogue.user_id("eve"))
    base = f"/_matrix/federation/v1/make_join/{quote(room_id)}"
    status, answer = rogue.request(dest, "GET", f"{base}/{eve}?ver=1&ver=2")
    assert status == 400 and answer["errcode"] == "M_INCOMPATIBLE_ROOM_VERSION"
    assert answer["room_version"] == VERSION
    status, answer = rogue.request(dest, "GET", f"{base}/{quote(alice.user_id)}?ver={VERSION}")
    assert status == 403  # not the origin's user
    status, answer = rogue.request(
        dest, "GET", f"/_matrix/federation/v1/make_join/{quote('!nope:x')}/{eve}?ver={VERSION}")
    assert status == 404
    for body in ({}, {"type": "m.room.member"}, {"content": "x", "sender": 5}):
        status, answer = rogue.request(
            dest, "PUT", f"/_matrix/federation/v2/send_join/{quote(room_id)}/$x", body)
        assert status == 400, (body, answer)
    invite = f"/_matrix/federation/v2/invite/{quote(room_id)}/$x"
    status, answer = rogue.request(dest, "PUT", invite,
                                   {"room_version": VERSION, "event": {"type": "m.room.member"}})
    assert status == 400
    status, answer = rogue.request(dest, "PUT", invite,
                                   {"room_version": "99", "event": {}})
    assert status == 400 and answer["errcode"] == "M_INCOMPATIBLE_ROOM_VERSION"


def test_gaps_are_filled_with_get_missing_events_then_state_ids(
        fed_servers: list[FederatedServer], rogue: RoguePeer, unique: str) -> None:
    server = fed_servers[0]
    alice = server.register(f"alice{unique}")
    room = Room(server, alice, rogue)
    # Three messages; our server is sent only the last: it asks for the two
    # before it with /get_missing_events.
    first = room.message("gap 1")
    room.accept(first)
    second = room.message("gap 2")
    room.accept(second)
    third = room.message("gap 3")
    room.accept(third)
    rogue.missing_events_answer = [second, first]
    assert room.send(third)[event_id(third, VERSION)] == {}
    wait_for(lambda: timeline_bodies(alice, room.room_id)[-3:] == ["gap 1", "gap 2", "gap 3"],
             what="the gap filled in order")
    assert any("/get_missing_events/" in path for _, path, _ in rogue.received)

    # A gap too large for /get_missing_events: the state at the missing prev
    # event comes from /state_ids and /event.
    unseen = room.message("never sent")
    room.accept(unseen)
    after = room.message("after a big gap")
    room.accept(after)
    rogue.missing_events_answer = []
    state = state_ids(alice, room.room_id)
    rogue.held = {event_id(unseen, VERSION): unseen}
    rogue.state_ids_answer = {"pdu_ids": list(state.values()), "auth_chain_ids": []}
    assert room.send(after)[event_id(after, VERSION)] == {}
    wait_for(lambda: "after a big gap" in timeline_bodies(alice, room.room_id),
             what="an event after a big gap")
    assert any("/state_ids/" in path for _, path, _ in rogue.received)
