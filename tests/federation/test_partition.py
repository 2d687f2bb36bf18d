"""Servers that cannot reach each other keep serving their users; afterwards
they catch up in order, with nothing lost or duplicated, and conflicting state
changes made meanwhile converge to one state on both sides (state resolution).

A partition is made at the network level: a server's federation listener moves
to another port, so the others' requests to it are refused, while its client
API keeps serving. Healing moves it back."""

from __future__ import annotations

from typing import Any

from tests.federation.accounts import Account, quote
from tests.federation.cluster import FederatedServer
from tests.federation.loopback import reserve_port
from tests.federation.test_rooms import (
    create_room, joined_members, send_text, timeline_bodies, wait_for,
)
from tests.harness import HomeserverProcess


def cut_off(server: FederatedServer) -> None:
    """Restart `server` with its federation listener where nobody looks for it."""
    held = reserve_port(server.ip)
    elsewhere = held.getsockname()[1]
    held.close()
    server.stop()
    server.configure(federation_listen=f"{server.ip}:{elsewhere}")
    HomeserverProcess.start(server)


def reconnect(server: FederatedServer) -> None:
    server.stop()
    server.configure(federation_listen=f"{server.ip}:{server.federation_port}")
    server.start()


def room_state(account: Account, room_id: str) -> dict[tuple[str, str], Any]:
    status, events = account.request("GET", f"/rooms/{quote(room_id)}/state")
    assert status == 200, events
    return {(e["type"], e["state_key"]): e["content"] for e in events}


def test_outage_then_catch_up_in_order_without_duplicates(make_fed_servers: Any) -> None:
    a, b, c = make_fed_servers(3)
    alice, bob, carol = a.register("alice"), b.register("bob"), c.register("carol")
    room_id = create_room(alice, room_version="11")
    assert bob.join(room_id, via=[a.server_name])[0] == 200
    assert carol.join(room_id, via=[a.server_name])[0] == 200
    wait_for(lambda: joined_members(bob, room_id) == {alice.user_id, bob.user_id,
                                                     carol.user_id}, what="members on B")

    b.stop()
    sent = [f"during outage {i}" for i in range(10)]
    for i, text in enumerate(sent):
        # A conversation: each reply after the previous message arrived, so
        # the order is causal (concurrent sends may interleave differently).
        speaker, listener = (alice, carol) if i % 2 else (carol, alice)
        send_text(speaker, room_id, text)
        wait_for(lambda: text in timeline_bodies(listener, room_id), what=f"{text} arrives")
    b.start()

    wait_for(lambda: timeline_bodies(bob, room_id)[-10:] == sent, timeout=60,
             what="B caught up in order")
    bodies = timeline_bodies(bob, room_id, limit=100)
    assert all(bodies.count(text) == 1 for text in sent), bodies


def test_conflicting_state_during_a_partition_converges(make_fed_servers: Any) -> None:
    a, b = make_fed_servers(2)
    alice, dave = a.register("alice"), a.register("dave")
    bob = b.register("bob")
    room_id = create_room(alice, room_version="11")
    assert dave.request("POST", f"/join/{quote(room_id)}", {})[0] == 200
    assert bob.join(room_id, via=[a.server_name])[0] == 200
    levels = room_state(alice, room_id)[("m.room.power_levels", "")]
    levels["users"][bob.user_id] = 50
    levels["ban"] = 50
    status, _ = alice.request("PUT", f"/rooms/{quote(room_id)}/state/m.room.power_levels",
                              levels)
    assert status == 200
    wait_for(lambda: room_state(bob, room_id)[("m.room.power_levels", "")]["users"]
             .get(bob.user_id) == 50, what="bob's power on B")

    cut_off(a)
    cut_off(b)
    # On A, alice takes bob's power away; on B, bob bans dave meanwhile.
    demoted = dict(levels, users={k: v for k, v in levels["users"].items() if k != bob.user_id})
    status, _ = alice.request("PUT", f"/rooms/{quote(room_id)}/state/m.room.power_levels",
                              demoted)
    assert status == 200
    status, answer = bob.request("POST", f"/rooms/{quote(room_id)}/ban",
                                 {"user_id": dave.user_id})
    assert status == 200, answer
    assert room_state(bob, room_id)[("m.room.member", dave.user_id)]["membership"] == "ban"

    reconnect(a)
    reconnect(b)
    # The demotion wins (alice's power orders it first), so bob's ban fails
    # the iterative auth checks: dave stays in the room, on both servers.
    for account in (alice, bob):
        wait_for(lambda: (lambda s: s[("m.room.member", dave.user_id)]["membership"] == "join"
                          and bob.user_id not in s[("m.room.power_levels", "")]["users"])(
            room_state(account, room_id)), timeout=60, what=f"convergence on {account.user_id}")
    assert room_state(alice, room_id) == room_state(bob, room_id)
    send_text(dave, room_id, "still here")
    wait_for(lambda: "still here" in timeline_bodies(bob, room_id), what="dave's message on B")
