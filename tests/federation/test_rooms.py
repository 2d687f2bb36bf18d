"""Rooms shared by our servers: joins, messages, state, leaves, invites.

Each server is a separate process on its own loopback address; what is
checked is what the users' clients see through the Client-Server API.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from tests.federation.accounts import Account, quote
from tests.federation.cluster import FederatedServer


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.1)


def create_room(owner: Account, **body: Any) -> str:
    status, answer = owner.request("POST", "/createRoom", {"preset": "public_chat", **body})
    assert status == 200, answer
    return answer["room_id"]


def send_text(account: Account, room_id: str, text: str) -> str:
    status, answer = account.request(
        "PUT", f"/rooms/{quote(room_id)}/send/m.room.message/{time.monotonic_ns()}",
        {"msgtype": "m.text", "body": text})
    assert status == 200, answer
    return answer["event_id"]


def timeline_bodies(account: Account, room_id: str, limit: int = 50) -> list[str]:
    status, answer = account.request("GET", f"/rooms/{quote(room_id)}/messages",
                                     query={"dir": "b", "limit": str(limit)})
    assert status == 200, answer
    return [e["content"].get("body") for e in reversed(answer["chunk"])
            if e["type"] == "m.room.message"]


def joined_members(account: Account, room_id: str) -> set[str]:
    status, answer = account.request("GET", f"/rooms/{quote(room_id)}/joined_members")
    return set(answer.get("joined", {})) if status == 200 else set()


def test_remote_user_joins_by_alias_and_sees_the_room(
        fed_servers: list[FederatedServer], unique: str) -> None:
    a, b = fed_servers[0], fed_servers[1]
    alice = a.register(f"alice{unique}")
    bob = b.register(f"bob{unique}")
    room_id = create_room(alice, room_alias_name=f"hall{unique}", name="Hall")
    send_text(alice, room_id, "before bob")

    status, answer = bob.join(f"#hall{unique}:{a.server_name}")
    assert status == 200, answer
    assert answer["room_id"] == room_id
    assert bob.user_id in joined_members(alice, room_id)
    assert joined_members(bob, room_id) == {alice.user_id, bob.user_id}
    status, name = bob.request("GET", f"/rooms/{quote(room_id)}/state/m.room.name")
    assert status == 200 and name["name"] == "Hall"


def test_join_by_room_id_needs_via_for_v12(fed_servers: list[FederatedServer],
                                           unique: str) -> None:
    a, c = fed_servers[0], fed_servers[2]
    alice = a.register(f"alice{unique}")
    carol = c.register(f"carol{unique}")
    room_id = create_room(alice, room_version="12")
    assert ":" not in room_id
    status, _ = carol.join(room_id)
    assert status in (403, 404)  # nowhere to ask
    status, answer = carol.join(room_id, via=[a.server_name])
    assert status == 200, answer
    assert carol.user_id in joined_members(alice, room_id)


def invited_rooms(account: Account) -> dict[str, Any]:
    status, answer = account.request("GET", "/sync", query={"timeout": "0"})
    assert status == 200, answer
    return answer.get("rooms", {}).get("invite", {})


def test_invite_of_a_remote_user_then_accept_and_reject(
        fed_servers: list[FederatedServer], unique: str) -> None:
    a, b = fed_servers[0], fed_servers[1]
    alice = a.register(f"alice{unique}")
    bob = b.register(f"bob{unique}")
    room_id = create_room(alice, preset="private_chat", name="Secret")
    status, answer = alice.request("POST", f"/rooms/{quote(room_id)}/invite",
                                   {"user_id": bob.user_id})
    assert status == 200, answer
    invite = wait_for(lambda: invited_rooms(bob).get(room_id), what="bob's invite")
    names = [e["content"].get("name") for e in invite["invite_state"]["events"]
             if e["type"] == "m.room.name"]
    assert names == ["Secret"]
    status, answer = bob.join(room_id)  # no via: the inviter's server is asked
    assert status == 200, answer
    assert joined_members(alice, room_id) == {alice.user_id, bob.user_id}

    other = create_room(alice, preset="private_chat")
    status, _ = alice.request("POST", f"/rooms/{quote(other)}/invite", {"user_id": bob.user_id})
    assert status == 200
    wait_for(lambda: other in invited_rooms(bob), what="second invite")
    status, answer = bob.request("POST", f"/rooms/{quote(other)}/leave", {})
    assert status == 200, answer
    status, members = alice.request("GET", f"/rooms/{quote(other)}/members")
    memberships = {e["state_key"]: e["content"]["membership"] for e in members["chunk"]}
    assert memberships[bob.user_id] == "leave"
    assert other not in invited_rooms(bob)


def test_messages_and_state_flow_both_ways_and_history_backfills(
        fed_servers: list[FederatedServer], unique: str) -> None:
    a, b = fed_servers[0], fed_servers[1]
    alice = a.register(f"alice{unique}")
    bob = b.register(f"bob{unique}")
    room_id = create_room(alice, room_version="11")
    history = [f"old {i}" for i in range(15)]
    for text in history:
        send_text(alice, room_id, text)
    status, answer = bob.join(room_id, via=[a.server_name])
    assert status == 200, answer

    send_text(alice, room_id, "hello bob")
    wait_for(lambda: "hello bob" in timeline_bodies(bob, room_id), what="alice's message on B")
    send_text(bob, room_id, "hi alice")
    wait_for(lambda: "hi alice" in timeline_bodies(alice, room_id), what="bob's message on A")
    status, _ = bob.request("PUT", f"/rooms/{quote(room_id)}/state/m.room.topic",
                            {"topic": "set by bob"})
    assert status == 403  # bob has no power: refused locally, never sent
    status, _ = alice.request("PUT", f"/rooms/{quote(room_id)}/state/m.room.topic",
                              {"topic": "set by alice"})
    assert status == 200
    wait_for(lambda: bob.request("GET", f"/rooms/{quote(room_id)}/state/m.room.topic")[1]
             .get("topic") == "set by alice", what="topic on B")

    # Scrolling back on B goes past bob's join: B backfills from A.
    bodies = timeline_bodies(bob, room_id, limit=40)
    assert bodies[:15] == history, bodies


def test_leave_and_rejoin(fed_servers: list[FederatedServer], unique: str) -> None:
    a, c = fed_servers[0], fed_servers[2]
    alice = a.register(f"alice{unique}")
    carol = c.register(f"carol{unique}")
    room_id = create_room(alice, room_version="10")
    assert carol.join(room_id, via=[a.server_name])[0] == 200
    status, _ = carol.request("POST", f"/rooms/{quote(room_id)}/leave", {})
    assert status == 200
    wait_for(lambda: joined_members(alice, room_id) == {alice.user_id}, what="carol's leave on A")
    send_text(alice, room_id, "while carol is away")
    assert carol.join(room_id, via=[a.server_name])[0] == 200
    wait_for(lambda: carol.user_id in joined_members(alice, room_id), what="rejoin on A")
    send_text(carol, room_id, "carol is back")
    wait_for(lambda: "carol is back" in timeline_bodies(alice, room_id),
             what="message after rejoin")


def test_knock_on_a_remote_room_then_get_invited(fed_servers: list[FederatedServer],
                                                 unique: str) -> None:
    a, b = fed_servers[0], fed_servers[1]
    alice = a.register(f"alice{unique}")
    bob = b.register(f"bob{unique}")
    room_id = create_room(alice, preset="private_chat", room_version="11",
                          initial_state=[{"type": "m.room.join_rules", "state_key": "",
                                          "content": {"join_rule": "knock"}}])
    status, answer = bob.request("POST", f"/knock/{quote(room_id)}", {"reason": "let me in"},
                                 query={"via": [a.server_name]})
    assert status == 200, answer
    status, members = alice.request("GET", f"/rooms/{quote(room_id)}/members")
    knocks = {e["state_key"]: e["content"].get("reason") for e in members["chunk"]
              if e["content"]["membership"] == "knock"}
    assert knocks == {bob.user_id: "let me in"}
    status, _ = alice.request("POST", f"/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id})
    assert status == 200
    wait_for(lambda: room_id in invited_rooms(bob), what="invite after knock")
    assert bob.join(room_id)[0] == 200
    assert joined_members(alice, room_id) == {alice.user_id, bob.user_id}


def test_restricted_join_authorised_by_the_resident_server(
        fed_servers: list[FederatedServer], unique: str) -> None:
    a, b = fed_servers[0], fed_servers[1]
    alice = a.register(f"alice{unique}")
    bob = b.register(f"bob{unique}")
    guild = create_room(alice, room_version="11", creation_content={"type": "m.space"})
    channel = create_room(alice, room_version="11", initial_state=[{
        "type": "m.room.join_rules", "state_key": "",
        "content": {"join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": guild}]}}])
    status, _ = bob.join(channel, via=[a.server_name])
    assert status == 403  # not in the guild yet
    assert bob.join(guild, via=[a.server_name])[0] == 200
    status, answer = bob.join(channel, via=[a.server_name])
    assert status == 200, answer
    status, member = alice.request(
        "GET", f"/rooms/{quote(channel)}/state/m.room.member/{quote(bob.user_id)}")
    assert member["join_authorised_via_users_server"] == alice.user_id
