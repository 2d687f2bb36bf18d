"""The WebSocket stream against a real server process, with a real WebSocket client.
Every frame received is checked against its schema (schemas/frames/)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

import schemas
from tests.harness import HomeserverProcess

STREAM = "/_guildhall/client/v1/stream"


async def _register(session: aiohttp.ClientSession, base: str, name: str) -> str:
    async with session.post(f"{base}/_matrix/client/v3/register", json={
            "username": name, "password": "pw", "auth": {"type": "m.login.dummy"}}) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["access_token"])


async def _call(session: aiohttp.ClientSession, method: str, url: str, token: str,
                body: Any = None) -> Any:
    async with session.request(method, url, json=body,
                               headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def check_frame(frame: Any) -> dict[str, Any]:
    """`frame`, after checking it against the schema of its kind (sync, reply, error)."""
    assert isinstance(frame, dict), frame
    schemas.validate_frame(frame)
    if "type" in frame:
        assert frame["next_batch"] == frame["data"]["next_batch"]
    return frame


async def receive_frame(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10
                        ) -> dict[str, Any]:
    return check_frame(await ws.receive_json(timeout=timeout))


async def _frames_until(ws: aiohttp.ClientWebSocketResponse, predicate: Any,
                        timeout: float = 10) -> list[dict[str, Any]]:
    frames = []
    async with asyncio.timeout(timeout):
        while True:
            frame = check_frame(await ws.receive_json())
            frames.append(frame)
            if predicate(frame):
                return frames


def _timeline_ids(body: dict[str, Any], room_id: str) -> list[str]:
    room = body["rooms"]["join"].get(room_id)
    return [e["event_id"] for e in room["timeline"]["events"]] if room else []


class Session:
    def __init__(self, server: HomeserverProcess, http: aiohttp.ClientSession, token: str
                 ) -> None:
        self.base = server.base_url
        self.http = http
        self.token = token

    async def create_room(self) -> str:
        body = await _call(self.http, "POST", f"{self.base}/_matrix/client/v3/createRoom",
                           self.token, {"preset": "public_chat"})
        return str(body["room_id"])

    async def send(self, room_id: str, txn: str, text: str) -> str:
        body = await _call(self.http, "PUT", f"{self.base}/_matrix/client/v3/rooms/{room_id}"
                           f"/send/m.room.message/{txn}", self.token,
                           {"msgtype": "m.text", "body": text})
        return str(body["event_id"])

    async def sync(self, since: str | None = None, timeout: int = 0) -> dict[str, Any]:
        url = f"{self.base}/_matrix/client/v3/sync?timeout={timeout}"
        if since:
            url += f"&since={since}"
        return await _call(self.http, "GET", url, self.token)  # type: ignore[no-any-return]

    async def stream(self, since: str | None = None) -> aiohttp.ClientWebSocketResponse:
        url = f"{self.base}{STREAM}" + (f"?since={since}" if since else "")
        return await self.http.ws_connect(url, headers={"Authorization": f"Bearer {self.token}"})


def run(server: HomeserverProcess, name: str, scenario: Any) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            token = await _register(http, server.base_url, name)
            await scenario(Session(server, http, token))

    asyncio.run(main())


def test_first_frame_is_the_sync_response(sqlite_server: HomeserverProcess, unique: str) -> None:
    async def scenario(s: Session) -> None:
        room = await s.create_room()
        ws = await s.stream()
        first = await receive_frame(ws)
        assert first["type"] == "sync"
        assert first["next_batch"] == first["data"]["next_batch"]
        assert room in first["data"]["rooms"]["join"]
        for key in ("presence", "account_data", "to_device", "device_lists"):
            assert key in first["data"]
        await ws.close()

    run(sqlite_server, unique, scenario)


def test_switching_between_sync_and_stream_has_no_gaps_or_duplicates(
        server: HomeserverProcess, unique: str) -> None:
    async def scenario(s: Session) -> None:
        room = await s.create_room()
        token = (await s.sync())["next_batch"]
        sent: list[str] = []
        seen: list[str] = []
        for round_ in range(3):
            # Over the stream from the /sync token...
            ws = await s.stream(since=token)
            frame = await receive_frame(ws)
            seen += _timeline_ids(frame["data"], room)
            for i in range(3):
                sent.append(await s.send(room, f"ws{round_}-{i}", f"stream {round_} {i}"))
            frames = await _frames_until(
                ws, lambda f: sent[-1] in _timeline_ids(f.get("data", {"rooms": {"join": {}}}),
                                                        room))
            for f in frames:
                seen += _timeline_ids(f["data"], room)
            token = frames[-1]["next_batch"]
            # Messages sent after the last frame but while no stream is open...
            sent.append(await s.send(room, f"gap{round_}", f"gap {round_}"))
            await ws.close()
            # ...arrive through /sync from the stream's token, and back again.
            body = await s.sync(since=token)
            seen += _timeline_ids(body, room)
            token = body["next_batch"]
        assert seen == sent  # every message once, in order

    run(server, unique, scenario)


def test_requests_over_the_socket(sqlite_server: HomeserverProcess, unique: str) -> None:
    async def scenario(s: Session) -> None:
        room = await s.create_room()
        ws = await s.stream()
        await receive_frame(ws)
        await ws.send_json({"id": "a", "method": "send", "params": {
            "room_id": room, "event_type": "m.room.message", "txn_id": "x1",
            "content": {"msgtype": "m.text", "body": "over the socket"}}})
        frames = await _frames_until(ws, lambda f: f.get("id") == "a")
        event_id = frames[-1]["result"]["event_id"]
        # The same txnId again answers the same event (idempotent, as on REST).
        await ws.send_json({"id": "b", "method": "send", "params": {
            "room_id": room, "event_type": "m.room.message", "txn_id": "x1",
            "content": {"msgtype": "m.text", "body": "over the socket"}}})
        frames = await _frames_until(ws, lambda f: f.get("id") == "b")
        assert frames[-1]["result"]["event_id"] == event_id
        await ws.send_json({"id": "c", "method": "state", "params": {
            "room_id": room, "event_type": "m.room.topic", "content": {"topic": "ws"}}})
        frames = await _frames_until(ws, lambda f: f.get("id") == "c")
        assert frames[-1]["result"]["event_id"].startswith("$")
        # Same errors as REST: missing parameter, a room one is not in.
        await ws.send_json({"id": "d", "method": "send", "params": {"room_id": room}})
        frames = await _frames_until(ws, lambda f: f.get("id") == "d")
        assert frames[-1]["error"]["errcode"] == "M_MISSING_PARAM"
        other = await Session(  # a room created by someone else
            sqlite_server, s.http, await _register(s.http, s.base, unique + "o")).create_room()
        await ws.send_json({"id": "e", "method": "send", "params": {
            "room_id": other, "event_type": "m.room.message", "txn_id": "x2",
            "content": {"body": "intrude", "msgtype": "m.text"}}})
        frames = await _frames_until(ws, lambda f: f.get("id") == "e")
        assert frames[-1]["error"]["errcode"] == "M_FORBIDDEN"
        await ws.close()

    run(sqlite_server, unique, scenario)


@pytest.mark.parametrize("frame,errcode", [
    ("not json", "M_NOT_JSON"),
    ("[1, 2]", "M_BAD_JSON"),
    ('{"id": 5, "method": "send"}', "M_BAD_JSON"),
    ('{"id": "x", "method": "teleport"}', "M_UNRECOGNIZED"),
    ('{"id": "x", "method": "send", "params": []}', "M_BAD_JSON"),
    ('{"id": "x", "method": "send", "params": {"room_id": 1.5}}', "M_BAD_JSON"),
])
def test_bad_frames_get_errors_and_the_socket_stays_usable(
        sqlite_server: HomeserverProcess, unique: str, frame: str, errcode: str) -> None:
    async def scenario(s: Session) -> None:
        room = await s.create_room()
        ws = await s.stream()
        await receive_frame(ws)
        await ws.send_str(frame)
        reply = (await _frames_until(ws, lambda f: "error" in f))[-1]
        assert reply["error"]["errcode"] == errcode
        await ws.send_bytes(b"\x00\x01binary")
        reply = (await _frames_until(ws, lambda f: "error" in f))[-1]
        assert reply["error"]["errcode"] == "M_NOT_JSON"
        event_id = await s.send(room, "after", "still alive")
        await _frames_until(ws, lambda f: f.get("type") == "sync"
                            and event_id in _timeline_ids(f["data"], room))
        await ws.close()

    run(sqlite_server, unique, scenario)


def test_revoked_token_closes_the_socket_with_a_reason(sqlite_server: HomeserverProcess,
                                                       unique: str) -> None:
    async def scenario(s: Session) -> None:
        ws = await s.stream()
        await receive_frame(ws)
        await _call(s.http, "POST", f"{s.base}/_matrix/client/v3/logout", s.token)
        message = await ws.receive(timeout=10)
        while message.type == aiohttp.WSMsgType.TEXT:  # e.g. our own presence going offline
            check_frame(message.json())
            message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert message.data == 4001
        assert "M_UNKNOWN_TOKEN" in message.extra

    run(sqlite_server, unique, scenario)


def test_upgrade_without_a_valid_token_is_refused(sqlite_server: HomeserverProcess) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": "Bearer nonsense"}):
                with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                    await http.ws_connect(f"{sqlite_server.base_url}{STREAM}", headers=headers)
                assert info.value.status == 401

    asyncio.run(main())


def test_access_token_query_parameter_is_accepted(sqlite_server: HomeserverProcess,
                                                  unique: str) -> None:
    async def scenario(s: Session) -> None:
        ws = await s.http.ws_connect(f"{s.base}{STREAM}?access_token={s.token}")
        first = await receive_frame(ws)
        assert first["type"] == "sync"
        await ws.close()

    run(sqlite_server, unique, scenario)


def test_ephemeral_requests_and_presence_over_the_socket(server: HomeserverProcess,
                                                         unique: str) -> None:
    async def scenario(alice: Session) -> None:
        bob = Session(server, alice.http, await _register(alice.http, alice.base, unique + "b"))
        room = await alice.create_room()
        await _call(alice.http, "POST", f"{alice.base}/_matrix/client/v3/join/{room}",
                    bob.token, {})
        whoami = await _call(alice.http, "GET", f"{alice.base}/_matrix/client/v3/account/whoami",
                             bob.token)
        event_id = await alice.send(room, "hello", "hello bob")
        since = (await bob.sync())["next_batch"]
        ws = await alice.stream()
        await receive_frame(ws)

        async def call(request_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
            await ws.send_json({"id": request_id, "method": method, "params": params})
            return (await _frames_until(ws, lambda f: f.get("id") == request_id))[-1]

        assert (await call("t", "typing", {"room_id": room, "typing": True,
                                           "timeout": 30000}))["result"] == {}
        assert (await call("r", "receipt", {"room_id": room, "event_id": event_id}))["result"] == {}
        assert (await call("p", "presence", {"presence": "unavailable",
                                             "status_msg": "in a call"}))["result"] == {}
        assert (await call("d", "to_device", {
            "event_type": "org.example.ping", "txn_id": "d1",
            "messages": {whoami["user_id"]: {whoami["device_id"]: {"n": 1}}}}))["result"] == {}
        denied = await call("x", "typing", {"room_id": room, "user_id": whoami["user_id"],
                                            "typing": True})
        assert denied["error"]["errcode"] == "M_FORBIDDEN"  # as on REST: only for yourself
        seen: dict[str, Any] = {"typing": False, "receipt": False, "presence": None,
                                "to_device": False}
        for _ in range(20):
            body = await bob.sync(since=since, timeout=2000)
            since = body["next_batch"]
            joined = body["rooms"]["join"].get(room, {})
            for e in joined.get("ephemeral", {}).get("events", []):
                if e["type"] == "m.typing" and e["content"]["user_ids"]:
                    seen["typing"] = True
                if e["type"] == "m.receipt" and event_id in e["content"]:
                    seen["receipt"] = True
            for e in body["presence"]["events"]:
                if e["sender"] != whoami["user_id"]:
                    seen["presence"] = e["content"]
            if body["to_device"]["events"]:
                seen["to_device"] = body["to_device"]["events"][0]["content"] == {"n": 1}
            if all(seen.values()) and seen["presence"].get("status_msg") == "in a call":
                break
        assert seen["typing"] and seen["receipt"] and seen["to_device"]
        assert seen["presence"]["presence"] == "unavailable"
        assert seen["presence"]["status_msg"] == "in a call"
        await ws.close()

    run(server, unique, scenario)


def test_holding_a_stream_makes_you_online(sqlite_server: HomeserverProcess, unique: str
                                           ) -> None:
    async def scenario(alice: Session) -> None:
        bob = Session(sqlite_server, alice.http,
                      await _register(alice.http, alice.base, unique + "b"))
        room = await alice.create_room()
        await _call(alice.http, "POST", f"{alice.base}/_matrix/client/v3/join/{room}",
                    bob.token, {})
        alice_id = (await _call(alice.http, "GET",
                                f"{alice.base}/_matrix/client/v3/account/whoami",
                                alice.token))["user_id"]
        ws = await alice.stream()
        await receive_frame(ws)
        status = await _call(alice.http, "GET",
                             f"{alice.base}/_matrix/client/v3/presence/{alice_id}/status",
                             bob.token)
        assert status["presence"] == "online" and status["currently_active"] is True
        await ws.close()

    run(sqlite_server, unique, scenario)
