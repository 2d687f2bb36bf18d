"""EDUs between our server and an unmodified Synapse: what our users do shows in
the Synapse user's /sync (typing, receipts, presence, to-device messages), and
Synapse's receipts and to-device messages show in ours. (Synapse's typing on
ours is checked in test_synapse_interop.py.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.federation.accounts import Account, quote
from tests.federation.cluster import FederatedServer
from tests.federation.synapse import SynapsePeer
from tests.federation.test_sending import ephemeral, message_bodies, send_text, sync
from tests.federation.waiting import wait_until

TIMEOUT_S = 45.0


def room_with_synapse_user(ours: FederatedServer, synapse: SynapsePeer, unique: str
                           ) -> tuple[Account, Account, str]:
    """A room Synapse creates and our user joins (a room Synapse joined over
    federation would be "partial state" there, left out of its users' /sync)."""
    alice = ours.register(f"alice{unique}")
    sam = synapse.register(f"sam{unique}")
    status, answer = sam.request("POST", "/createRoom", {
        "preset": "public_chat", "room_alias_name": f"edus{unique}"})
    assert status == 200, answer
    room_id = str(answer["room_id"])
    status, answer = alice.join(f"#edus{unique}:{synapse.server_name}")
    assert status == 200, answer
    return alice, sam, room_id


class SyncStream:
    """Incremental /syncs, each from the last one's `next_batch` (Synapse answers a
    repeated `since` from a cache), keeping every response."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.since = sync(account)["next_batch"]

    def find(self, pick: Callable[[dict[str, Any]], list[Any]]) -> list[Any]:
        body = sync(self.account, self.since)
        self.since = body["next_batch"]
        return pick(body)

    def wait_for(self, pick: Callable[[dict[str, Any]], list[Any]], what: str) -> list[Any]:
        return wait_until(lambda: self.find(pick), TIMEOUT_S, what)


def to_device_events(body: dict[str, Any], event_type: str) -> list[dict[str, Any]]:
    return [e for e in body.get("to_device", {}).get("events", []) if e["type"] == event_type]


def test_our_edus_reach_synapse_and_synapses_reach_us(
        fed_servers: list[FederatedServer], synapse: SynapsePeer, unique: str) -> None:
    alice, sam, room_id = room_with_synapse_user(fed_servers[0], synapse, unique)
    first = send_text(alice, room_id, "hello sam")
    wait_until(lambda: "hello sam" in message_bodies(sam, room_id), TIMEOUT_S,
               "our message on Synapse")
    sam_sees, alice_sees = SyncStream(sam), SyncStream(alice)

    status, _ = alice.request("PUT", f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}",
                              {"typing": True, "timeout": 30000})
    assert status == 200
    sam_sees.wait_for(lambda body: [e for e in ephemeral(body, room_id, "m.typing")
                                    if alice.user_id in e["content"]["user_ids"]],
                      "our typing on Synapse")

    reply = send_text(sam, room_id, "hello alice")
    wait_until(lambda: "hello alice" in message_bodies(alice, room_id), TIMEOUT_S,
               "Synapse's message on ours")
    status, _ = alice.request("POST", f"/rooms/{quote(room_id)}/receipt/m.read/{quote(reply)}",
                              {})
    assert status == 200
    sam_sees.wait_for(lambda body: [e for e in ephemeral(body, room_id, "m.receipt")
                                    if alice.user_id in e["content"].get(reply, {})
                                    .get("m.read", {})], "our receipt on Synapse")
    status, _ = sam.request("POST", f"/rooms/{quote(room_id)}/receipt/m.read/{quote(first)}",
                            {})
    assert status == 200
    alice_sees.wait_for(lambda body: [e for e in ephemeral(body, room_id, "m.receipt")
                                      if sam.user_id in e["content"].get(first, {})
                                      .get("m.read", {})], "Synapse's receipt on ours")

    status, _ = alice.request(
        "PUT", f"/sendToDevice/m.test.ping/{time.monotonic_ns()}",
        {"messages": {sam.user_id: {sam.device_id: {"ping": unique}}}})
    assert status == 200
    sam_sees.wait_for(lambda body: [e for e in to_device_events(body, "m.test.ping")
                                    if e["sender"] == alice.user_id
                                    and e["content"] == {"ping": unique}],
                      "our to-device message on Synapse")
    status, _ = sam.request(
        "PUT", f"/sendToDevice/m.test.pong/{time.monotonic_ns()}",
        {"messages": {alice.user_id: {"*": {"pong": unique}}}})
    assert status == 200
    alice_sees.wait_for(lambda body: [e for e in to_device_events(body, "m.test.pong")
                                      if e["sender"] == sam.user_id
                                      and e["content"] == {"pong": unique}],
                        "Synapse's to-device message on ours")

    status, _ = alice.request("PUT", f"/presence/{quote(alice.user_id)}/status",
                              {"presence": "online", "status_msg": f"here {unique}"})
    assert status == 200
    sam_sees.wait_for(lambda body: [e for e in body.get("presence", {}).get("events", [])
                                    if e["sender"] == alice.user_id
                                    and e["content"].get("status_msg") == f"here {unique}"],
                      "our presence on Synapse")

    status, _ = sam.request("PUT", f"/presence/{quote(sam.user_id)}/status",
                            {"presence": "online", "status_msg": f"there {unique}"})
    assert status == 200
    alice_sees.wait_for(lambda body: [e for e in body.get("presence", {}).get("events", [])
                                      if e["sender"] == sam.user_id
                                      and e["content"].get("status_msg") == f"there {unique}"],
                        "Synapse's presence on ours")

    # Device-list updates: both users upload device keys; each server marks the
    # other's user changed for its own user.
    for account, sees, other in ((alice, sam_sees, "ours"), (sam, alice_sees, "Synapse's")):
        keys = {"user_id": account.user_id, "device_id": account.device_id,
                "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
                "keys": {f"curve25519:{account.device_id}": "key"}, "signatures": {}}
        status, _ = account.request("POST", "/keys/upload", {"device_keys": keys})
        assert status == 200
        sees.wait_for(lambda body, user=account.user_id: [
            u for u in body.get("device_lists", {}).get("changed", []) if u == user],
            f"{other} device-list change seen across")
