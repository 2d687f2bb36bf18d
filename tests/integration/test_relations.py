"""Relations: edits, reactions and threads, /relations and bundled aggregations."""

from __future__ import annotations

from typing import Any

from tests.harness import HomeserverProcess, http_json


def _register(server: HomeserverProcess, name: str) -> str:
    status, body = http_json("POST", f"{server.base_url}/_matrix/client/v3/register", {
        "username": name, "password": "pw", "auth": {"type": "m.login.dummy"}})
    assert status == 200, body
    return str(body["access_token"])


def test_edits_reactions_threads(server: HomeserverProcess, unique: str) -> None:
    base = f"{server.base_url}/_matrix/client"
    token = _register(server, unique)

    def call(method: str, path: str, body: Any = None) -> Any:
        status, answer = http_json(method, f"{base}{path}", body, token)
        assert status == 200, answer
        return answer

    room = call("POST", "/v3/createRoom", {})["room_id"]
    send = f"/v3/rooms/{room}/send"
    root = call("PUT", f"{send}/m.room.message/1", {"msgtype": "m.text", "body": "root"})
    root_id = root["event_id"]
    edit = call("PUT", f"{send}/m.room.message/2", {
        "msgtype": "m.text", "body": "* fixed", "m.new_content": {"msgtype": "m.text",
                                                                  "body": "fixed"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": root_id}})["event_id"]
    for i, key in enumerate(["👍", "👍", "🎉"]):
        call("PUT", f"{send}/m.reaction/r{i}", {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": root_id, "key": key}})
    reply = call("PUT", f"{send}/m.room.message/3", {
        "msgtype": "m.text", "body": "in thread",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root_id}})["event_id"]

    everything = call("GET", f"/v1/rooms/{room}/relations/{root_id}")["chunk"]
    assert len(everything) == 5
    reactions = call("GET", f"/v1/rooms/{room}/relations/{root_id}/m.annotation")["chunk"]
    assert {e["type"] for e in reactions} == {"m.reaction"} and len(reactions) == 3
    typed = call("GET", f"/v1/rooms/{room}/relations/{root_id}/m.annotation/m.reaction")
    assert len(typed["chunk"]) == 3
    threads = call("GET", f"/v1/rooms/{room}/relations/{root_id}/m.thread")["chunk"]
    assert [e["event_id"] for e in threads] == [reply]

    for fetched in (call("GET", f"/v3/rooms/{room}/event/{root_id}"),
                    next(e for e in call("GET", f"/v3/rooms/{room}/messages?dir=b&limit=20")
                         ["chunk"] if e["event_id"] == root_id)):
        bundled = fetched["unsigned"]["m.relations"]
        assert bundled["m.replace"]["event_id"] == edit
        assert bundled["m.thread"]["latest_event"]["event_id"] == reply
        assert bundled["m.thread"]["count"] == 1
        assert sorted((c["key"], c["count"]) for c in bundled["m.annotation"]["chunk"]) == \
            [("🎉", 1), ("👍", 2)]

    status, answer = http_json("GET", f"{base}/v1/rooms/{room}/relations/$nope", None, token)
    assert status in (400, 404) and answer["errcode"] in ("M_NOT_FOUND", "M_INVALID_PARAM")
