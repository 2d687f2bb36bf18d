"""An unmodified Synapse asks our server about our users and rooms, on behalf
of its own users: profiles, the public room list, device keys, one-time keys
and a space's rooms. What is checked is what the Synapse user's client sees."""

from __future__ import annotations

from typing import Any

from tests.federation.accounts import Account, quote
from tests.federation.cluster import FederatedServer
from tests.federation.synapse import SynapsePeer
from tests.federation.test_rooms import create_room, joined_members, wait_for
from tests.harness import http_json


def device_keys(account: Account) -> dict[str, Any]:
    user, device = account.user_id, account.device_id
    return {"user_id": user, "device_id": device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"curve25519:{device}": "Y3VydmU", f"ed25519:{device}": "ZWQyNTUxOQ"},
            "signatures": {user: {f"ed25519:{device}": "c2lnbmF0dXJl"}}}


def test_synapse_reads_our_profiles_and_public_rooms(
        fed_servers: list[FederatedServer], synapse: SynapsePeer, unique: str) -> None:
    ours = fed_servers[0]
    alice = ours.register(f"alice{unique}")
    sam = synapse.register(f"sam{unique}")
    status, _ = alice.request("PUT", f"/profile/{quote(alice.user_id)}/displayname",
                              {"displayname": "Alice of Guildhall"})
    assert status == 200
    status, profile = sam.request("GET", f"/profile/{quote(alice.user_id)}")
    assert status == 200, (profile, synapse.log_tail())
    assert profile.get("displayname") == "Alice of Guildhall"
    status, missing = sam.request("GET", f"/profile/{quote(f'@ghost{unique}:{ours.server_name}')}")
    assert status == 404, missing

    room_id = create_room(alice, name=f"Listed {unique}", visibility="public")
    status, listed = sam.request("GET", "/publicRooms",
                                 query={"server": ours.server_name, "limit": "500"})
    assert status == 200, (listed, synapse.log_tail())
    assert room_id in [r["room_id"] for r in listed["chunk"]]
    status, searched = sam.request("POST", "/publicRooms", {
        "filter": {"generic_search_term": f"Listed {unique}"}},
        query={"server": ours.server_name})
    assert status == 200, (searched, synapse.log_tail())
    assert [r["room_id"] for r in searched["chunk"]] == [room_id]


def test_synapse_queries_and_claims_our_users_keys(
        fed_servers: list[FederatedServer], synapse: SynapsePeer, unique: str) -> None:
    ours = fed_servers[0]
    alice = ours.register(f"alice{unique}")
    sam = synapse.register(f"sam{unique}")
    keys = device_keys(alice)
    status, answer = alice.request("POST", "/keys/upload", {
        "device_keys": keys,
        "one_time_keys": {"signed_curve25519:AAAAHg": {
            "key": "b3RrZXk", "signatures": {alice.user_id: {
                f"ed25519:{alice.device_id}": "c2ln"}}}}})
    assert status == 200, answer

    status, queried = sam.request("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    assert status == 200, (queried, synapse.log_tail())
    assert queried["device_keys"][alice.user_id][alice.device_id]["keys"] == keys["keys"]
    status, claimed = sam.request("POST", "/keys/claim", {
        "one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
    assert status == 200, (claimed, synapse.log_tail())
    assert list(claimed["one_time_keys"][alice.user_id][alice.device_id]) == \
        ["signed_curve25519:AAAAHg"]


def test_synapse_sees_our_space_hierarchy(
        fed_servers: list[FederatedServer], synapse: SynapsePeer, unique: str) -> None:
    ours = fed_servers[0]
    alice = ours.register(f"alice{unique}")
    sam = synapse.register(f"sam{unique}")
    space = create_room(alice, name="Guild", room_version="11",
                        room_alias_name=f"guild{unique}", creation_content={"type": "m.space"})
    channel = create_room(alice, name="general", room_version="11")
    status, _ = alice.request("PUT", f"/rooms/{quote(space)}/state/m.space.child/"
                              f"{quote(channel)}", {"via": [ours.server_name]})
    assert status == 200
    status, answer = sam.join(f"#guild{unique}:{ours.server_name}")
    assert status == 200, (answer, synapse.log_tail())
    wait_for(lambda: sam.user_id in joined_members(alice, space), what="sam in the space")

    url = f"{synapse.base_url}/_matrix/client/v1/rooms/{quote(space)}/hierarchy"

    def rooms() -> list[str] | None:
        status, answer = http_json("GET", url, token=sam.access_token)
        names = [r.get("name") for r in answer.get("rooms", [])] if status == 200 else []
        return names if "general" in names else None

    assert wait_for(rooms, what="the channel in Synapse's hierarchy") == ["Guild", "general"]


def test_our_users_read_synapse_profiles_directory_and_keys(
        fed_servers: list[FederatedServer], synapse: SynapsePeer, unique: str) -> None:
    bob = fed_servers[1].register(f"bob{unique}")
    sam = synapse.register(f"sam{unique}")
    status, _ = sam.request("PUT", f"/profile/{quote(sam.user_id)}/displayname",
                            {"displayname": "Sam of Synapse"})
    assert status == 200
    status, profile = bob.request("GET", f"/profile/{quote(sam.user_id)}")
    assert status == 200, profile
    assert profile["displayname"] == "Sam of Synapse"

    status, answer = sam.request("POST", "/createRoom", {
        "preset": "public_chat", "visibility": "public", "name": f"Synapse lounge {unique}"})
    assert status == 200, answer
    room_id = answer["room_id"]
    status, searched = bob.request("POST", "/publicRooms", {
        "filter": {"generic_search_term": f"Synapse lounge {unique}"}},
        query={"server": synapse.server_name})
    assert status == 200, searched
    assert [r["room_id"] for r in searched["chunk"]] == [room_id]
    status, listed = bob.request("GET", "/publicRooms", query={"server": synapse.server_name})
    assert status == 200 and room_id in [r["room_id"] for r in listed["chunk"]], listed

    keys = device_keys(sam)
    status, answer = sam.request("POST", "/keys/upload", {
        "device_keys": keys, "one_time_keys": {"signed_curve25519:AAAAHQ": {
            "key": "b3RrZXk", "signatures": {sam.user_id: {f"ed25519:{sam.device_id}": "c2ln"}}}}})
    assert status == 200, answer
    status, queried = bob.request("POST", "/keys/query", {"device_keys": {sam.user_id: []}})
    assert status == 200 and queried["failures"] == {}, queried
    assert queried["device_keys"][sam.user_id][sam.device_id]["keys"] == keys["keys"]
    status, claimed = bob.request("POST", "/keys/claim", {
        "one_time_keys": {sam.user_id: {sam.device_id: "signed_curve25519"}}})
    assert status == 200 and claimed["failures"] == {}, claimed
    assert list(claimed["one_time_keys"][sam.user_id][sam.device_id]) == \
        ["signed_curve25519:AAAAHQ"]
