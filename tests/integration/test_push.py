"""Push rules and unread notification counts, end to end on both databases."""

from __future__ import annotations

import asyncio
import threading
import time
from http.client import HTTPException
from typing import Any

import nio
import pytest

from tests.harness import HomeserverProcess, http_json
from tests.integration.sessions import ok, q, raw, register, sync, sync_until

RULES = "/pushrules/global"


def counts(response: dict[str, Any], room_id: str) -> tuple[int, int]:
    room = response["rooms"]["join"][room_id]
    unread = room["unread_notifications"]
    return unread["notification_count"], unread["highlight_count"]


def has_event(event_id: str, room_id: str) -> Any:
    def check(response: dict[str, Any]) -> bool:
        room = response["rooms"]["join"].get(room_id)
        return room is not None and any(e["event_id"] == event_id
                                        for e in room["timeline"]["events"])
    return check


class Watcher:
    """A user's incremental /sync, reading the counts from the response that
    carries an event (spec: the new count is in the same /sync as the event)."""

    def __init__(self, client: nio.AsyncClient, room_id: str) -> None:
        self.client = client
        self.room_id = room_id
        self.token: str | None = None

    async def start(self) -> tuple[int, int]:
        response = await sync(self.client)
        self.token = response["next_batch"]
        return counts(response, self.room_id)

    async def counts_with(self, event_id: str) -> tuple[int, int]:
        response, _ = await sync_until(self.client, self.token, has_event(event_id, self.room_id))
        self.token = response["next_batch"]
        return counts(response, self.room_id)

    async def counts_now(self) -> tuple[int, int]:
        response = await sync(self.client, self.token)
        self.token = response["next_batch"]
        return counts(response, self.room_id)


async def send(client: nio.AsyncClient, room_id: str, content: dict[str, Any],
               event_type: str = "m.room.message") -> str:
    response = await client.room_send(room_id, event_type, content)
    assert isinstance(response, nio.RoomSendResponse), response
    return response.event_id


def text(body: str, msgtype: str = "m.text", **extra: Any) -> dict[str, Any]:
    return {"msgtype": msgtype, "body": body, **extra}


async def receipt(client: nio.AsyncClient, room_id: str, event_id: str,
                  receipt_type: str = "m.read") -> None:
    status, body = await raw(client, "POST",
                             f"/rooms/{q(room_id)}/receipt/{receipt_type}/{q(event_id)}", {})
    assert status == 200, body


async def three_member_room(server: HomeserverProcess, unique: str
                            ) -> tuple[nio.AsyncClient, nio.AsyncClient, nio.AsyncClient, str]:
    alice = await register(server, f"{unique}a")
    bob = await register(server, f"{unique}b")
    carol = await register(server, f"{unique}c")
    created = await alice.room_create(preset=nio.RoomPreset.public_chat, name="push")
    assert isinstance(created, nio.RoomCreateResponse), created
    for member in (bob, carol):
        joined = await member.join(created.room_id)
        assert isinstance(joined, nio.JoinResponse), joined
    return alice, bob, carol, created.room_id


def test_counts_mentions_and_rules(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice, bob, carol, room = await three_member_room(server, unique)
        display = f"Queen Of Hearts {unique}"
        assert isinstance(await alice.set_displayname(display), nio.ProfileSetDisplayNameResponse)
        try:
            watch = Watcher(alice, room)
            assert await watch.start() == (0, 0)
            # .m.rule.message: notify, no highlight.
            assert await watch.counts_with(await send(bob, room, text("hello"))) == (1, 0)
            # .m.rule.suppress_notices.
            assert await watch.counts_with(
                await send(bob, room, text("beep", "m.notice"))) == (1, 0)
            # .m.rule.is_user_mention.
            mention = text("hey", **{"m.mentions": {"user_ids": [alice.user_id]}})
            assert await watch.counts_with(await send(bob, room, mention)) == (2, 1)
            # .m.rule.contains_display_name (legacy: no m.mentions).
            legacy = text(f"tea, {display}?")
            assert await watch.counts_with(await send(bob, room, legacy)) == (3, 2)
            # With m.mentions the legacy body rules are off.
            modern = text(f"tea, {display}?", **{"m.mentions": {}})
            assert await watch.counts_with(await send(bob, room, modern)) == (4, 2)
            # A user's own events never notify them.
            assert await watch.counts_with(await send(alice, room, text(display))) == (4, 2)
            # Disabling .m.rule.message stops counting messages.
            await ok(alice, "PUT", f"{RULES}/underride/.m.rule.message/enabled",
                     {"enabled": False})
            assert await watch.counts_with(await send(bob, room, text("more"))) == (4, 2)
            # A custom content rule (word match on the body).
            await ok(alice, "PUT", f"{RULES}/content/cake",
                     {"pattern": "cake", "actions": ["notify", {"set_tweak": "highlight"}]})
            assert await watch.counts_with(
                await send(carol, room, text("I like cake!"))) == (5, 3)
            assert await watch.counts_with(await send(carol, room, text("cakes"))) == (5, 3)
            # Bob was notified of the others' messages, not of his own or of joins.
            bob_watch = Watcher(bob, room)
            assert await bob_watch.start() == (3, 0)
        finally:
            for client in (alice, bob, carol):
                await client.close()

    asyncio.run(scenario())


def test_read_receipts_reset_counts(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice, bob, carol, room = await three_member_room(server, unique)
        try:
            watch = Watcher(alice, room)
            await watch.start()
            first = await send(bob, room, text("one"))
            await send(bob, room, text("two", **{"m.mentions": {"user_ids": [alice.user_id]}}))
            last = await send(carol, room, text("three"))
            assert await watch.counts_with(last) == (3, 1)
            await receipt(alice, room, first)
            assert await watch.counts_now() == (2, 1)
            await receipt(alice, room, last)
            assert await watch.counts_now() == (0, 0)
            newest = await send(bob, room, text("four"))
            assert await watch.counts_with(newest) == (1, 0)
            await receipt(alice, room, newest, "m.read.private")
            assert await watch.counts_now() == (0, 0)
        finally:
            for client in (alice, bob, carol):
                await client.close()

    asyncio.run(scenario())


def test_invite_notification_is_not_unread_after_joining(server: HomeserverProcess,
                                                         unique: str) -> None:
    async def scenario() -> None:
        alice = await register(server, f"{unique}a")
        bob = await register(server, f"{unique}b")
        try:
            created = await bob.room_create(name="dm")
            assert isinstance(created, nio.RoomCreateResponse), created
            invited = await bob.room_invite(created.room_id, alice.user_id)
            assert isinstance(invited, nio.RoomInviteResponse), invited
            assert isinstance(await alice.join(created.room_id), nio.JoinResponse)
            watch = Watcher(alice, created.room_id)
            assert await watch.start() == (0, 0)
            # Two members: .m.rule.room_one_to_one.
            sent = await send(bob, created.room_id, text("hi"))
            assert await watch.counts_with(sent) == (1, 0)
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(scenario())


# The REST API ------------------------------------------------------------------

def test_pushrules_round_trips(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice = await register(server, f"{unique}a")
        try:
            everything = await ok(alice, "GET", "/pushrules/")
            ruleset = everything["global"]
            assert set(ruleset) == {"override", "content", "room", "sender", "underride"}
            assert ruleset["override"][0] == {"rule_id": ".m.rule.master", "default": True,
                                              "enabled": False, "conditions": [],
                                              "actions": []}
            assert ruleset["content"][0]["pattern"] == f"{unique}a"
            assert await ok(alice, "GET", f"{RULES}/") == ruleset

            cake = {"pattern": "cake", "actions": ["notify"]}
            await ok(alice, "PUT", f"{RULES}/content/cake", cake)
            assert await ok(alice, "GET", f"{RULES}/content/cake") == {
                "rule_id": "cake", "default": False, "enabled": True, "pattern": "cake",
                "actions": ["notify"]}
            await ok(alice, "PUT", f"{RULES}/content/pie", {"pattern": "pie", "actions": []},
                     query={"before": "cake"})
            await ok(alice, "PUT", f"{RULES}/content/tart", {"pattern": "tart", "actions": []},
                     query={"after": "cake"})
            content = (await ok(alice, "GET", "/pushrules/"))["global"]["content"]
            assert [r["rule_id"] for r in content] == ["pie", "cake", "tart",
                                                      ".m.rule.contains_user_name"]

            room_rule = f"{RULES}/room/{q('!spam:example.org')}"
            await ok(alice, "PUT", room_rule, {"actions": ["dont_notify"]})
            assert await ok(alice, "GET", room_rule) == {
                "rule_id": "!spam:example.org", "default": False, "enabled": True,
                "actions": []}

            master = f"{RULES}/override/.m.rule.master"
            assert await ok(alice, "GET", f"{master}/enabled") == {"enabled": False}
            await ok(alice, "PUT", f"{master}/enabled", {"enabled": True})
            assert await ok(alice, "GET", f"{master}/enabled") == {"enabled": True}
            message = f"{RULES}/underride/.m.rule.message"
            actions = ["notify", {"set_tweak": "sound", "value": "bing"}]
            await ok(alice, "PUT", f"{message}/actions", {"actions": actions})
            assert await ok(alice, "GET", f"{message}/actions") == {"actions": actions}
            assert (await ok(alice, "GET", message))["default"] is True

            await ok(alice, "DELETE", f"{RULES}/content/cake")
            assert (await raw(alice, "GET", f"{RULES}/content/cake"))[0] == 404
        finally:
            await alice.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("method, path, body, status, errcode", [
    ("PUT", "/content/.mine", {"pattern": "x", "actions": []}, 400, "M_INVALID_PARAM"),
    ("PUT", "/override/.m.rule.master", {"actions": []}, 400, "M_INVALID_PARAM"),
    ("PUT", "/content/a%2Fb", {"pattern": "x", "actions": []}, 400, "M_INVALID_PARAM"),
    ("PUT", "/device/x", {"actions": []}, 400, "M_INVALID_PARAM"),
    ("PUT", "/content/x", {"pattern": "x"}, 400, "M_MISSING_PARAM"),
    ("PUT", "/content/x", {"pattern": "x", "actions": ["explode"]}, 400, "M_INVALID_PARAM"),
    ("PUT", "/override/x", {"actions": [], "conditions": [{}]}, 400, "M_INVALID_PARAM"),
    ("PUT", "/content/x?before=nothing", {"pattern": "x", "actions": []}, 400, "M_UNKNOWN"),
    ("PUT", "/content/x?after=.m.rule.contains_user_name", {"pattern": "x", "actions": []},
     400, "M_UNKNOWN"),
    ("GET", "/content/nothing", None, 404, "M_NOT_FOUND"),
    ("GET", "/content/nothing/enabled", None, 404, "M_NOT_FOUND"),
    ("PUT", "/content/nothing/enabled", {"enabled": True}, 404, "M_NOT_FOUND"),
    ("PUT", "/content/nothing/actions", {"actions": []}, 404, "M_NOT_FOUND"),
    ("PUT", "/override/.m.rule.master/enabled", {}, 400, "M_MISSING_PARAM"),
    ("PUT", "/override/.m.rule.master/enabled", {"enabled": "yes"}, 400, "M_INVALID_PARAM"),
    ("PUT", "/override/.m.rule.master/actions", {"actions": "notify"}, 400,
     "M_INVALID_PARAM"),
    ("DELETE", "/override/.m.rule.master", None, 404, "M_NOT_FOUND"),
    ("DELETE", "/content/nothing", None, 404, "M_NOT_FOUND"),
])
def test_pushrules_errors(sqlite_server: HomeserverProcess, unique: str, method: str,
                          path: str, body: Any, status: int, errcode: str) -> None:
    async def scenario() -> None:
        alice = await register(sqlite_server, f"{unique}a")
        try:
            url = f"{sqlite_server.base_url}/_matrix/client/v3{RULES}{path}"
            got, answer = await asyncio.to_thread(http_json, method, url, body,
                                                  alice.access_token)
            assert (got, answer.get("errcode")) == (status, errcode), answer
            # Nothing changed: the ruleset is still the defaults.
            ruleset = (await ok(alice, "GET", "/pushrules/"))["global"]
            assert all(r["default"] for kind in ruleset.values() for r in kind)
            assert ruleset["override"][0]["enabled"] is False
        finally:
            await alice.close()

    asyncio.run(scenario())


def test_pushrules_need_auth_and_json(sqlite_server: HomeserverProcess, unique: str) -> None:
    base = f"{sqlite_server.base_url}/_matrix/client/v3"
    assert http_json("GET", f"{base}/pushrules/")[0] == 401
    assert http_json("PUT", f"{base}{RULES}/content/x", {"actions": []})[0] == 401

    async def scenario() -> None:
        alice = await register(sqlite_server, f"{unique}a")
        try:
            status, answer = await asyncio.to_thread(
                http_json, "PUT", f"{base}{RULES}/content/x", None, alice.access_token,
                b"{not json")
            assert (status, answer["errcode"]) == (400, "M_NOT_JSON")
        finally:
            await alice.close()

    asyncio.run(scenario())


def test_changes_reach_sync_as_m_push_rules(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice = await register(server, f"{unique}a")
        try:
            first = await sync(alice)
            waiter = asyncio.ensure_future(sync_until(
                alice, first["next_batch"],
                lambda r: any(e["type"] == "m.push_rules"
                              for e in r["account_data"]["events"])))
            await asyncio.sleep(0.2)  # let the long-poll start waiting
            await ok(alice, "PUT", f"{RULES}/sender/{q('@spam:example.org')}",
                     {"actions": []})
            response, _ = await waiter
            event = next(e for e in response["account_data"]["events"]
                         if e["type"] == "m.push_rules")
            assert event["content"] == await ok(alice, "GET", "/pushrules/")
            assert event["content"]["global"]["sender"][0]["rule_id"] == "@spam:example.org"
            # And an initial sync has the latest rules too.
            initial = await sync(alice)
            assert any(e["type"] == "m.push_rules" and e["content"] == event["content"]
                       for e in initial["account_data"]["events"])
        finally:
            await alice.close()

    asyncio.run(scenario())


# Durability ----------------------------------------------------------------------

def test_counts_of_acknowledged_events_survive_kill_9(unique: str) -> None:
    """Push actions commit with their event: after SIGKILL, every acknowledged
    message still counts (and at most the one in flight was added)."""
    server = HomeserverProcess().start()
    try:
        async def setup() -> tuple[str, str, str]:
            alice, bob, carol, room = await three_member_room(server, unique)
            for client in (alice, bob, carol):
                await client.close()
            return alice.access_token, bob.access_token, room

        alice_token, bob_token, room = asyncio.run(setup())
        base = f"{server.base_url}/_matrix/client/v3"
        acked: list[int] = []

        def barrage() -> None:  # Bob sends until the server dies under him
            for i in range(100_000):
                try:
                    status, _ = http_json("PUT", f"{base}/rooms/{q(room)}/send/m.room.message/"
                                          f"t{i}", text(f"m{i}"), bob_token, timeout=5)
                except (OSError, HTTPException):
                    return
                if status != 200:
                    return
                acked.append(i)

        sender = threading.Thread(target=barrage, daemon=True)
        sender.start()
        deadline = time.monotonic() + 10
        while len(acked) < 25 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.kill()
        sender.join(15)
        assert not sender.is_alive() and len(acked) >= 25
        server.start()
        status, response = http_json("GET", f"{base}/sync", token=alice_token)
        assert status == 200
        notifications, highlights = counts(response, room)
        assert len(acked) <= notifications <= len(acked) + 1 and highlights == 0
    finally:
        server.cleanup()
