"""Presence with matrix-nio, on both databases: online while syncing, seen by a
room-mate, status messages, set_presence on /sync, who may read it, and the
long-poll wake-up. (The timers are tested on a memory clock in
tests/homeserver/test_presence.py.)"""

from __future__ import annotations

import asyncio

import nio

from tests.harness import HomeserverProcess
from tests.integration.pair import PROMPT_S, Pair, long_poll, settle, with_pair
from tests.integration.sessions import ok, q, raw, refused, register, sync


def presence_of(response: nio.SyncResponse, user_id: str) -> list[nio.PresenceEvent]:
    return [e for e in response.presence_events if e.user_id == user_id]


def test_online_while_syncing_and_seen_by_a_room_mate(server: HomeserverProcess,
                                                      unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, bob = pair.alice, pair.bob
        # Both have synced (make_pair): both online, and each sees the other.
        got = await bob.get_presence(alice.user_id)
        assert isinstance(got, nio.PresenceGetResponse), got
        assert got.presence == "online" and got.currently_active is True
        assert got.last_active_ago is not None and got.last_active_ago < 60_000
        initial = await sync(bob)  # an initial sync has everyone not offline
        senders = {e["sender"]: e["content"] for e in initial["presence"]["events"]}
        assert senders[alice.user_id]["presence"] == "online"
        assert senders[bob.user_id]["presence"] == "online"
        # m.presence carries the profile (registration sets the localpart as name).
        assert senders[alice.user_id]["displayname"] == alice.user_id.split(":")[0][1:]

        # A status message reaches the room-mate's waiting sync at once.
        response, took = await long_poll(bob, lambda: alice.set_presence("online", "at lunch"))
        assert took < PROMPT_S, took
        [event] = presence_of(response, alice.user_id)
        assert (event.presence, event.status_msg) == ("online", "at lunch")
        got = await bob.get_presence(alice.user_id)
        assert isinstance(got, nio.PresenceGetResponse), got
        assert (got.presence, got.status_msg) == ("online", "at lunch")
        answer = await ok(alice, "GET", f"/presence/{q(alice.user_id)}/status")
        assert answer["status_msg"] == "at lunch" and answer["presence"] == "online"
        assert set(answer) == {"presence", "last_active_ago", "currently_active", "status_msg"}

        # Clearing it.
        response, took = await long_poll(bob, lambda: alice.set_presence("online"))
        assert took < PROMPT_S, took
        [event] = presence_of(response, alice.user_id)
        assert event.status_msg is None
        answer = await ok(alice, "GET", f"/presence/{q(alice.user_id)}/status")
        assert "status_msg" not in answer

    asyncio.run(with_pair(server, unique, scenario))


def test_set_presence_on_sync(server: HomeserverProcess, unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, bob = pair.alice, pair.bob
        # Going unavailable by syncing so (a client in the background) wakes Bob too.
        response, took = await long_poll(
            bob, lambda: raw(alice, "GET", "/sync", query={"timeout": 0,
                                                           "set_presence": "unavailable"}))
        assert took < PROMPT_S, took
        assert [e.presence for e in presence_of(response, alice.user_id)] == ["unavailable"]
        status = await alice.get_presence(alice.user_id)
        assert isinstance(status, nio.PresenceGetResponse), status
        assert status.presence == "unavailable"
        answer = await raw(alice, "GET", "/sync", query={"set_presence": "away"})
        assert answer[0] == 400 and answer[1]["errcode"] == "M_INVALID_PARAM", answer

        # Someone who only ever syncs with set_presence=offline never shows online.
        carol = await register(server, f"{unique}c")
        try:
            await ok(carol, "GET", "/sync", query={"timeout": 0, "set_presence": "offline"})
            room = await carol.room_create(name="with carol", invite=[alice.user_id])
            assert isinstance(room, nio.RoomCreateResponse), room
            await ok(alice, "POST", f"/rooms/{q(room.room_id)}/join", {})
            got = await alice.get_presence(carol.user_id)
            assert isinstance(got, nio.PresenceGetResponse), got
            assert got.presence == "offline"
        finally:
            await carol.close()

    asyncio.run(with_pair(server, unique, scenario))


def test_who_may_read_and_set_presence(server: HomeserverProcess, unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, bob = pair.alice, pair.bob
        carol = await register(server, f"{unique}c")
        try:
            # No room in common: 403, either way.
            await refused(carol, "GET", f"/presence/{q(alice.user_id)}/status")
            got = await alice.get_presence(carol.user_id)
            assert isinstance(got, nio.PresenceGetError), got
            # Oneself, always.
            got = await carol.get_presence(carol.user_id)
            assert isinstance(got, nio.PresenceGetResponse), got
            # Setting: only your own.
            await refused(bob, "PUT", f"/presence/{q(alice.user_id)}/status",
                          {"presence": "offline"})
            for body in ({"presence": "busy"}, {"presence": "online", "status_msg": 5}):
                await refused(alice, "PUT", f"/presence/{q(alice.user_id)}/status", body,
                              status=400, errcode="M_INVALID_PARAM")
            await refused(alice, "PUT", f"/presence/{q(alice.user_id)}/status",
                          {"status_msg": "x"}, status=400, errcode="M_MISSING_PARAM")
            # Carol's presence reaches nobody: nobody shares a room with her.
            set_ = await carol.set_presence("online", "lonely")
            assert isinstance(set_, nio.PresenceSetResponse), set_
            response = await bob.sync(timeout=0)
            assert isinstance(response, nio.SyncResponse), response
            assert not presence_of(response, carol.user_id)
        finally:
            await carol.close()

    asyncio.run(with_pair(server, unique, scenario))


def test_new_room_mates_see_each_other(server: HomeserverProcess, unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, bob = pair.alice, pair.bob
        carol = await register(server, f"{unique}c")
        try:
            await carol.sync(timeout=0)  # online, sharing no room with anyone
            await carol.set_presence("online", "new here")
            await settle(alice, bob, carol)
            # Bob joins Carol's room: his next sync has Carol's presence...
            room = await carol.room_create(name="carol's", invite=[bob.user_id])
            assert isinstance(room, nio.RoomCreateResponse), room
            joined = await bob.join(room.room_id)
            assert isinstance(joined, nio.JoinResponse), joined
            response = await bob.sync(timeout=0)
            assert isinstance(response, nio.SyncResponse), response
            assert [(e.presence, e.status_msg) for e in presence_of(response, carol.user_id)] \
                == [("online", "new here")]
            # ... and Carol joining Alice's room shows her to Alice.
            invited = await alice.room_invite(pair.room_id, carol.user_id)
            assert isinstance(invited, nio.RoomInviteResponse), invited
            response, took = await long_poll(alice, lambda: carol.join(pair.room_id))
            assert took < PROMPT_S, took
            seen = presence_of(response, carol.user_id)
            if not seen:  # the join and the presence it republishes are two writes
                more = await alice.sync(timeout=5000)
                assert isinstance(more, nio.SyncResponse), more
                seen = presence_of(more, carol.user_id)
            assert [(e.presence, e.status_msg) for e in seen] == [("online", "new here")]
        finally:
            await carol.close()

    asyncio.run(with_pair(server, unique, scenario))
