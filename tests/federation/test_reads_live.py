"""Federation reads and queries between real servers on loopback.

Server A hosts a room; Bob of server B joined it over federation. The test
then speaks as server B: a real `FederationClient` holding B's own signing
key (A fetches that key from B over HTTPS to check each X-Matrix signature)
drives `federation.fetch`, so both the serving side on A and the outbound
helpers are exercised end to end. Server C has nobody in the room.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from twisted.internet import reactor

from federation import fetch
from federation.protocol.hashing import compute_event_id, content_hash_matches
from federation.protocol.request_auth import sign_request
from federation.protocol.room_versions import ROOM_V11
from federation.transport.backoff import Backoff
from federation.transport.client import FederationClient, HttpResponseError
from federation.transport.discovery import ServerResolver
from federation.transport.tls import FederationTlsPolicy
from homeserver.config import load
from tests.federation.accounts import Account, quote
from tests.federation.cluster import FederatedServer
from tests.federation.reactor_thread import call_in_reactor, run_in_reactor
from tests.harness import http_json

V1 = "/_matrix/federation/v1"


class NoDelegation:
    """Our test servers are IP literals with ports: discovery never delegates."""

    async def delegated_server(self, host: str) -> str | None:
        raise AssertionError("an IP literal needs no .well-known")

    async def lookup(self, name: str) -> list[tuple[str, int]]:
        raise AssertionError("an IP literal needs no SRV lookup")


def client_as(server: FederatedServer) -> FederationClient:
    """A federation client signing with `server`'s own key."""
    key = load(server.config_path).signing_key
    return call_in_reactor(lambda: FederationClient(
        reactor, key, ServerResolver(NoDelegation(), NoDelegation()),
        FederationTlsPolicy(server.ca.cert_path, True), Backoff(0.1, 0.1)))


@dataclass
class World:
    a: FederatedServer
    alice: Account
    bob: Account
    room_id: str
    alias: str
    messages: list[str]
    as_b: FederationClient
    as_c: FederationClient

    def call(self, work: Callable[[], Awaitable[Any]]) -> Any:
        return run_in_reactor(work)

    def refused(self, work: Callable[[], Awaitable[Any]]) -> HttpResponseError:
        with pytest.raises(HttpResponseError) as info:
            run_in_reactor(work)
        return info.value


def send_text(account: Account, room_id: str, text: str, txn: str) -> str:
    status, answer = account.request(
        "PUT", f"/rooms/{quote(room_id)}/send/m.room.message/{txn}",
        {"msgtype": "m.text", "body": text})
    assert status == 200, answer
    return str(answer["event_id"])


@pytest.fixture(scope="module")
def world(fed_servers: list[FederatedServer]) -> World:
    a, b, c = fed_servers[:3]
    alice = a.register("readsalice")
    bob = b.register("readsbob")
    status, answer = alice.request("POST", "/createRoom", {
        "preset": "public_chat", "room_version": "11", "room_alias_name": "readshall",
        "visibility": "public", "name": "Reads hall"})
    assert status == 200, answer
    room_id, alias = answer["room_id"], f"#readshall:{a.server_name}"
    status, answer = bob.join(alias)
    assert status == 200, answer
    messages = [send_text(alice, room_id, f"m{i}", f"reads{i}") for i in range(5)]
    return World(a, alice, bob, room_id, alias, messages, client_as(b), client_as(c))


def event_id_of(pdu: dict[str, Any]) -> str:
    return compute_event_id(pdu, ROOM_V11)


# Reading events -------------------------------------------------------------------------


def test_event_is_the_signed_pdu_as_stored(world: World) -> None:
    dest, last = world.a.server_name, world.messages[-1]
    pdu = world.call(lambda: fetch.fetch_event(world.as_b, dest, last))
    assert event_id_of(pdu) == last and content_hash_matches(pdu)
    assert pdu["content"]["body"] == "m4" and dest in pdu["signatures"]


def test_state_ids_state_and_event_auth_agree(world: World) -> None:
    dest, last = world.a.server_name, world.messages[-1]
    pdu_ids, chain_ids = world.call(
        lambda: fetch.fetch_state_ids(world.as_b, dest, world.room_id, last))
    pdus, chain = world.call(lambda: fetch.fetch_state(world.as_b, dest, world.room_id, last))
    assert {event_id_of(p) for p in pdus} == set(pdu_ids)
    assert {event_id_of(p) for p in chain} == set(chain_ids)
    members = {p["state_key"] for p in pdus if p["type"] == "m.room.member"}
    assert members == {world.alice.user_id, world.bob.user_id}
    auth = world.call(lambda: fetch.fetch_event_auth(world.as_b, dest, world.room_id, last))
    auth_types = {(p["type"], p.get("state_key")) for p in auth}
    assert {("m.room.create", ""), ("m.room.power_levels", ""),
            ("m.room.member", world.alice.user_id)} <= auth_types
    assert {event_id_of(p) for p in auth} <= set(pdu_ids) | set(chain_ids)


def test_backfill_and_missing_events(world: World) -> None:
    dest, ids = world.a.server_name, world.messages
    pdus = world.call(lambda: fetch.fetch_backfill(world.as_b, dest, world.room_id,
                                                   [ids[-1]], 3))
    assert [p["content"]["body"] for p in pdus] == ["m4", "m3", "m2"]
    missing = world.call(lambda: fetch.fetch_missing_events(
        world.as_b, dest, world.room_id, [ids[0]], [ids[4]], 10, 0))
    assert [event_id_of(p) for p in missing] == ids[1:4]


def test_a_server_without_members_is_refused(world: World) -> None:
    dest, last = world.a.server_name, world.messages[-1]
    for work in (lambda: fetch.fetch_event(world.as_c, dest, last),
                 lambda: fetch.fetch_state_ids(world.as_c, dest, world.room_id, last),
                 lambda: fetch.fetch_backfill(world.as_c, dest, world.room_id, [last], 5)):
        error = world.refused(work)
        assert (error.status, error.errcode) == (403, "M_FORBIDDEN")


def test_unknown_events_and_rooms_are_not_found(world: World) -> None:
    dest = world.a.server_name
    error = world.refused(lambda: fetch.fetch_event(world.as_b, dest, "$" + "A" * 43))
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")
    error = world.refused(lambda: fetch.fetch_state_ids(
        world.as_b, dest, f"!nowhere:{dest}", world.messages[0]))
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")


def test_server_acl_shuts_a_member_server_out(fed_servers: list[FederatedServer]) -> None:
    a, b = fed_servers[0], fed_servers[1]
    alice, bob = a.register("aclalice"), b.register("aclbob")
    status, answer = alice.request("POST", "/createRoom", {"preset": "public_chat"})
    room_id = answer["room_id"]
    assert bob.join(room_id, via=[a.server_name])[0] == 200
    message = send_text(alice, room_id, "soon hidden", "acl1")
    as_b = client_as(b)
    assert run_in_reactor(lambda: fetch.fetch_event(as_b, a.server_name, message))
    status, _ = alice.request("PUT", f"/rooms/{quote(room_id)}/state/m.room.server_acl/",
                              {"allow": ["*"], "deny": [b.server_name.split(":")[0]]})
    assert status == 200
    with pytest.raises(HttpResponseError) as info:
        run_in_reactor(lambda: fetch.fetch_event(as_b, a.server_name, message))
    assert (info.value.status, info.value.errcode) == (403, "M_FORBIDDEN")


# Malformed requests get the spec's 4xx, never a 5xx ---------------------------------------


@pytest.mark.parametrize("method, path, query, body, status, errcode", [
    ("GET", "/event/not-an-event-id", None, None, 400, "M_INVALID_PARAM"),
    ("GET", "/state_ids/{room}", None, None, 400, "M_MISSING_PARAM"),
    ("GET", "/state_ids/{room}", {"event_id": "nope"}, None, 400, "M_INVALID_PARAM"),
    ("GET", "/state/not-a-room", {"event_id": "$x"}, None, 400, "M_INVALID_PARAM"),
    ("GET", "/event_auth/{room}/bad", None, None, 400, "M_INVALID_PARAM"),
    ("GET", "/backfill/{room}", {"limit": "5"}, None, 400, "M_MISSING_PARAM"),
    ("GET", "/backfill/{room}", {"v": "{last}"}, None, 400, "M_MISSING_PARAM"),
    ("GET", "/backfill/{room}", {"v": "{last}", "limit": "ten"}, None, 400, "M_INVALID_PARAM"),
    ("POST", "/get_missing_events/{room}", None, {"latest_events": []}, 400, "M_MISSING_PARAM"),
    ("POST", "/get_missing_events/{room}", None,
     {"earliest_events": "x", "latest_events": []}, 400, "M_INVALID_PARAM"),
    ("POST", "/get_missing_events/{room}", None,
     {"earliest_events": [], "latest_events": [], "limit": "10"}, 400, "M_INVALID_PARAM"),
    ("POST", "/get_missing_events/{room}", None,
     {"earliest_events": [], "latest_events": [5]}, 400, "M_INVALID_PARAM"),
    ("GET", "/query/directory", None, None, 400, "M_MISSING_PARAM"),
    ("GET", "/query/directory", {"room_alias": "no-alias"}, None, 400, "M_INVALID_PARAM"),
    ("GET", "/query/profile", None, None, 400, "M_MISSING_PARAM"),
    ("GET", "/query/profile", {"user_id": "@someone:elsewhere.example"}, None, 400,
     "M_INVALID_PARAM"),
    ("GET", "/user/devices/@someone:elsewhere.example", None, None, 400, "M_INVALID_PARAM"),
    ("POST", "/user/keys/query", None, {"device_keys": []}, 400, "M_BAD_JSON"),
    ("POST", "/user/keys/claim", None, {}, 400, "M_MISSING_PARAM"),
    ("GET", "/publicRooms", {"limit": "many"}, None, 400, "M_INVALID_PARAM"),
    ("POST", "/publicRooms", None, {"since": "garbage"}, 400, "M_INVALID_PARAM"),
    ("GET", "/hierarchy/not-a-room", None, None, 400, "M_INVALID_PARAM"),
    ("GET", "/hierarchy/!unknown:127.0.0.1", None, None, 404, "M_NOT_FOUND"),
])
def test_malformed_requests(world: World, method: str, path: str, query: Any, body: Any,
                            status: int, errcode: str) -> None:
    fill = {"{room}": quote(world.room_id), "{last}": world.messages[-1]}
    for key, value in fill.items():
        path = path.replace(key, value)
    if query:
        query = {k: v.replace("{last}", world.messages[-1]) for k, v in query.items()}
    dest = world.a.server_name

    async def request() -> Any:
        if method == "GET":
            return await world.as_b.get_json(dest, V1 + path, query)
        return await world.as_b.post_json(dest, V1 + path, body, query)

    error = world.refused(request)
    assert (error.status, error.errcode) == (status, errcode), error.body


def test_huge_limits_are_capped(world: World) -> None:
    dest, last = world.a.server_name, world.messages[-1]
    pdus = world.call(lambda: fetch.fetch_backfill(world.as_b, dest, world.room_id,
                                                   [last], 10**15))
    assert 5 <= len(pdus) <= 100
    missing = world.call(lambda: fetch.fetch_missing_events(
        world.as_b, dest, world.room_id, [], [last], 10**15, -(10**15)))
    assert 4 <= len(missing) <= 100


# Queries ----------------------------------------------------------------------------------


def test_directory_names_the_room_with_our_server_first(world: World) -> None:
    dest = world.a.server_name
    answer = world.call(lambda: fetch.query_directory(world.as_b, dest, world.alias))
    assert answer.room_id == world.room_id and answer.servers[0] == dest
    error = world.refused(lambda: fetch.query_directory(world.as_b, dest,
                                                        f"#nothing:{dest}"))
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")


def test_directory_lists_every_server_with_joined_members(world: World) -> None:
    dest = world.a.server_name
    answer = world.call(lambda: fetch.query_directory(world.as_b, dest, world.alias))
    assert answer.servers == [dest, world.bob.user_id.split(":", 1)[1]]


def test_profile_and_devices(world: World) -> None:
    dest = world.a.server_name
    alice = world.alice.user_id
    status, _ = world.alice.request("PUT", f"/profile/{quote(alice)}/displayname",
                                    {"displayname": "Alice R."})
    assert status == 200
    assert world.call(lambda: fetch.query_profile(world.as_b, dest, alice, "displayname")) \
        == {"displayname": "Alice R."}
    error = world.refused(lambda: fetch.query_profile(world.as_b, dest, f"@ghost:{dest}"))
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")

    devices = world.call(lambda: fetch.query_user_devices(world.as_b, dest, alice))
    assert [d["device_id"] for d in devices["devices"]] == [world.alice.device_id]


def device_keys(account: Account) -> dict[str, Any]:
    user, device = account.user_id, account.device_id
    return {"user_id": user, "device_id": device, "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
            "keys": {f"curve25519:{device}": "c", f"ed25519:{device}": "e"},
            "signatures": {user: {f"ed25519:{device}": "s"}}}


def test_keys_query_and_claim(world: World) -> None:
    dest, alice, device = world.a.server_name, world.alice.user_id, world.alice.device_id
    keys = device_keys(world.alice)
    status, answer = world.alice.request("POST", "/keys/upload", {
        "device_keys": keys, "one_time_keys": {"signed_curve25519:K1": {
            "key": "k", "signatures": {alice: {f"ed25519:{device}": "s"}}}}})
    assert status == 200, answer
    queried = world.call(lambda: world.as_b.post_json(
        dest, f"{V1}/user/keys/query", {"device_keys": {alice: []}}))
    assert queried["device_keys"][alice][device]["keys"] == keys["keys"]
    claimed = world.call(lambda: world.as_b.post_json(
        dest, f"{V1}/user/keys/claim", {"one_time_keys": {alice: {device: "signed_curve25519"}}}))
    assert list(claimed["one_time_keys"][alice][device]) == ["signed_curve25519:K1"]


def test_public_rooms_get_and_post(world: World) -> None:
    dest = world.a.server_name
    listed = world.call(lambda: world.as_b.get_json(dest, f"{V1}/publicRooms", {"limit": "500"}))
    entry = next(r for r in listed["chunk"] if r["room_id"] == world.room_id)
    assert entry["name"] == "Reads hall" and entry["num_joined_members"] == 2
    searched = world.call(lambda: world.as_b.post_json(
        dest, f"{V1}/publicRooms", {"filter": {"generic_search_term": "reads hall"}}))
    assert [r["room_id"] for r in searched["chunk"]] == [world.room_id]


def test_hierarchy_over_federation_and_for_clients(world: World) -> None:
    dest, alice = world.a.server_name, world.alice
    status, answer = alice.request("POST", "/createRoom", {
        "preset": "public_chat", "name": "Reads guild", "creation_content": {"type": "m.space"}})
    space = answer["room_id"]
    status, _ = alice.request("PUT", f"/rooms/{quote(space)}/state/m.space.child/"
                              f"{quote(world.room_id)}", {"via": [dest]})
    assert status == 200
    answer = world.call(lambda: world.as_b.get_json(dest, f"{V1}/hierarchy/{quote(space)}"))
    assert answer["room"]["room_type"] == "m.space"
    assert [c["state_key"] for c in answer["room"]["children_state"]] == [world.room_id]
    assert [c["room_id"] for c in answer["children"]] == [world.room_id]
    assert answer["inaccessible_children"] == []
    url = f"{world.a.base_url}/_matrix/client/v1/rooms/{quote(space)}/hierarchy"
    status, rooms = http_json("GET", url, token=alice.access_token)
    assert status == 200, rooms
    assert [r["room_id"] for r in rooms["rooms"]] == [space, world.room_id]


def test_unsigned_requests_are_refused(world: World) -> None:
    status, answer = http_json(
        "GET", f"{world.a.federation_url}{V1}/event/{quote(world.messages[0])}",
        context=world.a.ca.client_context())
    assert status == 401, answer


def test_backfill_reaches_back_to_the_room_creation(world: World) -> None:
    dest = world.a.server_name
    pdus = world.call(lambda: fetch.fetch_backfill(world.as_b, dest, world.room_id,
                                                   [world.messages[0]], 100))
    types = [p["type"] for p in pdus]
    assert types[0] == "m.room.message" and "m.room.create" in types


# The other way: our users' questions answered by another server -----------------------


def test_our_users_read_another_servers_profiles_directory_and_keys(world: World) -> None:
    a, alice, bob = world.a, world.alice, world.bob
    status, _ = alice.request("PUT", f"/profile/{quote(alice.user_id)}/displayname",
                              {"displayname": "Alice of A"})
    assert status == 200
    status, profile = bob.request("GET", f"/profile/{quote(alice.user_id)}")
    assert (status, profile) == (200, {"displayname": "Alice of A"})
    status, field = bob.request("GET", f"/profile/{quote(alice.user_id)}/displayname")
    assert (status, field) == (200, {"displayname": "Alice of A"})
    status, answer = bob.request("GET", f"/profile/{quote(f'@ghost:{a.server_name}')}")
    assert (status, answer["errcode"]) == (404, "M_NOT_FOUND")

    status, listed = bob.request("GET", "/publicRooms",
                                 query={"server": a.server_name, "limit": "500"})
    assert status == 200, listed
    assert world.room_id in [r["room_id"] for r in listed["chunk"]]
    status, searched = bob.request("POST", "/publicRooms",
                                   {"filter": {"generic_search_term": "Reads hall"}},
                                   query={"server": a.server_name})
    assert status == 200 and [r["room_id"] for r in searched["chunk"]] == [world.room_id]

    device = alice.device_id
    status, answer = alice.request("POST", "/keys/upload", {
        "device_keys": device_keys(alice), "one_time_keys": {
            "signed_curve25519:K2": {"key": "k2", "signatures": {
                alice.user_id: {f"ed25519:{device}": "s"}}}}})
    assert status == 200, answer
    status, queried = bob.request("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    assert status == 200, queried
    assert queried["failures"] == {}
    assert device in queried["device_keys"][alice.user_id]
    status, claimed = bob.request("POST", "/keys/claim", {
        "one_time_keys": {alice.user_id: {device: "signed_curve25519"}}})
    assert status == 200 and claimed["failures"] == {}, claimed
    assert list(claimed["one_time_keys"][alice.user_id][device]) == ["signed_curve25519:K2"]


def test_an_unreachable_server_is_a_failure_not_an_error(world: World) -> None:
    nowhere = "127.0.0.1:9"  # the discard port: nothing federates there
    status, queried = world.bob.request("POST", "/keys/query",
                                        {"device_keys": {f"@x:{nowhere}": []}})
    assert status == 200, queried
    assert queried["device_keys"] == {} and queried["failures"][nowhere]["status"] == 502
    status, answer = world.bob.request("GET", f"/profile/{quote(f'@x:{nowhere}')}")
    assert (status, answer["errcode"]) == (502, "M_UNKNOWN")
    status, answer = world.bob.request("GET", "/publicRooms", query={"server": nowhere})
    assert (status, answer["errcode"]) == (502, "M_UNKNOWN")
    status, answer = world.bob.request("GET", "/publicRooms", query={"server": "bad name!"})
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")


def test_a_space_on_another_server_is_browsed_through_its_hierarchy(world: World) -> None:
    a, alice, bob = world.a, world.alice, world.bob

    def room(name: str, preset: str = "public_chat", **body: Any) -> str:
        status, answer = alice.request("POST", "/createRoom", {
            "preset": preset, "name": name, "room_version": "11", **body})
        assert status == 200, answer
        return str(answer["room_id"])

    def child(parent: str, room_id: str, order: str) -> None:
        status, _ = alice.request(
            "PUT", f"/rooms/{quote(parent)}/state/m.space.child/{quote(room_id)}",
            {"via": [a.server_name], "order": order})
        assert status == 200

    space = room("Space", creation_content={"type": "m.space"})
    sub = room("sub", creation_content={"type": "m.space"})
    child(space, room("c1"), "a")
    child(space, room("staff", preset="private_chat"), "b")
    child(space, sub, "c")
    child(sub, room("c3"), "a")
    assert bob.join(space, via=[a.server_name])[0] == 200

    url = f"{bob.base_url}/_matrix/client/v1/rooms/{quote(space)}/hierarchy"
    status, answer = http_json("GET", url, token=bob.access_token)
    assert status == 200, answer
    assert [r.get("name") for r in answer["rooms"]] == ["Space", "c1", "sub", "c3"]
    assert [c["state_key"] for c in answer["rooms"][2]["children_state"]] == \
        [answer["rooms"][3]["room_id"]]
    status, page = http_json("GET", url + "?limit=2", token=bob.access_token)
    assert [r.get("name") for r in page["rooms"]] == ["Space", "c1"]
    status, rest = http_json("GET", f"{url}?limit=5&from={page['next_batch']}",
                             token=bob.access_token)
    assert [r.get("name") for r in rest["rooms"]] == ["sub", "c3"]

    # A space Bob's server does not hold: asked of the server its room ID names
    # (v11 room IDs name one; v12 IDs name none, so those need joining first).
    status, answer = http_json(
        "GET", f"{bob.base_url}/_matrix/client/v1/rooms/{quote(sub)}/hierarchy",
        token=bob.access_token)
    assert status == 200, answer
    assert [r.get("name") for r in answer["rooms"]] == ["sub", "c3"]
    hidden = room("hidden", preset="private_chat", creation_content={"type": "m.space"})
    status, answer = http_json(
        "GET", f"{bob.base_url}/_matrix/client/v1/rooms/{quote(hidden)}/hierarchy",
        token=bob.access_token)
    assert (status, answer["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b'{"a": 1.5}'])
def test_bodies_that_are_not_json_objects_are_refused(world: World, raw: bytes,
                                                      fed_servers: list[FederatedServer]) -> None:
    a, b = world.a, fed_servers[1]
    uri = f"{V1}/get_missing_events/{quote(world.room_id)}"
    header = sign_request(load(b.config_path).signing_key, "POST", uri, a.server_name)
    status, answer = http_json("POST", a.federation_url + uri, raw=raw,
                               headers={"Authorization": header},
                               context=a.ca.client_context())
    assert 400 <= status < 500, answer
