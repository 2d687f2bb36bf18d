"""The outgoing sender and EDUs between two of our server processes: what one
server's users do shows up in the other server's /sync, and a server that was
down gets everything it missed, in order, once.
"""

from __future__ import annotations

import time
from typing import Any

from tests.federation.accounts import Account, quote
from tests.federation.cluster import FederatedServer
from tests.federation.synapse import SynapsePeer
from tests.federation.waiting import wait_until

TIMEOUT_S = 30.0


def create_room(owner: Account) -> str:
    status, answer = owner.request("POST", "/createRoom", {"preset": "public_chat"})
    assert status == 200, answer
    return str(answer["room_id"])


def send_text(account: Account, room_id: str, text: str) -> str:
    status, answer = account.request(
        "PUT", f"/rooms/{quote(room_id)}/send/m.room.message/{time.monotonic_ns()}",
        {"msgtype": "m.text", "body": text})
    assert status == 200, answer
    return str(answer["event_id"])


def sync(account: Account, since: str | None = None) -> dict[str, Any]:
    query = {"timeout": "0", **({"since": since} if since else {})}
    status, answer = account.request("GET", "/sync", query=query)
    assert status == 200, answer
    return dict(answer)


def ephemeral(body: dict[str, Any], room_id: str, event_type: str) -> list[dict[str, Any]]:
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    return [e for e in room.get("ephemeral", {}).get("events", []) if e["type"] == event_type]


def message_bodies(account: Account, room_id: str) -> list[str]:
    status, answer = account.request("GET", f"/rooms/{quote(room_id)}/messages",
                                     query={"dir": "b", "limit": "100"})
    assert status == 200, answer
    return [e["content"].get("body") for e in reversed(answer["chunk"])
            if e["type"] == "m.room.message"]


def shared_room(a: FederatedServer, b: FederatedServer, unique: str
                ) -> tuple[Account, Account, str]:
    alice = a.register(f"alice{unique}")
    bob = b.register(f"bob{unique}")
    room_id = create_room(alice)
    status, answer = bob.join(room_id, via=[a.server_name])
    assert status == 200, answer
    return alice, bob, room_id


def test_messages_and_edus_reach_the_other_server(fed_servers: list[FederatedServer],
                                                  unique: str) -> None:
    a, b = fed_servers[0], fed_servers[1]
    alice, bob, room_id = shared_room(a, b, unique)
    since_bob = sync(bob)["next_batch"]
    since_alice = sync(alice)["next_batch"]

    # A PDU each way.
    first = send_text(alice, room_id, "hello from A")
    wait_until(lambda: "hello from A" in message_bodies(bob, room_id), TIMEOUT_S,
               "alice's message on B")
    send_text(bob, room_id, "hello from B")
    wait_until(lambda: "hello from B" in message_bodies(alice, room_id), TIMEOUT_S,
               "bob's message on A")

    # m.typing: alice types; bob's sync shows it.
    status, _ = alice.request("PUT", f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}",
                              {"typing": True, "timeout": 30000})
    assert status == 200
    wait_until(lambda: any(alice.user_id in e["content"]["user_ids"]
                           for e in ephemeral(sync(bob, since_bob), room_id, "m.typing")),
               TIMEOUT_S, "alice typing on B")

    # m.receipt: bob reads alice's message; alice's sync shows the receipt.
    status, _ = bob.request("POST", f"/rooms/{quote(room_id)}/receipt/m.read/{quote(first)}",
                            {})
    assert status == 200
    wait_until(lambda: any(bob.user_id in e["content"].get(first, {}).get("m.read", {})
                           for e in ephemeral(sync(alice, since_alice), room_id, "m.receipt")),
               TIMEOUT_S, "bob's receipt on A")

    # m.presence: alice's status message reaches bob.
    status, _ = alice.request("PUT", f"/presence/{quote(alice.user_id)}/status",
                              {"presence": "online", "status_msg": f"busy {unique}"})
    assert status == 200
    wait_until(lambda: any(e["sender"] == alice.user_id
                           and e["content"].get("status_msg") == f"busy {unique}"
                           for e in sync(bob, since_bob).get("presence", {}).get("events", [])),
               TIMEOUT_S, "alice's presence on B")

    # m.direct_to_device: to one of bob's devices.
    status, _ = alice.request(
        "PUT", f"/sendToDevice/m.test.ping/{time.monotonic_ns()}",
        {"messages": {bob.user_id: {bob.device_id: {"ping": unique}}}})
    assert status == 200
    wait_until(lambda: [e for e in sync(bob, since_bob).get("to_device", {}).get("events", [])
                        if e["type"] == "m.test.ping" and e["sender"] == alice.user_id
                        and e["content"] == {"ping": unique}],
               TIMEOUT_S, "alice's to-device message on B")

    # m.device_list_update: alice's new device keys mark her changed for bob.
    keys = {"user_id": alice.user_id, "device_id": alice.device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
            "keys": {f"curve25519:{alice.device_id}": "key"}, "signatures": {}}
    status, _ = alice.request("POST", "/keys/upload", {"device_keys": keys})
    assert status == 200
    wait_until(lambda: alice.user_id in sync(bob, since_bob).get("device_lists", {})
               .get("changed", []), TIMEOUT_S, "alice's device list change on B")


def test_private_receipts_stay_home(fed_servers: list[FederatedServer], unique: str) -> None:
    a, b = fed_servers[0], fed_servers[2]
    alice, bob, room_id = shared_room(a, b, unique)
    first = send_text(alice, room_id, "read me")
    wait_until(lambda: "read me" in message_bodies(bob, room_id), TIMEOUT_S, "the message on B")
    since_alice = sync(alice)["next_batch"]
    status, _ = bob.request(
        "POST", f"/rooms/{quote(room_id)}/receipt/m.read.private/{quote(first)}", {})
    assert status == 200
    # A public receipt sent after it arrives; the private one must not be with it.
    status, _ = bob.request("POST", f"/rooms/{quote(room_id)}/receipt/m.read/{quote(first)}",
                            {})
    assert status == 200
    receipts = wait_until(lambda: ephemeral(sync(alice, since_alice), room_id, "m.receipt"),
                          TIMEOUT_S, "bob's public receipt on A")
    for receipt in receipts:
        assert "m.read.private" not in receipt["content"].get(first, {})


def test_a_stopped_server_gets_what_it_missed_in_order_once(
        make_fed_servers: Any, unique: str) -> None:
    a, b = make_fed_servers(2)
    alice, bob, room_id = shared_room(a, b, unique)
    send_text(alice, room_id, "before")
    wait_until(lambda: "before" in message_bodies(bob, room_id), TIMEOUT_S, "the first message")

    b.stop()
    sent = [f"missed {n}" for n in range(10)]
    for text in sent:
        send_text(alice, room_id, text)
    b.start()

    def caught_up() -> list[str] | None:
        bodies = message_bodies(bob, room_id)
        return bodies if sent[-1] in bodies else None

    bodies = wait_until(caught_up, 60.0, "B to catch up")
    assert bodies == ["before", *sent]


def test_a_crashed_sender_resumes_its_queue_after_restart(
        make_fed_servers: Any, unique: str) -> None:
    a, b = make_fed_servers(2)
    alice, bob, room_id = shared_room(a, b, unique)
    send_text(alice, room_id, "before")
    wait_until(lambda: "before" in message_bodies(bob, room_id), TIMEOUT_S, "the first message")

    b.stop()
    sent = [f"queued {n}" for n in range(5)]
    for text in sent:
        send_text(alice, room_id, text)
    a.restart(crash=True)  # SIGKILL: only what is on disk survives
    b.start()

    def caught_up() -> list[str] | None:
        bodies = message_bodies(bob, room_id)
        return bodies if sent[-1] in bodies else None

    assert wait_until(caught_up, 60.0, "B to get A's queue") == ["before", *sent]


def joined_members(account: Account, room_id: str) -> set[str]:
    status, answer = account.request("GET", f"/rooms/{quote(room_id)}/joined_members")
    return set(answer.get("joined", {})) if status == 200 else set()


def test_the_resident_server_relays_a_newcomers_join(
        fed_servers: list[FederatedServer], synapse: SynapsePeer, unique: str) -> None:
    a, b = fed_servers[0], fed_servers[1]
    alice, bob, room_id = shared_room(a, b, unique)
    sam = synapse.register(f"sam{unique}")
    status, answer = sam.join(room_id, via=[a.server_name])  # Synapse asks A only
    assert status == 200, (answer, synapse.log_tail())
    # Synapse was not in the room to tell B of its join: A, which answered its
    # send_join, does.
    wait_until(lambda: sam.user_id in joined_members(bob, room_id), TIMEOUT_S,
               "Synapse's join on B")
    assert sam.user_id in joined_members(alice, room_id)
