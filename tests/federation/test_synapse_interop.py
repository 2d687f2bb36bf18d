"""Interop with an unmodified Synapse (from PyPI) on loopback, both directions.

What is checked is what each side's clients see: joins, messages, state,
typing, receipts and backfill.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.federation.accounts import Account, quote
from tests.federation.cluster import FederatedServer
from tests.federation.synapse import SynapsePeer
from tests.federation.test_rooms import (
    create_room, joined_members, send_text, timeline_bodies, wait_for,
)


_since: dict[str, str] = {}
_seen: dict[tuple[str, str], list[dict]] = {}


def ephemeral(account: Account, room_id: str) -> list[dict]:
    """Every ephemeral event this account's syncs have shown for the room so far
    (incremental syncs: Synapse caches an initial sync's answer for a while)."""
    query = {"timeout": "0"}
    if account.user_id in _since:
        query["since"] = _since[account.user_id]
    status, answer = account.request("GET", "/sync", query=query)
    assert status == 200, answer
    _since[account.user_id] = answer["next_batch"]
    for joined_room, body in answer.get("rooms", {}).get("join", {}).items():
        _seen.setdefault((account.user_id, joined_room), []).extend(
            body.get("ephemeral", {}).get("events", []))
    return _seen.get((account.user_id, room_id), [])


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
    # And ours to Synapse: typing, then a read receipt on Synapse's message.
    status, _ = alice.request("PUT", f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}",
                              {"typing": True, "timeout": 20000})
    assert status == 200
    wait_for(lambda: any(e["type"] == "m.typing" and alice.user_id in e["content"]["user_ids"]
                         for e in ephemeral(sam, room_id)), what="our typing on Synapse")
    status, chunk = alice.request("GET", f"/rooms/{quote(room_id)}/messages",
                                  query={"dir": "b", "limit": "5"})
    hello = next(e["event_id"] for e in chunk["chunk"]
                 if e["content"].get("body") == "hello alice")
    status, _ = alice.request("POST", f"/rooms/{quote(room_id)}/receipt/m.read/{quote(hello)}",
                              {})
    assert status == 200
    wait_for(lambda: any(e["type"] == "m.receipt" and hello in e["content"]
                         for e in ephemeral(sam, room_id)), what="our receipt on Synapse")


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
    wait_for(lambda: "read this" in timeline_bodies(sam, room_id), what="the message on Synapse")
    status, _ = sam.request("POST", f"/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}",
                            {})
    assert status == 200
    wait_for(lambda: any(e["type"] == "m.receipt" and event_id in e["content"]
                         for e in ephemeral(bob, room_id)), what="Synapse receipt on ours")


def test_synapse_moderation_and_concurrent_state_converge(
        fed_servers: list[FederatedServer], synapse: SynapsePeer, unique: str) -> None:
    ours = fed_servers[2]
    bob = ours.register(f"bob{unique}")
    sam = synapse.register(f"sam{unique}")
    status, answer = sam.request("POST", "/createRoom", {"preset": "public_chat"})
    assert status == 200, answer
    room_id = answer["room_id"]
    status, levels = sam.request("GET", f"/rooms/{quote(room_id)}/state/m.room.power_levels")
    levels.setdefault("users", {})[bob.user_id] = 50
    levels["state_default"] = 50
    assert sam.request("PUT", f"/rooms/{quote(room_id)}/state/m.room.power_levels",
                       levels)[0] == 200
    assert bob.join(room_id, via=[synapse.server_name])[0] == 200
    wait_for(lambda: bob.user_id in joined_members(sam, room_id), what="bob on Synapse")

    # Both set the topic at once: each side ends with the same topic.
    assert bob.request("PUT", f"/rooms/{quote(room_id)}/state/m.room.topic",
                       {"topic": "ours"})[0] == 200
    assert sam.request("PUT", f"/rooms/{quote(room_id)}/state/m.room.topic",
                       {"topic": "theirs"})[0] == 200

    def topics() -> tuple[str | None, str | None]:
        return tuple(a.request("GET", f"/rooms/{quote(room_id)}/state/m.room.topic")[1]
                     .get("topic") for a in (bob, sam))  # type: ignore[return-value]

    wait_for(lambda: (lambda t: t[0] == t[1])(topics()), timeout=30, what="topics converge")

    # Synapse's moderator bans our user: it takes effect on our server too.
    status, _ = sam.request("POST", f"/rooms/{quote(room_id)}/ban",
                            {"user_id": bob.user_id, "reason": "test"})
    assert status == 200
    wait_for(lambda: bob.request("GET", f"/rooms/{quote(room_id)}/state/m.room.member/"
                                        f"{quote(bob.user_id)}")[1].get("membership") == "ban",
             what="the ban on ours")
    status, _ = bob.request("PUT", f"/rooms/{quote(room_id)}/send/m.room.message/after-ban",
                            {"msgtype": "m.text", "body": "can I?"})
    assert status == 403


def test_invites_both_ways(fed_servers: list[FederatedServer], synapse: SynapsePeer,
                           unique: str) -> None:
    ours = fed_servers[0]
    alice = ours.register(f"alice{unique}")
    sam = synapse.register(f"sam{unique}")

    # Synapse invites our user, who accepts.
    status, answer = sam.request("POST", "/createRoom", {"preset": "private_chat",
                                                         "name": "Synapse secret",
                                                         "invite": [alice.user_id]})
    assert status == 200, answer
    theirs = answer["room_id"]

    def invites(account: Any) -> dict[str, Any]:
        return account.request("GET", "/sync", query={"timeout": "0"})[1]["rooms"]["invite"]

    invite = wait_for(lambda: invites(alice).get(theirs), what="Synapse's invite on ours")
    assert any(e["type"] == "m.room.name" and e["content"]["name"] == "Synapse secret"
               for e in invite["invite_state"]["events"])
    assert alice.join(theirs)[0] == 200
    wait_for(lambda: alice.user_id in joined_members(sam, theirs), what="accepted on Synapse")

    # Our user invites a Synapse user, who accepts.
    mine = create_room(alice, preset="private_chat", room_version="11")
    status, answer = alice.request("POST", f"/rooms/{quote(mine)}/invite",
                                   {"user_id": sam.user_id})
    assert status == 200, answer
    wait_for(lambda: mine in _synapse_invites(sam), what="our invite on Synapse")
    assert sam.request("POST", f"/rooms/{quote(mine)}/join", {})[0] == 200
    wait_for(lambda: sam.user_id in joined_members(alice, mine), what="accepted on ours")


def _synapse_invites(account: Account) -> dict[str, Any]:
    """Invites as Synapse reports them, through a filter unique to each call
    (Synapse caches identical initial syncs for a while)."""
    query = {"timeout": "0",
             "filter": json.dumps({"room": {"timeline": {"limit": time.monotonic_ns() % 50 + 1}}})}
    status, answer = account.request("GET", "/sync", query=query)
    assert status == 200, answer
    return answer.get("rooms", {}).get("invite", {})
