"""Rate limits on a real server started WITHOUT --disable-rate-limits: a burst
passes, the next request gets 429 M_LIMIT_EXCEEDED with retry_after_ms and a
Retry-After header, and waiting that long is enough."""

from __future__ import annotations

import json
import math
import time
from typing import Any, Iterator
from urllib.parse import quote

import pytest
import yaml

from tests.harness import HomeserverProcess
from tests.integration.rawhttp import RawResponse, raw_request

C = "/_matrix/client/v3"
# Tiny limits so the test is quick; refills slow enough that a loaded machine
# cannot refill a token between two requests of a burst.
LIMITS = {"messages": {"per_second": 0.5, "burst": 4},
          "login": {"per_second": 0.5, "burst": 3},
          "registration": {"per_second": 0.5, "burst": 2}}


def _start(rate_limits: bool) -> HomeserverProcess:
    server = HomeserverProcess(rate_limits=rate_limits)
    config = yaml.safe_load(server.config_path.read_text())
    assert config["rate_limits"]["enabled"] is rate_limits
    config["rate_limits"].update(LIMITS)
    server.config_path.write_text(yaml.safe_dump(config))
    return server.start()


@pytest.fixture(scope="module")
def limited() -> Iterator[HomeserverProcess]:
    server = _start(rate_limits=True)
    yield server
    server.cleanup()


def _call(server: HomeserverProcess, method: str, path: str, body: Any = None,
          token: str | None = None) -> RawResponse:
    raw = json.dumps(body).encode() if body is not None else None
    return raw_request(server.base_url, method, C + path, raw, token=token)


def _register(server: HomeserverProcess, name: str) -> RawResponse:
    return _call(server, "POST", "/register", {"username": name, "password": "pw",
                                               "auth": {"type": "m.login.dummy"}})


def _assert_limited(response: RawResponse) -> float:
    """Check the 429's shape; return the advertised wait in seconds."""
    body = response.json()
    assert response.status == 429, (response.status, body)
    assert body["errcode"] == "M_LIMIT_EXCEEDED"
    wait_ms = body["retry_after_ms"]
    assert isinstance(wait_ms, int) and 0 < wait_ms <= 60_000
    assert int(response.headers["retry-after"]) == max(1, math.ceil(wait_ms / 1000))
    return float(wait_ms) / 1000


def _until_limited(attempt: Any, most: int, answer: int = 200) -> tuple[int, float]:
    """Call `attempt` until it is rate limited: (answers before, wait)."""
    for done in range(most):
        response = attempt()
        if response.status == 429:
            return done, _assert_limited(response)
        assert response.status == answer, (response.status, response.json())
    pytest.fail(f"no 429 after {most} requests")


def test_registration_is_limited_per_ip(limited: HomeserverProcess) -> None:
    names = iter(f"reg{i}" for i in range(100))
    # A UIA round trip without auth is not a registration and costs nothing.
    challenge = _call(limited, "POST", "/register", {"username": "nobody"})
    assert challenge.status == 401 and "flows" in challenge.json()
    done, wait = _until_limited(lambda: _register(limited, next(names)), most=6)
    assert done == 2
    time.sleep(wait + 0.2)
    assert _register(limited, next(names)).status == 200


def test_login_is_limited_per_ip(limited: HomeserverProcess) -> None:
    # Wrong passwords count too: the limit is what stops guessing.
    body = {"type": "m.login.password", "user": "nobody", "password": "wrong"}
    done, wait = _until_limited(lambda: _call(limited, "POST", "/login", body), most=6,
                               answer=403)
    assert done == 3
    time.sleep(wait + 0.2)
    assert _call(limited, "POST", "/login", body).status == 403  # answered, not limited


def _account(server: HomeserverProcess, name: str) -> str:
    response = _register(server, name)
    if response.status == 429:  # the registration bucket is shared by this module's tests
        time.sleep(_assert_limited(response) + 0.2)
        response = _register(server, name)
    assert response.status == 200, response.json()
    return str(response.json()["access_token"])


def test_writes_are_limited_per_user_and_reads_are_not(limited: HomeserverProcess) -> None:
    alice = _account(limited, "alice")
    room = _call(limited, "POST", "/createRoom", {}, token=alice)
    assert room.status == 200
    room_path = f"/rooms/{quote(room.json()['room_id'])}"
    txns = iter(range(1000))

    def send(token: str) -> RawResponse:
        return _call(limited, "PUT", f"{room_path}/send/m.room.message/t{next(txns)}",
                     {"msgtype": "m.text", "body": "hi"}, token=token)

    done, wait = _until_limited(lambda: send(alice), most=8)
    assert done == 3  # createRoom took the first of the 4 tokens
    # State, membership and profile writes share the same bucket.
    state = _call(limited, "PUT", f"{room_path}/state/m.room.topic/", {"topic": "t"}, token=alice)
    _assert_limited(state)
    _assert_limited(_call(limited, "PUT", "/profile/@alice:localhost/displayname",
                          {"displayname": "A"}, token=alice))
    assert _stream_send_error(limited, alice, room.json()["room_id"]) == "M_LIMIT_EXCEEDED"
    # Reads are not limited, and other users have their own bucket.
    for _ in range(5):
        assert _call(limited, "GET", f"{room_path}/messages", token=alice).status == 200
    bob = _account(limited, "bob")
    assert _call(limited, "POST", "/createRoom", {}, token=bob).status == 200
    time.sleep(wait + 0.2)
    assert send(alice).status == 200


def _stream_send_error(server: HomeserverProcess, token: str, room_id: str) -> str | None:
    """A send over the WebSocket stream, which shares the REST writes' bucket."""
    import asyncio

    import aiohttp

    async def send() -> str | None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            ws = await http.ws_connect(server.base_url + "/_guildhall/client/v1/stream",
                                       headers={"Authorization": f"Bearer {token}"})
            await ws.receive_json(timeout=10)
            await ws.send_json({"id": "1", "method": "send", "params": {
                "room_id": room_id, "event_type": "m.room.message", "txn_id": "ws1",
                "content": {"msgtype": "m.text", "body": "hi"}}})
            while (reply := await ws.receive_json(timeout=10)).get("id") != "1":
                pass
            await ws.close()
            error = reply.get("error") or {}
            assert error.get("errcode") != "M_LIMIT_EXCEEDED" or error["retry_after_ms"] > 0
            return error.get("errcode")

    return asyncio.run(send())


def test_disabled_limits_never_answer_429() -> None:
    server = _start(rate_limits=False)
    try:
        token = _account(server, "carol")
        for i in range(12):  # three times the registration and message bursts
            assert _register(server, f"other{i}").status == 200
        room = _call(server, "POST", "/createRoom", {}, token=token).json()["room_id"]
        for i in range(12):
            response = _call(server, "PUT", f"/rooms/{quote(room)}/send/m.room.message/{i}",
                             {"msgtype": "m.text", "body": "hi"}, token=token)
            assert response.status == 200, response.json()
    finally:
        server.cleanup()
