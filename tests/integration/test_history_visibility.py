"""History visibility (spec: room history visibility) on both databases.

Every read path — /messages, /context, /event, /sync timelines, /state and
/members — must hide what a user may not see: events from before their join
(`joined`) or invite (`invited`), everything after they left, and all of a
room they were never in unless it is `world_readable`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nio
import pytest

from tests.harness import HomeserverProcess
from tests.integration.sessions import (
    all_messages, bodies, ok, q, raw, register, send_text, sync, sync_until, timeline,
)

# What Bob, invited after "m1" and joined after "m2", may read of m1..m3.
VISIBLE_WHILE_JOINED = {
    "shared": ["m1", "m2", "m3"],
    "invited": ["m2", "m3"],
    "joined": ["m3"],
}


def run(server: HomeserverProcess, names: list[str], scenario: Any) -> None:
    async def main() -> None:
        clients = [await register(server, name) for name in names]
        try:
            await asyncio.wait_for(scenario(*clients), 60)
        finally:
            for client in clients:
                await client.close()

    asyncio.run(main())


async def create(client: nio.AsyncClient, history: str, **kwargs: Any) -> str:
    response = await client.room_create(initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": history}}],
        **kwargs)
    assert isinstance(response, nio.RoomCreateResponse), response
    return response.room_id


async def set_visibility(client: nio.AsyncClient, room_id: str, visibility: str) -> None:
    await ok(client, "PUT", f"/rooms/{q(room_id)}/state/m.room.history_visibility",
             {"history_visibility": visibility})


async def status(client: nio.AsyncClient, path: str, query: dict[str, Any] | None = None
                 ) -> int:
    got, _ = await raw(client, "GET", path, query=query)
    return got


def message_bodies(events: list[dict[str, Any]]) -> list[str]:
    return [b for b in bodies(events) if b is not None]


@pytest.mark.parametrize("visibility", ["shared", "invited", "joined"])
def test_member_sees_history_from_the_right_point(server: HomeserverProcess, unique: str,
                                                  visibility: str) -> None:
    expected = VISIBLE_WHILE_JOINED[visibility]

    async def scenario(alice: nio.AsyncClient, bob: nio.AsyncClient, carol: nio.AsyncClient,
                       dave: nio.AsyncClient) -> None:
        room_id = await create(alice, visibility, name="before")
        r = f"/rooms/{q(room_id)}"
        ids = {"m1": await send_text(alice, room_id, "m1")}
        bob_before = (await sync(bob))["next_batch"]
        await ok(alice, "POST", f"{r}/invite", {"user_id": bob.user_id})
        ids["m2"] = await send_text(alice, room_id, "m2")
        # Invited is not joined: "a user needs to join a room to view events in that room".
        for path in ("messages", "state", "members", "state/m.room.name",
                     f"event/{q(ids['m2'])}", f"context/{q(ids['m2'])}"):
            assert await status(bob, f"{r}/{path}") == 403, path
        joined = await bob.join(room_id)
        assert isinstance(joined, nio.JoinResponse), joined
        ids["m3"] = await send_text(alice, room_id, "m3")
        hidden = [m for m in ids if m not in expected]

        # /messages, paged through.
        assert message_bodies(await all_messages(bob, room_id, limit=3)) == expected
        # /sync: an initial sync, and an incremental one spanning invite and join.
        assert message_bodies(timeline(await sync(bob), room_id)) == expected
        spanning = await sync(bob, bob_before)
        assert message_bodies(timeline(spanning, room_id)) == expected
        limited = await sync(bob, sync_filter={"room": {"timeline": {"limit": 2}}})
        assert set(message_bodies(timeline(limited, room_id))) <= set(expected)
        # /event and /context.
        for name, event_id in ids.items():
            got = await status(bob, f"{r}/event/{q(event_id)}")
            assert got == (200 if name in expected else 404), (name, got)
            got = await status(bob, f"{r}/context/{q(event_id)}")
            assert got == (200 if name in expected else 404), (name, got)
        context = await ok(bob, "GET", f"{r}/context/{q(ids['m3'])}", query={"limit": 20})
        assert message_bodies(context["events_before"]) == expected[:-1][::-1]
        # Everything else about the room is readable while joined.
        assert (await ok(bob, "GET", f"{r}/state/m.room.name"))["name"] == "before"

        # Carol was never a member: nothing at all.
        for path in ("messages", "state", "members", "joined_members", "state/m.room.name",
                     f"event/{q(ids['m3'])}", f"context/{q(ids['m3'])}"):
            assert await status(carol, f"{r}/{path}") == 403, path
        assert room_id not in str((await sync(carol))["rooms"])

        # Bob leaves; what happens next is not his to read.
        joined_token = (await sync(bob))["next_batch"]
        await ok(bob, "POST", f"{r}/leave", {})
        ids["m4"] = await send_text(alice, room_id, "m4")
        await ok(alice, "PUT", f"{r}/state/m.room.name", {"name": "after"})
        await ok(alice, "POST", f"{r}/invite", {"user_id": dave.user_id})
        assert isinstance(await dave.join(room_id), nio.JoinResponse)
        after_leave = message_bodies(await all_messages(bob, room_id, limit=4))
        assert after_leave == expected, "after leaving: up to the leave, nothing after"
        assert await status(bob, f"{r}/event/{q(ids['m4'])}") == 404
        assert await status(bob, f"{r}/context/{q(ids['m4'])}") == 404
        for name in hidden:
            assert await status(bob, f"{r}/event/{q(ids[name])}") == 404
        own_leave = [e for e in await all_messages(bob, room_id)
                     if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
        assert own_leave[-1]["content"]["membership"] == "leave", "he sees his own leave"
        # State and members as they were when he left.
        assert (await ok(bob, "GET", f"{r}/state/m.room.name"))["name"] == "before"
        state = await ok(bob, "GET", f"{r}/state")
        assert [e["content"]["name"] for e in state if e["type"] == "m.room.name"] == ["before"]
        members = {m["state_key"]: m["content"]["membership"]
                   for m in (await ok(bob, "GET", f"{r}/members"))["chunk"]}
        assert dave.user_id not in members and members[bob.user_id] == "leave"
        # His sync shows the room as left, with his leave and without m4.
        left, _ = await sync_until(bob, joined_token, lambda x: room_id in x["rooms"]["leave"])
        events = timeline(left, room_id, "leave")
        assert "m4" not in message_bodies(events)
        assert any(e["type"] == "m.room.member" and e["state_key"] == bob.user_id
                   and e["content"]["membership"] == "leave" for e in events)
        assert "after" not in str(left["rooms"]["leave"][room_id])

    run(server, [f"{unique}a", f"{unique}b", f"{unique}c", f"{unique}d"], scenario)


def test_visibility_applies_at_the_time_each_event_was_sent(server: HomeserverProcess,
                                                            unique: str) -> None:
    async def scenario(alice: nio.AsyncClient, bob: nio.AsyncClient) -> None:
        room_id = await create(alice, "shared", name="changing")
        await send_text(alice, room_id, "shared era")
        await set_visibility(alice, room_id, "joined")
        await send_text(alice, room_id, "joined era")
        await set_visibility(alice, room_id, "invited")
        await send_text(alice, room_id, "invited era, before the invite")
        await ok(alice, "POST", f"/rooms/{q(room_id)}/invite", {"user_id": bob.user_id})
        await send_text(alice, room_id, "invited era, after the invite")
        assert isinstance(await bob.join(room_id), nio.JoinResponse)
        await send_text(alice, room_id, "after the join")
        want = ["shared era", "invited era, after the invite", "after the join"]
        history = await all_messages(bob, room_id)
        assert message_bodies(history) == want
        assert message_bodies(timeline(await sync(bob), room_id)) == want
        # Each change of visibility is itself visible if either side of it allows.
        changes = [e["content"]["history_visibility"] for e in history
                   if e["type"] == "m.room.history_visibility"]
        assert changes == ["shared", "joined"], changes

    run(server, [f"{unique}a", f"{unique}b"], scenario)


def test_world_readable_rooms_are_readable_by_anyone(server: HomeserverProcess,
                                                     unique: str) -> None:
    async def scenario(alice: nio.AsyncClient, carol: nio.AsyncClient) -> None:
        room_id = await create(alice, "joined", name="open book")
        r = f"/rooms/{q(room_id)}"
        secret = await send_text(alice, room_id, "before it opened")
        await set_visibility(alice, room_id, "world_readable")
        public = await send_text(alice, room_id, "for everyone")
        # Carol never joined: she reads what was sent while world_readable, nothing earlier.
        history = await all_messages(carol, room_id)
        assert message_bodies(history) == ["for everyone"]
        opened = [e for e in history if e["type"] == "m.room.history_visibility"]
        assert [e["content"]["history_visibility"] for e in opened] == ["world_readable"]
        assert (await ok(carol, "GET", f"{r}/event/{q(public)}"))["content"]["body"] == \
            "for everyone"
        assert await status(carol, f"{r}/event/{q(secret)}") == 404
        assert await status(carol, f"{r}/context/{q(secret)}") == 404
        context = await ok(carol, "GET", f"{r}/context/{q(public)}", query={"limit": 10})
        assert "before it opened" not in message_bodies(context["events_before"])
        assert (await ok(carol, "GET", f"{r}/state/m.room.name"))["name"] == "open book"
        state_types = {e["type"] for e in await ok(carol, "GET", f"{r}/state")}
        assert {"m.room.create", "m.room.name", "m.room.history_visibility"} <= state_types
        members = (await ok(carol, "GET", f"{r}/members"))["chunk"]
        assert [m["state_key"] for m in members] == [alice.user_id]
        # Reading is not joining.
        got, _ = await raw(carol, "PUT", f"{r}/send/m.room.message/w1",
                           {"msgtype": "m.text", "body": "hi"})
        assert got == 403
        assert room_id not in str((await sync(carol))["rooms"])
        # Closed again: a stranger is refused outright.
        await set_visibility(alice, room_id, "shared")
        await send_text(alice, room_id, "closed again")
        for path in ("messages", "state", "members", f"event/{q(public)}"):
            assert await status(carol, f"{r}/{path}") == 403, path

    run(server, [f"{unique}a", f"{unique}c"], scenario)


def test_kicked_and_banned_users_read_up_to_their_removal(server: HomeserverProcess,
                                                          unique: str) -> None:
    async def scenario(alice: nio.AsyncClient, bob: nio.AsyncClient) -> None:
        room_id = await create(alice, "joined", name="strict",
                               visibility=nio.RoomVisibility.public)
        r = f"/rooms/{q(room_id)}"
        await send_text(alice, room_id, "before bob")
        assert isinstance(await bob.join(room_id), nio.JoinResponse)
        await send_text(alice, room_id, "with bob")
        await ok(alice, "POST", f"{r}/kick", {"user_id": bob.user_id})
        await send_text(alice, room_id, "after the kick")
        assert message_bodies(await all_messages(bob, room_id)) == ["with bob"]
        assert isinstance(await bob.join(room_id), nio.JoinResponse)
        await send_text(alice, room_id, "back again")
        await ok(alice, "POST", f"{r}/ban", {"user_id": bob.user_id})
        await send_text(alice, room_id, "after the ban")
        assert message_bodies(await all_messages(bob, room_id)) == ["with bob", "back again"]
        # Forgetting does not open anything up.
        await ok(bob, "POST", f"{r}/forget", {})
        got, page = await raw(bob, "GET", f"{r}/messages", query={"dir": "b", "limit": 50})
        assert got == 403 or (got == 200 and "after the ban" not in message_bodies(
            page["chunk"])), (got, page)

    run(server, [f"{unique}a", f"{unique}b"], scenario)
