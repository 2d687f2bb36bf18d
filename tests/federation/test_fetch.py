"""federation.fetch: the requests it makes, and what it does with good and
malformed answers. The peer is a scripted stand-in for a remote server (the
transport has its own tests); the real round trip is in test_reads_live.py."""

from __future__ import annotations

from typing import Any

import pytest

from federation import fetch
from federation.fetch import DirectoryAnswer, InvalidResponseError
from federation.protocol.errors import MatrixError
from federation.remote_queries import RemoteQueries
from federation.transport.errors import DestinationUnreachable, HttpResponseError
from tests.synchronous import done

DEST = "remote.example:8448"
PDU = {"type": "m.room.message", "content": {}}


class ScriptedPeer:
    """Answers every request with `answer`, recording what was asked."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str, str, Any, Any]] = []

    async def get_json(self, destination: str, path: str, query: Any = None, *,
                       timeout_s: float = 60.0) -> Any:
        self.calls.append(("GET", destination, path, query, None))
        return self.answer

    async def post_json(self, destination: str, path: str, body: Any, query: Any = None, *,
                        timeout_s: float = 60.0) -> Any:
        self.calls.append(("POST", destination, path, query, body))
        return self.answer


def test_fetch_event_encodes_the_id_and_returns_the_pdu() -> None:
    peer = ScriptedPeer({"origin": DEST, "origin_server_ts": 1, "pdus": [PDU]})
    assert done(fetch.fetch_event(peer, DEST, "$a/b+c")) == PDU
    assert peer.calls == [("GET", DEST, "/_matrix/federation/v1/event/%24a%2Fb%2Bc", None, None)]


def test_state_ids_and_state() -> None:
    peer = ScriptedPeer({"pdu_ids": ["$1"], "auth_chain_ids": ["$0"]})
    assert done(fetch.fetch_state_ids(peer, DEST, "!r:x", "$e")) == (["$1"], ["$0"])
    assert peer.calls[0][2:4] == ("/_matrix/federation/v1/state_ids/%21r%3Ax", {"event_id": "$e"})
    peer = ScriptedPeer({"pdus": [PDU], "auth_chain": []})
    assert done(fetch.fetch_state(peer, DEST, "!r:x", "$e")) == ([PDU], [])


def test_event_auth_backfill_and_missing_events() -> None:
    peer = ScriptedPeer({"auth_chain": [PDU]})
    assert done(fetch.fetch_event_auth(peer, DEST, "!r:x", "$e")) == [PDU]
    assert peer.calls[0][2] == "/_matrix/federation/v1/event_auth/%21r%3Ax/%24e"
    peer = ScriptedPeer({"origin": DEST, "origin_server_ts": 1, "pdus": [PDU, PDU]})
    assert done(fetch.fetch_backfill(peer, DEST, "!r:x", ["$a", "$b"], 5)) == [PDU, PDU]
    assert peer.calls[0][3] == {"v": ["$a", "$b"], "limit": "5"}
    peer = ScriptedPeer({"events": [PDU]})
    assert done(fetch.fetch_missing_events(peer, DEST, "!r:x", ["$old"], ["$new"], 7, 3)) \
        == [PDU]
    assert peer.calls[0][0] == "POST"
    assert peer.calls[0][4] == {"earliest_events": ["$old"], "latest_events": ["$new"],
                                "limit": 7, "min_depth": 3}


def test_queries() -> None:
    peer = ScriptedPeer({"room_id": "!r:x", "servers": ["x", "y"]})
    assert done(fetch.query_directory(peer, DEST, "#a:x")) == DirectoryAnswer("!r:x", ["x", "y"])
    assert peer.calls[0][3] == {"room_alias": "#a:x"}
    peer = ScriptedPeer({"displayname": "Bob", "avatar_url": 5, "other": "kept"})
    assert done(fetch.query_profile(peer, DEST, "@bob:x", "displayname")) == \
        {"displayname": "Bob", "other": "kept"}
    assert peer.calls[0][3] == {"user_id": "@bob:x", "field": "displayname"}
    devices = {"user_id": "@bob:x", "stream_id": 3, "devices": [{"device_id": "D"}]}
    assert done(fetch.query_user_devices(ScriptedPeer(devices), DEST, "@bob:x")) == devices


@pytest.mark.parametrize("call, answer", [
    (lambda p: fetch.fetch_event(p, DEST, "$e"), {"pdus": []}),
    (lambda p: fetch.fetch_event(p, DEST, "$e"), {"pdus": [PDU, PDU]}),
    (lambda p: fetch.fetch_event(p, DEST, "$e"), {"pdus": ["not a pdu"]}),
    (lambda p: fetch.fetch_event(p, DEST, "$e"), ["not", "an", "object"]),
    (lambda p: fetch.fetch_event(p, DEST, "$e"), None),
    (lambda p: fetch.fetch_state_ids(p, DEST, "!r:x", "$e"), {"pdu_ids": ["$1"]}),
    (lambda p: fetch.fetch_state_ids(p, DEST, "!r:x", "$e"),
     {"pdu_ids": [1], "auth_chain_ids": []}),
    (lambda p: fetch.fetch_state(p, DEST, "!r:x", "$e"), {"pdus": {}, "auth_chain": []}),
    (lambda p: fetch.fetch_event_auth(p, DEST, "!r:x", "$e"), {"auth_chain": "x"}),
    (lambda p: fetch.fetch_backfill(p, DEST, "!r:x", ["$e"], 1), {"pdus": [[1]]}),
    (lambda p: fetch.fetch_missing_events(p, DEST, "!r:x", [], ["$e"]), {"events": None}),
    (lambda p: fetch.query_directory(p, DEST, "#a:x"), {"room_id": 5, "servers": []}),
    (lambda p: fetch.query_directory(p, DEST, "#a:x"), {"room_id": "!r:x", "servers": [None]}),
    (lambda p: fetch.query_profile(p, DEST, "@a:x"), "text"),
    (lambda p: fetch.query_user_devices(p, DEST, "@a:x"),
     {"user_id": "@other:x", "stream_id": 1, "devices": []}),
    (lambda p: fetch.query_user_devices(p, DEST, "@a:x"),
     {"user_id": "@a:x", "stream_id": True, "devices": []}),
    (lambda p: fetch.query_user_devices(p, DEST, "@a:x"),
     {"user_id": "@a:x", "stream_id": 1, "devices": [{"device_id": 1}]}),
])
def test_malformed_answers_raise_a_clear_error(call: Any, answer: Any) -> None:
    with pytest.raises(InvalidResponseError) as info:
        done(call(ScriptedPeer(answer)))
    assert info.value.destination == DEST
    assert DEST in str(info.value) and info.value.path.startswith("/_matrix/federation/v1/")


def test_public_rooms_keep_only_well_formed_entries() -> None:
    peer = ScriptedPeer({"chunk": [{"room_id": "!a:x", "name": "A"}, {"name": "no id"}, 5],
                         "next_batch": "n1", "prev_batch": 7, "total_room_count_estimate": 2})
    assert done(fetch.query_public_rooms(peer, DEST, {"limit": 5})) == {
        "chunk": [{"room_id": "!a:x", "name": "A"}], "next_batch": "n1",
        "total_room_count_estimate": 2}
    assert peer.calls[0][:3] == ("POST", DEST, "/_matrix/federation/v1/publicRooms")


def test_keys_answers_speak_only_for_the_destinations_users() -> None:
    mine, other = f"@bob:{DEST}", "@eve:elsewhere.example"
    peer = ScriptedPeer({"device_keys": {mine: {"D": {"keys": {}}}, other: {"E": {}},
                                         "not a user": {}, f"@x:{DEST}": "not an object"}})
    assert done(fetch.query_keys(peer, DEST, {mine: []})) == {mine: {"D": {"keys": {}}}}
    assert peer.calls[0][4] == {"device_keys": {mine: []}}
    peer = ScriptedPeer({"one_time_keys": {mine: {"D": {"k:1": "v"}}, other: {"E": {}}}})
    assert done(fetch.claim_keys(peer, DEST, {mine: {"D": "k"}})) == {mine: {"D": {"k:1": "v"}}}
    assert done(fetch.query_keys(ScriptedPeer({}), DEST, {mine: []})) == {}
    with pytest.raises(InvalidResponseError):
        done(fetch.query_keys(ScriptedPeer({"device_keys": []}), DEST, {mine: []}))


class FailingPeer(ScriptedPeer):
    def __init__(self, failure: Exception) -> None:
        super().__init__(None)
        self.failure = failure

    async def get_json(self, *args: Any, **kwargs: Any) -> Any:
        raise self.failure

    async def post_json(self, *args: Any, **kwargs: Any) -> Any:
        raise self.failure


@pytest.mark.parametrize("failure, status, errcode", [
    (HttpResponseError(404, "M_NOT_FOUND", {}), 404, "M_NOT_FOUND"),
    (HttpResponseError(403, "M_FORBIDDEN", {}), 403, "M_FORBIDDEN"),
    (HttpResponseError(500, None, b"oops"), 502, "M_UNKNOWN"),
    (DestinationUnreachable(DEST, "connection refused"), 502, "M_UNKNOWN"),
    (InvalidResponseError(DEST, "/x", "nonsense"), 502, "M_UNKNOWN"),
])
def test_remote_queries_turn_every_failure_into_a_matrix_error(
        failure: Exception, status: int, errcode: str) -> None:
    remote = RemoteQueries(FailingPeer(failure))
    for work in (lambda: remote.profile(f"@bob:{DEST}"),
                 lambda: remote.public_rooms(DEST, {}),
                 lambda: remote.device_keys(DEST, {f"@bob:{DEST}": []}),
                 lambda: remote.claim_keys(DEST, {f"@bob:{DEST}": {"D": "k"}})):
        with pytest.raises(MatrixError) as info:
            done(work())
        assert (info.value.status, info.value.errcode) == (status, errcode)


def test_remote_profile_keeps_the_profile_fields() -> None:
    peer = ScriptedPeer({"displayname": "Bob", "avatar_url": "mxc://x/y", "m.tz": "UTC"})
    assert done(RemoteQueries(peer).profile(f"@bob:{DEST}")) == \
        {"displayname": "Bob", "avatar_url": "mxc://x/y"}
    assert peer.calls[0][1] == DEST


def test_hierarchy_answers_are_checked_and_cleaned() -> None:
    child = {"type": "m.space.child", "state_key": "!c:x", "content": {"via": ["x"]}}
    peer = ScriptedPeer({"room": {"room_id": "!s:x", "children_state": [child, "junk", {}]},
                         "children": [{"room_id": "!c:x"}, {"name": "no id"}],
                         "inaccessible_children": ["!d:x", 5]})
    assert done(fetch.fetch_hierarchy(peer, DEST, "!s:x", True)) == {
        "room": {"room_id": "!s:x", "children_state": [child]},
        "children": [{"room_id": "!c:x"}], "inaccessible_children": ["!d:x"]}
    assert peer.calls[0][2:4] == ("/_matrix/federation/v1/hierarchy/%21s%3Ax",
                                  {"suggested_only": "true"})
    for answer in ({"room": {"room_id": "!other:x", "children_state": []}},
                   {"room": {"room_id": "!s:x"}}, {"room": "x"}, {}):
        with pytest.raises(InvalidResponseError):
            done(fetch.fetch_hierarchy(ScriptedPeer(answer), DEST, "!s:x"))


def test_remote_hierarchy_tries_the_via_servers_in_turn() -> None:
    class ByServer(ScriptedPeer):
        async def get_json(self, destination: str, path: str, query: Any = None, *,
                           timeout_s: float = 60.0) -> Any:
            self.calls.append(("GET", destination, path, query, None))
            if destination != "good.example":
                raise DestinationUnreachable(destination, "down")
            return {"room": {"room_id": "!s:x", "children_state": []}}

    peer = ByServer(None)
    answer = done(RemoteQueries(peer).hierarchy(["bad.example", "good.example"], "!s:x", False))
    assert answer is not None and answer["room"]["room_id"] == "!s:x"
    assert [c[1] for c in peer.calls] == ["bad.example", "good.example"]
    assert done(RemoteQueries(peer).hierarchy(["bad.example"], "!s:x", False)) is None
    # At most three servers are asked.
    peer.calls.clear()
    done(RemoteQueries(peer).hierarchy([f"s{i}.example" for i in range(10)], "!s:x", False))
    assert len(peer.calls) == 3
