"""Multi-user sessions with matrix-nio on both databases: invites, concurrent
chat, pagination, context, redactions, kicks and bans, power levels, profiles,
leave and forget, aliases, join rules, room versions and /createRoom options."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import nio

from tests.harness import HomeserverProcess
from tests.integration.sessions import (
    all_messages, ok, q, raw, refused, register, send_text, sync, sync_until, timeline,
)

Scenario = Callable[[list[nio.AsyncClient]], Awaitable[None]]


def run(server: HomeserverProcess, names: list[str], scenario: Scenario,
        seconds: float = 90) -> None:
    """Register the users, run the scenario with a hard time bound, close the clients."""
    async def main() -> None:
        clients = [await register(server, name) for name in names]
        try:
            await asyncio.wait_for(scenario(clients), seconds)
        finally:
            for client in clients:
                await client.close()

    asyncio.run(main())


async def create(client: nio.AsyncClient, **kwargs: Any) -> str:
    response = await client.room_create(**kwargs)
    assert isinstance(response, nio.RoomCreateResponse), response
    return response.room_id


async def join(client: nio.AsyncClient, room: str) -> None:
    response = await client.join(room)
    assert isinstance(response, nio.JoinResponse), response


async def invite_and_join(inviter: nio.AsyncClient, room_id: str,
                          *invitees: nio.AsyncClient) -> None:
    for invitee in invitees:
        response = await inviter.room_invite(room_id, invitee.user_id)
        assert isinstance(response, nio.RoomInviteResponse), response
        await join(invitee, room_id)


async def state_content(client: nio.AsyncClient, room_id: str, event_type: str,
                        state_key: str = "") -> Any:
    return await ok(client, "GET", f"/rooms/{q(room_id)}/state/{event_type}/{q(state_key)}")


# Invites and concurrent chat ------------------------------------------------------


def test_invite_then_three_users_chat_with_concurrent_long_polls(
        server: HomeserverProcess, unique: str) -> None:
    per_user = 15

    async def scenario(users: list[nio.AsyncClient]) -> None:
        alice, bob, carol = users
        room_id = await create(alice, name="three")
        bob_first = await sync(bob)
        await ok(alice, "POST", f"/rooms/{q(room_id)}/invite", {"user_id": bob.user_id})
        got, _ = await sync_until(bob, bob_first["next_batch"],
                                  lambda r: room_id in r["rooms"]["invite"])
        stripped = got["rooms"]["invite"][room_id]["invite_state"]["events"]
        kinds = {(e["type"], e["state_key"]): e for e in stripped}
        assert ("m.room.create", "") in kinds
        assert kinds[("m.room.member", alice.user_id)]["content"]["membership"] == "join"
        assert kinds[("m.room.member", bob.user_id)]["content"]["membership"] == "invite"
        assert kinds[("m.room.member", bob.user_id)]["sender"] == alice.user_id
        assert kinds[("m.room.name", "")]["content"]["name"] == "three"
        assert all(set(e) == {"type", "state_key", "sender", "content"} for e in stripped)
        assert room_id not in got["rooms"]["join"]
        parsed = await bob.sync(timeout=0, since=bob_first["next_batch"])  # nio reads it too
        assert isinstance(parsed, nio.SyncResponse), parsed
        assert {e.state_key for e in parsed.rooms.invite[room_id].invite_state
                if isinstance(e, nio.InviteMemberEvent)} == {alice.user_id, bob.user_id}
        # An invitee cannot read the room yet, and a stranger cannot either.
        await refused(bob, "GET", f"/rooms/{q(room_id)}/joined_members")
        await refused(carol, "GET", f"/rooms/{q(room_id)}/messages")
        await join(bob, room_id)
        await invite_and_join(alice, room_id, carol)
        starts = [(await sync(u))["next_batch"] for u in users]

        sent: dict[str, list[tuple[str, str, str]]] = {}  # user -> (txn, event_id, body)

        async def talk(user: nio.AsyncClient) -> None:
            sent[user.user_id] = []
            for i in range(per_user):
                txn = f"{user.user_id}-{i}"
                body = f"{user.user_id} says {i}"
                event_id = await send_text(user, room_id, body, txn)
                sent[user.user_id].append((txn, event_id, body))

        async def listen(user: nio.AsyncClient, since: str) -> list[dict[str, Any]]:
            received: list[dict[str, Any]] = []
            token = since
            while sum(e["type"] == "m.room.message" for e in received) < 3 * per_user:
                response = await sync(user, token, timeout=5000)
                token = response["next_batch"]
                room = response["rooms"]["join"].get(room_id)
                if room:
                    assert not room["timeline"]["limited"]
                    received += room["timeline"]["events"]
            return received

        listeners = [asyncio.ensure_future(listen(u, s)) for u, s in zip(users, starts)]
        await asyncio.sleep(0.2)  # let the long-polls park before the first send
        await asyncio.gather(*(talk(u) for u in users))
        streams = await asyncio.gather(*listeners)

        by_id = {eid: (sender, txn, body) for sender, items in sent.items()
                 for txn, eid, body in items}
        orders = []
        for user, events in zip(users, streams):
            messages = [e for e in events if e["type"] == "m.room.message"]
            ids = [e["event_id"] for e in messages]
            assert len(ids) == len(set(ids)) == 3 * per_user, "a message arrived twice or never"
            assert set(ids) == set(by_id)
            for sender, items in sent.items():  # each sender's messages in send order
                assert [e["event_id"] for e in messages if e["sender"] == sender] == \
                    [eid for _, eid, _ in items]
            for event in messages:
                sender, txn, body = by_id[event["event_id"]]
                assert event["content"]["body"] == body
                if sender == user.user_id:
                    assert event["unsigned"].get("transaction_id") == txn
                else:
                    assert "transaction_id" not in event["unsigned"]
            orders.append(ids)
        assert orders[0] == orders[1] == orders[2], "users disagree on the timeline order"
        # The sender's other device does not get the txnId either.
        other = nio.AsyncClient(server.base_url, alice.user_id)
        try:
            login = await other.login("correct horse", device_name="second")
            assert isinstance(login, nio.LoginResponse), login
            assert other.device_id != alice.device_id
            mine = [e for e in await all_messages(other, room_id)
                    if e["sender"] == alice.user_id and e["type"] == "m.room.message"]
            assert len(mine) == per_user
            assert all("transaction_id" not in e["unsigned"] for e in mine)
            assert all("transaction_id" not in e["unsigned"]
                       for e in timeline(await sync(other), room_id))
        finally:
            await other.close()
        # /messages agrees with /sync, and shows the txnId only to its sender.
        for user in users:
            history = await all_messages(user, room_id)
            assert [e["event_id"] for e in history if e["type"] == "m.room.message"] == orders[0]
            for event in history:
                if event["type"] == "m.room.message":
                    own = by_id[event["event_id"]][0] == user.user_id
                    assert ("transaction_id" in event["unsigned"]) is own

    run(server, [f"{unique}a", f"{unique}b", f"{unique}c"], scenario)


# Pagination and context --------------------------------------------------------------


def test_paginate_hundreds_of_events_both_ways_and_context(server: HomeserverProcess,
                                                            unique: str) -> None:
    total = 300

    async def scenario(users: list[nio.AsyncClient]) -> None:
        alice, bob = users
        room_id = await create(alice, name="long")
        await invite_and_join(alice, room_id, bob)
        sent: list[str] = []
        for i in range(total):
            sender = alice if i % 3 else bob
            sent.append(await send_text(sender, room_id, f"m{i}"))
        by_id = {eid: i for i, eid in enumerate(sent)}

        # Backwards from the live end, through uneven pages, to the room's creation.
        pages: list[list[dict[str, Any]]] = []
        token: str | None = None
        live_more: list[str] = []
        for page_no in range(100):
            query: dict[str, Any] = {"dir": "b", "limit": 37}
            if token:
                query["from"] = token
            page = await ok(bob, "GET", f"/rooms/{q(room_id)}/messages", query=query)
            assert page["start"] == token or token is None
            pages.append(page["chunk"])
            if "end" not in page:
                break
            assert page["chunk"], "a page with an end token must not be empty"
            token = page["end"]
            if page_no == 2:  # new messages must not leak into an older pagination
                for i in range(5):
                    live_more.append(await send_text(alice, room_id, f"late{i}"))
        else:
            raise AssertionError("backwards pagination never reached the start")
        backwards = [e for chunk in pages for e in chunk]
        ids = [e["event_id"] for e in backwards]
        assert len(ids) == len(set(ids)), "duplicates across pages"
        assert backwards[-1]["type"] == "m.room.create", "did not reach the room's start"
        assert [by_id[e] for e in ids if e in by_id] == list(range(total - 1, -1, -1))
        assert not set(live_more) & set(ids)
        assert all(len(chunk) == 37 for chunk in pages[:-1])

        # Forwards from the start: the same events in the opposite order, then the late ones.
        forwards = await all_messages(bob, room_id, limit=41, backwards=False)
        fids = [e["event_id"] for e in forwards]
        assert len(fids) == len(set(fids))
        assert fids[:len(ids)] == list(reversed(ids))
        assert fids[len(ids):] == live_more

        # A `to` token bounds the range exactly.
        first = await ok(bob, "GET", f"/rooms/{q(room_id)}/messages",
                         query={"dir": "b", "limit": 10})
        bounded = await ok(bob, "GET", f"/rooms/{q(room_id)}/messages",
                           query={"dir": "b", "limit": 100, "from": first["end"],
                                  "to": (await ok(bob, "GET", f"/rooms/{q(room_id)}/messages",
                                                  query={"dir": "b", "limit": 25}))["end"]})
        assert len(bounded["chunk"]) == 15

        # /context around message 150: before is reverse-chronological, after chronological.
        middle = sent[150]
        context = await ok(bob, "GET", f"/rooms/{q(room_id)}/context/{q(middle)}",
                           query={"limit": 20})
        assert context["event"]["event_id"] == middle
        assert [e["event_id"] for e in context["events_before"]] == sent[140:150][::-1]
        assert [e["event_id"] for e in context["events_after"]] == sent[151:161]
        state_types = {(e["type"], e["state_key"]) for e in context["state"]}
        assert ("m.room.create", "") in state_types
        assert ("m.room.member", bob.user_id) in state_types
        # Its tokens continue the pagination without gap or overlap.
        older = await ok(bob, "GET", f"/rooms/{q(room_id)}/messages",
                         query={"dir": "b", "limit": 5, "from": context["start"]})
        assert [e["event_id"] for e in older["chunk"]] == sent[135:140][::-1]
        newer = await ok(bob, "GET", f"/rooms/{q(room_id)}/messages",
                         query={"dir": "f", "limit": 5, "from": context["end"]})
        assert [e["event_id"] for e in newer["chunk"]] == sent[161:166]
        # nio parses the same answers.
        parsed = await bob.room_context(room_id, middle, limit=4)
        assert isinstance(parsed, nio.RoomContextResponse), parsed
        assert [e.event_id for e in parsed.events_before] == sent[148:150][::-1]
        await refused(bob, "GET", f"/rooms/{q(room_id)}/context/{q('$nope')}", status=404,
                      errcode="M_NOT_FOUND")

    run(server, [f"{unique}a", f"{unique}b"], scenario)


# Redactions -------------------------------------------------------------------------------


def test_redactions_power_and_what_everyone_sees(server: HomeserverProcess, unique: str) -> None:
    async def scenario(users: list[nio.AsyncClient]) -> None:
        alice, bob = users
        room_id = await create(alice, name="redact")
        await invite_and_join(alice, room_id, bob)
        since = (await sync(bob))["next_batch"]
        a1 = await send_text(alice, room_id, "alice secret")
        b1 = await send_text(bob, room_id, "bob oops")
        b2 = await send_text(bob, room_id, "bob rude")
        r = f"/rooms/{q(room_id)}"
        # Bob (level 0, redact needs 50) may not redact Alice's message, but may redact his own.
        await refused(bob, "PUT", f"{r}/redact/{q(a1)}/t1", {})
        own = (await ok(bob, "PUT", f"{r}/redact/{q(b1)}/t2", {"reason": "typo"}))["event_id"]
        again = await ok(bob, "PUT", f"{r}/redact/{q(b1)}/t2", {"reason": "typo"})
        assert again["event_id"] == own, "a retried redaction txnId must answer the same event"
        mod = await alice.room_redact(room_id, b2, reason="rude")
        assert isinstance(mod, nio.RoomRedactResponse), mod
        for viewer in (alice, bob):
            for target, redaction, reason in ((b1, own, "typo"), (b2, mod.event_id, "rude")):
                event = await ok(viewer, "GET", f"{r}/event/{q(target)}")
                assert event["content"] == {}
                because = event["unsigned"]["redacted_because"]
                assert because["event_id"] == redaction
                assert because["content"]["reason"] == reason
            untouched = await ok(viewer, "GET", f"{r}/event/{q(a1)}")
            assert untouched["content"]["body"] == "alice secret"
            history = {e["event_id"]: e for e in await all_messages(viewer, room_id)}
            assert history[b1]["content"] == {} and history[b2]["content"] == {}
            assert history[own]["redacts"] == b1
        # Sync delivers the redaction events, each once.
        _, seen = await sync_until(bob, since, lambda x: any(
            e["event_id"] == mod.event_id for e in timeline(x, room_id)))
        events = [e for resp in seen for e in timeline(resp, room_id)]
        redactions = [e["event_id"] for e in events if e["type"] == "m.room.redaction"]
        assert sorted(redactions) == sorted([own, mod.event_id])
        # A later initial sync shows the redacted events stripped, with the reason.
        fresh = {e["event_id"]: e for e in timeline(await sync(alice), room_id)}
        for target, redaction in ((b1, own), (b2, mod.event_id)):
            assert fresh[target]["content"] == {}
            assert fresh[target]["unsigned"]["redacted_because"]["event_id"] == redaction
        # Redacting an event of another room is refused.
        other = await create(bob, name="other")
        foreign = await send_text(bob, other, "elsewhere")
        got, _ = await raw(alice, "PUT", f"{r}/redact/{q(foreign)}/t3", {})
        assert got in (403, 404)
        assert (await ok(bob, "GET", f"/rooms/{q(other)}/event/{q(foreign)}"))["content"]

    run(server, [f"{unique}a", f"{unique}b"], scenario)


# Kicks and bans -------------------------------------------------------------------------


def test_kick_ban_unban(server: HomeserverProcess, unique: str) -> None:
    async def scenario(users: list[nio.AsyncClient]) -> None:
        alice, bob, carol = users
        room_id = await create(alice, name="club", visibility=nio.RoomVisibility.public)
        await join(bob, room_id)
        await join(carol, room_id)
        r = f"/rooms/{q(room_id)}"
        await refused(bob, "POST", f"{r}/kick", {"user_id": carol.user_id})
        await refused(bob, "POST", f"{r}/ban", {"user_id": carol.user_id})
        since = (await sync(bob))["next_batch"]
        kicked = await alice.room_kick(room_id, bob.user_id, reason="cool off")
        assert isinstance(kicked, nio.RoomKickResponse), kicked
        got, _ = await sync_until(bob, since, lambda x: room_id in x["rooms"]["leave"])
        assert room_id not in got["rooms"]["join"]
        leave = [e for e in timeline(got, room_id, "leave")
                 if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
        assert leave and leave[-1]["content"]["membership"] == "leave"
        assert leave[-1]["sender"] == alice.user_id
        assert leave[-1]["content"].get("reason") == "cool off"
        await refused(bob, "PUT", f"{r}/send/m.room.message/k1", {"msgtype": "m.text",
                                                                   "body": "let me talk"})
        # Kicked from a public room: may come back.
        await join(bob, room_id)
        since = (await sync(bob))["next_batch"]
        banned = await alice.room_ban(room_id, bob.user_id, reason="enough")
        assert isinstance(banned, nio.RoomBanResponse), banned
        got, _ = await sync_until(bob, since, lambda x: room_id in x["rooms"]["leave"])
        ban = [e for e in timeline(got, room_id, "leave") if e["type"] == "m.room.member"]
        assert ban[-1]["content"]["membership"] == "ban"
        await refused(bob, "POST", f"/join/{q(room_id)}", {})
        await refused(bob, "POST", f"{r}/join", {})
        await refused(alice, "POST", f"{r}/invite", {"user_id": bob.user_id})
        members = await ok(carol, "GET", f"{r}/members", query={"membership": "ban"})
        assert [m["state_key"] for m in members["chunk"]] == [bob.user_id]
        await refused(carol, "POST", f"{r}/unban", {"user_id": bob.user_id})
        unbanned = await alice.room_unban(room_id, bob.user_id)
        assert isinstance(unbanned, nio.RoomUnbanResponse), unbanned
        assert (await state_content(carol, room_id, "m.room.member", bob.user_id))[
            "membership"] == "leave"
        await join(bob, room_id)
        joined = await ok(carol, "GET", f"{r}/joined_members")
        assert set(joined["joined"]) == {alice.user_id, bob.user_id, carol.user_id}

    run(server, [f"{unique}a", f"{unique}b", f"{unique}c"], scenario)


# Power levels ---------------------------------------------------------------------------


def test_power_levels_refuse_what_they_must(server: HomeserverProcess, unique: str) -> None:
    async def scenario(users: list[nio.AsyncClient]) -> None:
        alice, bob, carol = users
        room_id = await create(
            alice, name="ranked", visibility=nio.RoomVisibility.public, room_version="11",
            power_level_override={"users": {alice.user_id: 100, carol.user_id: 50}})
        await join(bob, room_id)
        await join(carol, room_id)
        r = f"/rooms/{q(room_id)}"
        levels = await state_content(alice, room_id, "m.room.power_levels")
        assert levels["events"]["m.room.name"] == 50 and levels["users_default"] == 0
        # Bob at 0: no name change, no topic, no raising himself.
        await refused(bob, "PUT", f"{r}/state/m.room.name", {"name": "mine"})
        await refused(bob, "PUT", f"{r}/state/m.room.topic", {"topic": "mine"})
        raised = {**levels, "users": {**levels["users"], bob.user_id: 50}}
        await refused(bob, "PUT", f"{r}/state/m.room.power_levels", raised)
        # Carol the moderator: may rename, may not kick or ban the admin, nor touch levels.
        await ok(carol, "PUT", f"{r}/state/m.room.name", {"name": "carol's"})
        await refused(carol, "POST", f"{r}/kick", {"user_id": alice.user_id})
        await refused(carol, "POST", f"{r}/ban", {"user_id": alice.user_id})
        await refused(carol, "PUT", f"{r}/state/m.room.power_levels",
                      {**levels, "users": {**levels["users"], bob.user_id: 25}})
        # Once power levels need only 50, she may edit them, but only below her own level.
        levels = {**levels, "events": {**levels["events"], "m.room.power_levels": 50}}
        await ok(alice, "PUT", f"{r}/state/m.room.power_levels", levels)
        promoted = {**levels, "users": {**levels["users"], carol.user_id: 100}}
        await refused(carol, "PUT", f"{r}/state/m.room.power_levels", promoted)
        demote_admin = {**levels, "users": {**levels["users"], alice.user_id: 0}}
        await refused(carol, "PUT", f"{r}/state/m.room.power_levels", demote_admin)
        # ...but may give Bob a level up to her own.
        bob_25 = {**levels, "users": {**levels["users"], bob.user_id: 25}}
        await ok(carol, "PUT", f"{r}/state/m.room.power_levels", bob_25)
        # Alice raises events_default above Bob: his messages are refused.
        muted = {**bob_25, "events_default": 30}
        await ok(alice, "PUT", f"{r}/state/m.room.power_levels", muted)
        await refused(bob, "PUT", f"{r}/send/m.room.message/p1", {"msgtype": "m.text",
                                                                   "body": "hello?"})
        await send_text(carol, room_id, "moderators may still talk")
        # Moderators can kick users below them.
        await ok(carol, "POST", f"{r}/kick", {"user_id": bob.user_id})
        # Nothing refused changed the state.
        assert (await state_content(alice, room_id, "m.room.name"))["name"] == "carol's"
        final = await state_content(alice, room_id, "m.room.power_levels")
        assert final["users"] == {alice.user_id: 100, carol.user_id: 50, bob.user_id: 25}
        assert final["events_default"] == 30
        got, _ = await raw(bob, "GET", f"{r}/state/m.room.topic")
        assert got in (403, 404)

    run(server, [f"{unique}a", f"{unique}b", f"{unique}c"], scenario)


# Profiles -------------------------------------------------------------------------------


def test_profile_changes_reach_rooms(server: HomeserverProcess, unique: str) -> None:
    async def scenario(users: list[nio.AsyncClient]) -> None:
        alice, bob = users
        room_id = await create(alice, name="names")
        await invite_and_join(alice, room_id, bob)
        since = (await sync(bob))["next_batch"]
        changed = await alice.set_displayname("Alice Liddell")
        assert isinstance(changed, nio.ProfileSetDisplayNameResponse), changed
        await ok(alice, "PUT", f"/profile/{q(alice.user_id)}/avatar_url",
                 {"avatar_url": "mxc://localhost/rabbit"})
        got, seen = await sync_until(bob, since, lambda x: any(
            e["type"] == "m.room.member" and e["content"].get("avatar_url")
            for resp in [x] for e in timeline(resp, room_id)))
        members = [e for resp in seen for e in timeline(resp, room_id)
                   if e["type"] == "m.room.member" and e["state_key"] == alice.user_id]
        assert [m["content"].get("displayname") for m in members] == ["Alice Liddell"] * 2
        assert members[-1]["content"]["membership"] == "join"
        assert members[-1]["content"]["avatar_url"] == "mxc://localhost/rabbit"
        profile = await bob.get_profile(alice.user_id)
        assert isinstance(profile, nio.ProfileGetResponse), profile
        assert profile.displayname == "Alice Liddell"
        assert profile.avatar_url == "mxc://localhost/rabbit"
        field = await ok(bob, "GET", f"/profile/{q(alice.user_id)}/displayname")
        assert field == {"displayname": "Alice Liddell"}
        joined = await ok(bob, "GET", f"/rooms/{q(room_id)}/joined_members")
        assert joined["joined"][alice.user_id] == {"display_name": "Alice Liddell",
                                                    "avatar_url": "mxc://localhost/rabbit"}
        parsed = await bob.joined_members(room_id)
        assert isinstance(parsed, nio.JoinedMembersResponse), parsed
        assert {m.user_id: m.display_name for m in parsed.members}[alice.user_id] == \
            "Alice Liddell"
        member = await state_content(bob, room_id, "m.room.member", alice.user_id)
        assert member["displayname"] == "Alice Liddell"
        await refused(bob, "PUT", f"/profile/{q(alice.user_id)}/displayname",
                      {"displayname": "Mallory"})
        assert (await ok(bob, "GET", f"/profile/{q(alice.user_id)}"))[
            "displayname"] == "Alice Liddell"
        # A new room picks the new name up in the creator's member event.
        fresh = await create(alice, name="later")
        assert (await state_content(alice, fresh, "m.room.member", alice.user_id))[
            "displayname"] == "Alice Liddell"

    run(server, [f"{unique}a", f"{unique}b"], scenario)


# Leave and forget -----------------------------------------------------------------------


def test_leave_and_forget(server: HomeserverProcess, unique: str) -> None:
    include_leave = {"room": {"include_leave": True, "timeline": {"limit": 5}}}

    async def scenario(users: list[nio.AsyncClient]) -> None:
        alice, bob = users
        room_id = await create(alice, name="transient")
        await invite_and_join(alice, room_id, bob)
        await send_text(alice, room_id, "hi bob")
        r = f"/rooms/{q(room_id)}"
        await refused(bob, "POST", f"{r}/forget", {}, status=400, errcode="M_UNKNOWN")
        since = (await sync(bob))["next_batch"]
        left = await bob.room_leave(room_id)
        assert isinstance(left, nio.RoomLeaveResponse), left
        got, _ = await sync_until(bob, since, lambda x: room_id in x["rooms"]["leave"])
        assert room_id not in got["rooms"]["join"]
        assert room_id not in (await ok(bob, "GET", "/joined_rooms"))["joined_rooms"]
        assert room_id in (await sync(bob, sync_filter=include_leave))["rooms"]["leave"]
        after = got["next_batch"]
        forgot = await bob.room_forget(room_id)
        assert isinstance(forgot, nio.RoomForgetResponse), forgot
        await send_text(alice, room_id, "are you there")
        full = await sync(bob, sync_filter=include_leave)
        assert all(room_id not in full["rooms"][k] for k in ("join", "leave", "invite"))
        incremental = await sync(bob, after, timeout=300)
        assert all(room_id not in incremental["rooms"][k] for k in ("join", "leave", "invite"))
        # Bob can be invited back, and the room returns.
        await invite_and_join(alice, room_id, bob)
        assert room_id in (await sync(bob))["rooms"]["join"]

    run(server, [f"{unique}a", f"{unique}b"], scenario)


# Aliases and join rules -------------------------------------------------------------------


def test_join_by_alias_public_and_invite_only(server: HomeserverProcess, unique: str) -> None:
    async def scenario(users: list[nio.AsyncClient]) -> None:
        alice, bob = users
        public = await create(alice, name="lobby", alias=f"lobby{unique}",
                              visibility=nio.RoomVisibility.public)
        alias = f"#lobby{unique}:{alice.user_id.split(':', 1)[1]}"
        joined = await bob.join(alias)
        assert isinstance(joined, nio.JoinResponse), joined
        assert joined.room_id == public
        canonical = await state_content(bob, public, "m.room.canonical_alias")
        assert canonical["alias"] == alias
        private = await create(alice, name="den", alias=f"den{unique}")
        await refused(bob, "POST", f"/join/{q(f'#den{unique}:localhost')}", {})
        await refused(bob, "POST", f"/rooms/{q(private)}/join", {})
        await refused(bob, "POST", f"/join/{q('#nobody' + unique + ':localhost')}", {},
                      status=404, errcode="M_NOT_FOUND")
        members = await ok(alice, "GET", f"/rooms/{q(private)}/joined_members")
        assert list(members["joined"]) == [alice.user_id]
        await invite_and_join(alice, private, bob)

    run(server, [f"{unique}a", f"{unique}b"], scenario)


# Room versions and /createRoom options --------------------------------------------------


def test_basic_flow_on_room_versions_10_11_12(server: HomeserverProcess, unique: str) -> None:
    async def scenario(users: list[nio.AsyncClient]) -> None:
        alice, bob = users
        for version in ("10", "11", "12"):
            room_id = await create(alice, name=f"v{version}", room_version=version)
            create_content = await state_content(alice, room_id, "m.room.create")
            assert create_content["room_version"] == version
            # v11 dropped `creator` (the sender is the creator); v12 derives the room ID.
            assert create_content.get("creator") == (alice.user_id if version == "10" else None)
            assert (":" in room_id) is (version != "12")
            await invite_and_join(alice, room_id, bob)
            one = await send_text(alice, room_id, f"hello {version}")
            two = await send_text(bob, room_id, f"hi {version}")
            history = await all_messages(bob, room_id)
            assert [e["event_id"] for e in history][-2:] == [one, two]
            assert history[0]["type"] == "m.room.create"
            redaction = await alice.room_redact(room_id, two)
            assert isinstance(redaction, nio.RoomRedactResponse), redaction
            event = await ok(bob, "GET", f"/rooms/{q(room_id)}/event/{q(two)}")
            assert event["content"] == {}
            await ok(alice, "POST", f"/rooms/{q(room_id)}/kick", {"user_id": bob.user_id})
            await refused(bob, "POST", f"/rooms/{q(room_id)}/join", {})
            levels = await state_content(alice, room_id, "m.room.power_levels")
            if version == "12":
                assert alice.user_id not in levels.get("users", {})
            else:
                assert levels["users"][alice.user_id] == 100
        # An unknown version is refused with the spec's code.
        bad = await raw(alice, "POST", "/createRoom", {"room_version": "9999"})
        assert bad[0] == 400 and bad[1]["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"

    run(server, [f"{unique}a", f"{unique}b"], scenario)


def test_create_room_presets_initial_state_and_power_override(server: HomeserverProcess,
                                                             unique: str) -> None:
    async def scenario(users: list[nio.AsyncClient]) -> None:
        alice, bob, carol = users
        for version in ("11", "12"):
            trusted = await create(alice, preset=nio.RoomPreset.trusted_private_chat,
                                   invite=[bob.user_id], is_direct=True, room_version=version)
            member = await state_content(alice, trusted, "m.room.member", bob.user_id)
            assert member["membership"] == "invite" and member["is_direct"] is True
            await join(bob, trusted)
            if version == "12":
                create_content = await state_content(bob, trusted, "m.room.create")
                assert bob.user_id in create_content["additional_creators"]
            else:
                levels = await state_content(bob, trusted, "m.room.power_levels")
                assert levels["users"][bob.user_id] == 100
            # Bob has the creator's power: he may change what needs the most.
            await ok(bob, "PUT", f"/rooms/{q(trusted)}/state/m.room.name", {"name": "ours"})
            await ok(bob, "POST", f"/rooms/{q(trusted)}/invite", {"user_id": carol.user_id})
            rules = await state_content(bob, trusted, "m.room.join_rules")
            assert rules["join_rule"] == "invite"

        room_id = await create(
            alice, visibility=nio.RoomVisibility.public, room_version="11",
            initial_state=[
                {"type": "m.room.topic", "content": {"topic": "from initial_state"}},
                {"type": "m.room.history_visibility",
                 "content": {"history_visibility": "joined"}},
                {"type": "org.example.custom", "state_key": "k", "content": {"x": 1}},
            ],
            power_level_override={"users_default": 5, "events": {"m.room.topic": 5},
                                  "users": {alice.user_id: 100}})
        assert (await state_content(alice, room_id, "m.room.topic"))["topic"] == \
            "from initial_state"
        assert (await state_content(alice, room_id, "m.room.history_visibility"))[
            "history_visibility"] == "joined"
        assert (await state_content(alice, room_id, "org.example.custom", "k")) == {"x": 1}
        assert (await state_content(alice, room_id, "m.room.join_rules"))["join_rule"] == \
            "public"
        levels = await state_content(alice, room_id, "m.room.power_levels")
        assert levels["users_default"] == 5
        assert levels["events"] == {"m.room.topic": 5}  # a shallow override replaces `events`
        await join(carol, room_id)
        await ok(carol, "PUT", f"/rooms/{q(room_id)}/state/m.room.topic", {"topic": "carol's"})
        await refused(carol, "PUT", f"/rooms/{q(room_id)}/state/m.room.name", {"name": "no"})

    run(server, [f"{unique}a", f"{unique}b", f"{unique}c"], scenario)
