"""The stream's wire format against its schemas, on a real server process.

A stream request gives the errcode its REST twin gives for the same mistake
(both driven against the same server), and every frame a scenario using every
method receives matches the frame schemas (schemas/frames/); so does /sync.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

import schemas
from tests.harness import HomeserverProcess
from tests.integration.test_stream import (
    Session,
    _call,
    _frames_until,
    _register,
    check_frame,
    receive_frame,
    run,
)

C = "/_matrix/client/v3"
BAD, INVALID, MISSING = "M_BAD_JSON", "M_INVALID_PARAM", "M_MISSING_PARAM"
UNKNOWN_EVENT = "$" + "a" * 43
MSG = "m.room.message"


@dataclass(frozen=True)
class Mistake:
    """One bad stream request, its REST twin (None: a path parameter left out,
    which REST cannot express) and the errcode both must answer."""

    what: str
    method: str
    params: dict[str, Any]
    rest: tuple[str, str, Any] | None
    errcode: str


def _send(room: Any, content: Any, txn: str, event_type: str = MSG) -> dict[str, Any]:
    return {"room_id": room, "event_type": event_type, "txn_id": txn, "content": content}


# `{room}` is a room the user is in, `{other}` one they are not, `{me}`/`{bob}`
# user IDs, `{event}` an event in `{room}`.
MISTAKES = [
    Mistake("send: content not an object", "send", _send("{room}", [1], "m1"),
            ("PUT", "/rooms/{room}/send/m.room.message/m1", [1]), BAD),
    Mistake("send: content breaks its event type's schema", "send",
            _send("{room}", {"msgtype": "m.text"}, "m2"),
            ("PUT", "/rooms/{room}/send/m.room.message/m2", {"msgtype": "m.text"}), BAD),
    Mistake("send: malformed room ID", "send", _send("nope", {}, "m3"),
            ("PUT", "/rooms/nope/send/m.room.message/m3", {}), INVALID),
    Mistake("send: a room one is not in", "send", _send("{other}", {"body": "x", "msgtype": "m.text"},
                                                        "m4"),
            ("PUT", "/rooms/{other}/send/m.room.message/m4", {"body": "x", "msgtype": "m.text"}),
            "M_FORBIDDEN"),
    Mistake("send: event type too long", "send", _send("{room}", {}, "m5", "m." + "x" * 300),
            ("PUT", "/rooms/{room}/send/m." + "x" * 300 + "/m5", {}), INVALID),
    Mistake("send: content too large", "send", _send("{room}", {"big": "x" * 70_000}, "m6"),
            ("PUT", "/rooms/{room}/send/m.room.message/m6", {"big": "x" * 70_000}),
            "M_TOO_LARGE"),
    Mistake("state: content not an object", "state",
            {"room_id": "{room}", "event_type": "m.room.topic", "content": "x"},
            ("PUT", "/rooms/{room}/state/m.room.topic/", "x"), BAD),
    Mistake("state: content breaks its event type's schema", "state",
            {"room_id": "{room}", "event_type": "m.room.topic", "content": {"topic": 5}},
            ("PUT", "/rooms/{room}/state/m.room.topic/", {"topic": 5}), BAD),
    Mistake("state: a room one is not in", "state",
            {"room_id": "{other}", "event_type": "m.room.topic", "content": {"topic": "t"}},
            ("PUT", "/rooms/{other}/state/m.room.topic/", {"topic": "t"}), "M_FORBIDDEN"),
    Mistake("typing: typing left out", "typing", {"room_id": "{room}", "timeout": 5},
            ("PUT", "/rooms/{room}/typing/{me}", {"timeout": 5}), MISSING),
    Mistake("typing: typing not a boolean", "typing", {"room_id": "{room}", "typing": "yes"},
            ("PUT", "/rooms/{room}/typing/{me}", {"typing": "yes"}), INVALID),
    Mistake("typing: timeout not an integer", "typing",
            {"room_id": "{room}", "typing": True, "timeout": "1"},
            ("PUT", "/rooms/{room}/typing/{me}", {"typing": True, "timeout": "1"}), INVALID),
    Mistake("typing: for someone else", "typing",
            {"room_id": "{room}", "user_id": "{bob}", "typing": True},
            ("PUT", "/rooms/{room}/typing/{bob}", {"typing": True}), "M_FORBIDDEN"),
    Mistake("typing: malformed user ID", "typing",
            {"room_id": "{room}", "user_id": "bob", "typing": True},
            ("PUT", "/rooms/{room}/typing/bob", {"typing": True}), INVALID),
    Mistake("receipt: thread_id not a string", "receipt",
            {"room_id": "{room}", "event_id": "{event}", "thread_id": 1},
            ("POST", "/rooms/{room}/receipt/m.read/{event}", {"thread_id": 1}), INVALID),
    Mistake("receipt: empty thread_id", "receipt",
            {"room_id": "{room}", "event_id": "{event}", "thread_id": ""},
            ("POST", "/rooms/{room}/receipt/m.read/{event}", {"thread_id": ""}), INVALID),
    Mistake("receipt: unknown receipt type", "receipt",
            {"room_id": "{room}", "event_id": "{event}", "receipt_type": "m.seen"},
            ("POST", "/rooms/{room}/receipt/m.seen/{event}", {}), INVALID),
    Mistake("receipt: unknown event", "receipt", {"room_id": "{room}", "event_id": UNKNOWN_EVENT},
            ("POST", "/rooms/{room}/receipt/m.read/" + UNKNOWN_EVENT, {}), "M_NOT_FOUND"),
    Mistake("receipt: malformed room ID", "receipt", {"room_id": "nope", "event_id": "{event}"},
            ("POST", "/rooms/nope/receipt/m.read/{event}", {}), INVALID),
    Mistake("presence: presence left out", "presence", {"status_msg": "hi"},
            ("PUT", "/presence/{me}/status", {"status_msg": "hi"}), MISSING),
    Mistake("presence: unknown presence", "presence", {"presence": "away"},
            ("PUT", "/presence/{me}/status", {"presence": "away"}), INVALID),
    Mistake("presence: status_msg not a string", "presence",
            {"presence": "online", "status_msg": 1},
            ("PUT", "/presence/{me}/status", {"presence": "online", "status_msg": 1}), INVALID),
    Mistake("to_device: messages left out", "to_device", {"event_type": "m.x", "txn_id": "d1"},
            ("PUT", "/sendToDevice/m.x/d1", {}), MISSING),
    Mistake("to_device: messages not an object", "to_device",
            {"event_type": "m.x", "txn_id": "d2", "messages": "x"},
            ("PUT", "/sendToDevice/m.x/d2", {"messages": "x"}), INVALID),
    Mistake("to_device: a user's entry not an object", "to_device",
            {"event_type": "m.x", "txn_id": "d3", "messages": {"{bob}": "x"}},
            ("PUT", "/sendToDevice/m.x/d3", {"messages": {"{bob}": "x"}}), BAD),
    Mistake("to_device: a message not an object", "to_device",
            {"event_type": "m.x", "txn_id": "d4", "messages": {"{bob}": {"DEV": 5}}},
            ("PUT", "/sendToDevice/m.x/d4", {"messages": {"{bob}": {"DEV": 5}}}), BAD),
    Mistake("to_device: a key that is no user ID", "to_device",
            {"event_type": "m.x", "txn_id": "d5", "messages": {"bob": {"DEV": {}}}},
            ("PUT", "/sendToDevice/m.x/d5", {"messages": {"bob": {"DEV": {}}}}), INVALID),
    # Path parameters left out or of the wrong type: the stream's own mistakes.
    Mistake("send: room_id left out", "send", {"event_type": MSG, "txn_id": "s1", "content": {}},
            None, MISSING),
    Mistake("send: txn_id left out", "send", {"room_id": "{room}", "event_type": MSG,
                                              "content": {}}, None, MISSING),
    Mistake("send: room_id not a string", "send", _send(5, {}, "s2"), None, INVALID),
    Mistake("state: event_type null", "state",
            {"room_id": "{room}", "event_type": None, "content": {}}, None, INVALID),
    Mistake("receipt: event_id left out", "receipt", {"room_id": "{room}"}, None, MISSING),
    Mistake("to_device: txn_id not a string", "to_device",
            {"event_type": "m.x", "txn_id": 1, "messages": {}}, None, INVALID),
]


def _fill(value: Any, names: dict[str, str]) -> Any:
    """`value` with `{name}` placeholders replaced, in keys and strings alike."""
    if isinstance(value, str):
        return value.format_map(names) if "{" in value else value
    if isinstance(value, dict):
        return {_fill(k, names): _fill(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_fill(v, names) for v in value)
    return value


async def _whoami(s: Session) -> dict[str, Any]:
    return await _call(s.http, "GET", f"{s.base}{C}/account/whoami", s.token)  # type: ignore[no-any-return]


async def _rest_errcode(s: Session, method: str, path: str, body: Any) -> str:
    async with s.http.request(method, f"{s.base}{C}{path}", data=json.dumps(body),
                              headers={"Authorization": f"Bearer {s.token}"}) as r:
        answer = await r.json()
        assert 400 <= r.status < 500, (path, r.status, answer)
        return str(answer["errcode"])


async def _stream_errcode(ws: aiohttp.ClientWebSocketResponse, request_id: str, method: str,
                          params: dict[str, Any]) -> str:
    await ws.send_json({"id": request_id, "method": method, "params": params})
    reply = (await _frames_until(ws, lambda f: f.get("id") == request_id))[-1]
    assert "error" in reply, reply
    return str(reply["error"]["errcode"])


def test_stream_requests_give_their_rest_twins_errcodes(sqlite_server: HomeserverProcess,
                                                        unique: str) -> None:
    async def scenario(alice: Session) -> None:
        bob = Session(sqlite_server, alice.http,
                      await _register(alice.http, alice.base, unique + "b"))
        names = {"room": await alice.create_room(), "other": await bob.create_room(),
                 "me": (await _whoami(alice))["user_id"], "bob": (await _whoami(bob))["user_id"]}
        names["event"] = await alice.send(names["room"], "seed", "hello")
        ws = await alice.stream()
        await receive_frame(ws)
        wrong = []
        for number, mistake in enumerate(MISTAKES):
            answers = {"stream": await _stream_errcode(ws, f"r{number}", mistake.method,
                                                       _fill(mistake.params, names))}
            if mistake.rest is not None:
                method, path, body = _fill(mistake.rest, names)
                answers["rest"] = await _rest_errcode(alice, method, path, body)
            if set(answers.values()) != {mistake.errcode}:
                wrong.append(f"{mistake.what}: {answers}, expected {mistake.errcode}")
        await ws.close()
        assert not wrong, "\n".join(wrong)

    run(sqlite_server, unique, scenario)


def test_missing_method_and_string_ids(sqlite_server: HomeserverProcess, unique: str) -> None:
    """A frame without a method is malformed (M_BAD_JSON); a reply carries the
    request's id only when it is a string, else null."""
    async def scenario(s: Session) -> None:
        ws = await s.stream()
        await receive_frame(ws)
        for frame, reply_id, errcode in [({"id": "m"}, "m", BAD),
                                         ({"id": 7, "method": "presence"}, None, BAD),
                                         ({"id": "u", "method": 7}, "u", "M_UNRECOGNIZED")]:
            await ws.send_json(frame)
            reply = (await _frames_until(ws, lambda f: "error" in f))[-1]
            assert (reply["id"], reply["error"]["errcode"]) == (reply_id, errcode), reply
        await ws.close()

    run(sqlite_server, unique, scenario)


def test_every_frame_of_every_method_matches_the_frame_schemas(
        server: HomeserverProcess, unique: str) -> None:
    """Alice uses every method over her stream; Bob's stream carries each effect
    (a message, state, typing, a receipt, presence, a to-device message), Carol's
    an invite; every frame is checked (check_frame), and /sync bodies too."""
    async def scenario(alice: Session) -> None:
        bob, carol = [Session(server, alice.http, await _register(alice.http, alice.base,
                                                                   unique + suffix))
                      for suffix in ("b", "c")]
        room = await alice.create_room()
        await _call(alice.http, "POST", f"{alice.base}{C}/join/{room}", bob.token, {})
        bob_ids, carol_id = await _whoami(bob), (await _whoami(carol))["user_id"]
        alice_ws, bob_ws, carol_ws = [await s.stream() for s in (alice, bob, carol)]
        for ws in (alice_ws, bob_ws, carol_ws):
            await receive_frame(ws)

        async def call(request_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
            await alice_ws.send_json({"id": request_id, "method": method, "params": params})
            reply = (await _frames_until(alice_ws, lambda f: f.get("id") == request_id))[-1]
            assert "result" in reply, reply
            return reply["result"]  # type: ignore[no-any-return]

        event_id = (await call("s", "send", _send(room, {"msgtype": "m.text", "body": "hi"},
                                                  "t1")))["event_id"]
        await call("st", "state", {"room_id": room, "event_type": "m.room.topic",
                                   "content": {"topic": "schemas"}})
        await call("i", "state", {"room_id": room, "event_type": "m.room.member",
                                  "state_key": carol_id, "content": {"membership": "invite"}})
        await call("t", "typing", {"room_id": room, "typing": True, "timeout": 30000})
        await call("r", "receipt", {"room_id": room, "event_id": event_id})
        await call("p", "presence", {"presence": "unavailable", "status_msg": "away"})
        await call("d", "to_device", {"event_type": "org.example.ping", "txn_id": "d1", "messages": {
            bob_ids["user_id"]: {bob_ids["device_id"]: {"n": 1}}}})

        await _frames_until(carol_ws, lambda f: room in f.get("data", {}).get("rooms", {})
                            .get("invite", {}))
        await _bob_sees_everything(bob_ws, room)
        for s in (alice, bob, carol):
            schemas.validate("responses", "client/sync", await s.sync())
        for ws in (alice_ws, bob_ws, carol_ws):
            await ws.close()

    run(server, unique, scenario)


async def _bob_sees_everything(ws: aiohttp.ClientWebSocketResponse, room: str) -> None:
    """Bob's frames until each of Alice's requests has shown up in one."""
    wanted = {"m.room.message", "m.room.topic", "m.typing", "m.receipt", "m.presence",
              "org.example.ping"}

    def note(frame: dict[str, Any]) -> bool:
        data = frame.get("data", {})
        joined = data.get("rooms", {}).get("join", {}).get(room, {})
        for section in (joined.get("timeline", {}), joined.get("state", {}),
                        joined.get("ephemeral", {}), data.get("presence", {}),
                        data.get("to_device", {})):
            wanted.difference_update(e.get("type") for e in section.get("events", []))
        return not wanted

    try:
        await _frames_until(ws, note, timeout=20)
    except TimeoutError:
        raise AssertionError(f"Bob's stream never carried {sorted(wanted)}") from None


def test_frame_schemas_catch_a_wrong_frame() -> None:
    """The check the scenarios rely on does fail on a malformed frame."""
    for frame in ({"type": "sync", "next_batch": "s1", "data": {"next_batch": "s2"}},
                  {"id": "a", "result": {"event_id": 5}}, {"id": "a", "error": {}}):
        try:
            check_frame(frame)
        except (schemas.SchemaError, AssertionError):
            continue
        raise AssertionError(f"accepted {frame}")
