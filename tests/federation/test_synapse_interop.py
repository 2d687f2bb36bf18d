"""Interop with an unmodified Synapse (from PyPI) on loopback, both directions.

What is checked is what each side's clients see: joins, messages, state,
typing, receipts and backfill.
"""

from __future__ import annotations

import time

from tests.federation.accounts import Account, quote
from tests.federation.cluster import FederatedServer
from tests.federation.synapse import SynapsePeer
from tests.federation.test_rooms import (
    create_room, joined_members, send_text, timeline_bodies, wait_for,
)


def ephemeral(account: Account, room_id: str) -> list[dict]:
    status, answer = account.request("GET", "/sync", query={"timeout": "0"})
    assert status == 200, answer
    return answer.get("rooms", {}).get("join", {}).get(room_id, {}).get(
        "ephemeral", {}).get("events", [])


def test_synapse_user_joins_our_room(fed_servers: list[FederatedServer],
                                     synapse: SynapsePeer, unique: str) -> None:
    ours = fed_servers[0]
    alice = ours.register(f"alice{unique}")
    sam = synapse.register(f"sam{unique}")
    room_id = create_room(alice, room_alias_name=f"lobby{unique}", room_version="11")
    history = [f"early {i}" for i in range(12)]
    for text in history:
        send_text(alice, room_id, text)

    status, answer = sam.join(f"#lobby{unique}:{ours.server_name}")
    assert status == 200, (answer, synapse.log_tail())
    assert answer["room_id"] == room_id
    wait_for(lambda: sam.user_id in joined_members(alice, room_id), what="sam's join on ours")

    send_text(alice, room_id, "hello sam")
    wait_for(lambda: "hello sam" in timeline_bodies(sam, room_id), what="our message on Synapse")
    send_text(sam, room_id, "hello alice")
    wait_for(lambda: "hello alice" in timeline_bodies(alice, room_id),
             what="Synapse's message on ours")
    # Synapse scrolls back past its join: it backfills from us.
    wait_for(lambda: timeline_bodies(sam, room_id, limit=40)[:12] == history,
             what="backfill on Synapse")

    status, _ = sam.request("PUT", f"/rooms/{quote(room_id)}/typing/{quote(sam.user_id)}",
                            {"typing": True, "timeout": 20000})
    assert status == 200
    wait_for(lambda: any(e["type"] == "m.typing" and sam.user_id in e["content"]["user_ids"]
                         for e in ephemeral(alice, room_id)), what="Synapse typing on ours")


def test_our_user_joins_a_synapse_room(fed_servers: list[FederatedServer],
                                       synapse: SynapsePeer, unique: str) -> None:
    ours = fed_servers[1]
    bob = ours.register(f"bob{unique}")
    sam = synapse.register(f"sam{unique}")
    status, answer = sam.request("POST", "/createRoom", {
        "preset": "public_chat", "room_alias_name": f"den{unique}", "name": "Den"})
    assert status == 200, answer
    room_id = answer["room_id"]  # room version 12: no server name in the ID
    history = [f"synapse early {i}" for i in range(12)]
    for text in history:
        send_text(sam, room_id, text)

    status, answer = bob.join(f"#den{unique}:{synapse.server_name}")
    assert status == 200, answer
    assert answer["room_id"] == room_id
    wait_for(lambda: bob.user_id in joined_members(sam, room_id), what="bob's join on Synapse")
    status, name = bob.request("GET", f"/rooms/{quote(room_id)}/state/m.room.name")
    assert status == 200 and name["name"] == "Den"

    send_text(sam, room_id, "welcome bob")
    wait_for(lambda: "welcome bob" in timeline_bodies(bob, room_id), what="Synapse message on ours")
    send_text(bob, room_id, "thanks sam")
    wait_for(lambda: "thanks sam" in timeline_bodies(sam, room_id), what="our message on Synapse")
    status, _ = sam.request("PUT", f"/rooms/{quote(room_id)}/state/m.room.topic",
                            {"topic": "from synapse"})
    assert status == 200
    wait_for(lambda: bob.request("GET", f"/rooms/{quote(room_id)}/state/m.room.topic")[1]
             .get("topic") == "from synapse", what="Synapse's topic on ours")
    # We scroll back past our join: we backfill from Synapse.
    assert timeline_bodies(bob, room_id, limit=40)[:12] == history

    event_id = send_text(bob, room_id, "read this")
    status, _ = sam.request("POST", f"/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}",
                            {})
    assert status == 200
    wait_for(lambda: any(e["type"] == "m.receipt" and event_id in e["content"]
                         for e in ephemeral(bob, room_id)), what="Synapse receipt on ours")
