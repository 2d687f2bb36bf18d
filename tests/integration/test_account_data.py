"""Global and per-room account data, on both databases: round trips, /sync, the
long-poll wake-up, and the 400/403/404/405 answers."""

from __future__ import annotations

import asyncio

import nio

from tests.harness import HomeserverProcess
from tests.integration.pair import PROMPT_S, Pair, long_poll, room_account_data, with_pair
from tests.integration.sessions import ok, q, raw, refused


def test_account_data_round_trips_and_shows_in_sync(server: HomeserverProcess,
                                                    unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, room = pair.alice, pair.room_id
        me = q(alice.user_id)
        direct = {pair.bob.user_id: [room]}

        response, took = await long_poll(
            alice, lambda: ok(alice, "PUT", f"/user/{me}/account_data/m.direct", direct))
        assert took < PROMPT_S, took
        assert [(e.type, e.content) for e in response.account_data_events] == \
            [("m.direct", direct)]
        listed = await alice.list_direct_rooms()
        assert isinstance(listed, nio.DirectRoomsResponse), listed
        assert listed.rooms == direct
        assert await ok(alice, "GET", f"/user/{me}/account_data/m.direct") == direct

        settings = {"theme": "dark", "nested": {"list": [1, 2]}}
        path = f"/user/{me}/rooms/{q(room)}/account_data/org.example.settings"
        response, took = await long_poll(alice, lambda: ok(alice, "PUT", path, settings))
        assert took < PROMPT_S, took
        [event] = room_account_data(response, room)
        assert isinstance(event, nio.UnknownAccountDataEvent), event
        assert (event.type, event.content) == ("org.example.settings", settings)
        assert await ok(alice, "GET", path) == settings
        # Room and global account data are apart.
        await refused(alice, "GET", f"/user/{me}/account_data/org.example.settings",
                      status=404, errcode="M_NOT_FOUND")
        # A rewrite replaces the content.
        await ok(alice, "PUT", path, {"theme": "light"})
        assert await ok(alice, "GET", path) == {"theme": "light"}

    asyncio.run(with_pair(server, unique, scenario))


def test_account_data_errors(server: HomeserverProcess, unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, bob, room = pair.alice, pair.bob, q(pair.room_id)
        me = q(alice.user_id)
        await ok(alice, "PUT", f"/user/{me}/account_data/org.example.x", {"a": 1})
        # Owner only, reading or writing.
        for path in (f"/user/{me}/account_data/org.example.x",
                     f"/user/{me}/rooms/{room}/account_data/org.example.x"):
            await refused(bob, "GET", path)
            await refused(bob, "PUT", path, {"a": 2})
        assert await ok(alice, "GET", f"/user/{me}/account_data/org.example.x") == {"a": 1}
        # Unset.
        await refused(alice, "GET", f"/user/{me}/account_data/org.example.unset", status=404,
                      errcode="M_NOT_FOUND")
        await refused(alice, "GET", f"/user/{me}/rooms/{room}/account_data/org.example.x",
                      status=404, errcode="M_NOT_FOUND")
        listed = await bob.list_direct_rooms()
        assert isinstance(listed, nio.DirectRoomsErrorResponse), listed
        # Server-managed types.
        await refused(alice, "PUT", f"/user/{me}/rooms/{room}/account_data/m.fully_read",
                      {"event_id": "$x"}, status=405, errcode="M_BAD_JSON")
        await refused(alice, "PUT", f"/user/{me}/account_data/m.push_rules", {}, status=405,
                      errcode="M_BAD_JSON")
        # Content must be an object; the room ID must be one.
        for body in ([1, 2], "text", 5):
            await refused(alice, "PUT", f"/user/{me}/account_data/org.example.x", body,
                          status=400, errcode="M_BAD_JSON")
        status, answer = await raw(alice, "PUT", f"/user/{me}/account_data/org.example.x")
        assert (status, answer["errcode"]) == (400, "M_NOT_JSON"), answer
        await refused(alice, "PUT", f"/user/{me}/rooms/{q('nope')}/account_data/org.example.x",
                      {"a": 1}, status=400, errcode="M_INVALID_PARAM")
        assert await ok(alice, "GET", f"/user/{me}/account_data/org.example.x") == {"a": 1}

    asyncio.run(with_pair(server, unique, scenario))
