"""Room aliases, the published room directory and the user directory, driven
by matrix-nio where it has the call and raw HTTP elsewhere."""

from __future__ import annotations

import asyncio
from typing import Any

import nio

from tests.harness import HomeserverProcess
from tests.integration.cs_helpers import error, ok, q, raw, register


async def _room(client: nio.AsyncClient, **kwargs: Any) -> str:
    response = await client.room_create(**kwargs)
    assert isinstance(response, nio.RoomCreateResponse), response
    return str(response.room_id)


async def _join(client: nio.AsyncClient, room_id: str) -> None:
    response = await client.join(room_id)
    assert isinstance(response, nio.JoinResponse), response


def test_alias_create_resolve_list_delete(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice = await register(server, f"{unique}a")
        bob = await register(server, f"{unique}b")
        anonymous = nio.AsyncClient(server.base_url)
        try:
            room_id = await _room(alice, name="aliased")
            alias = f"#{unique}-hall:{server.server_name}"
            put = await alice.room_put_alias(alias, room_id)
            assert isinstance(put, nio.RoomPutAliasResponse), put
            resolved = await anonymous.room_resolve_alias(alias)  # no access token
            assert isinstance(resolved, nio.RoomResolveAliasResponse), resolved
            assert (resolved.room_id, resolved.servers) == (room_id, [server.server_name])
            path = f"/directory/room/{q(alias)}"
            await error(server, "PUT", path, 409, "M_UNKNOWN", {"room_id": room_id},
                        alice.access_token)
            await error(server, "PUT", f"/directory/room/{q('#x:elsewhere.example')}", 400,
                        "M_INVALID_PARAM", {"room_id": room_id}, alice.access_token)
            await error(server, "PUT", f"/directory/room/{q('no-sigil')}", 400,
                        "M_INVALID_PARAM", {"room_id": room_id}, alice.access_token)
            other = f"#{unique}-other:{server.server_name}"
            await error(server, "PUT", f"/directory/room/{q(other)}", 404, "M_NOT_FOUND",
                        {"room_id": f"!missing{unique}:{server.server_name}"},
                        alice.access_token)
            await error(server, "PUT", f"/directory/room/{q(other)}", 403, "M_FORBIDDEN",
                        {"room_id": room_id}, bob.access_token)  # not in the room
            await error(server, "PUT", f"/directory/room/{q(other)}", 401, "M_MISSING_TOKEN",
                        {"room_id": room_id})
            listed = await ok(server, "GET", f"/rooms/{q(room_id)}/aliases",
                              token=alice.access_token)
            assert listed == {"aliases": [alias]}
            await error(server, "GET", f"/rooms/{q(room_id)}/aliases", 403, "M_FORBIDDEN",
                        token=bob.access_token)
            await error(server, "DELETE", path, 403, "M_FORBIDDEN", token=bob.access_token)
            missing = await anonymous.room_resolve_alias(f"#{unique}-none:{server.server_name}")
            assert isinstance(missing, nio.RoomResolveAliasError), missing
            assert missing.status_code == "M_NOT_FOUND"
            await error(server, "GET", f"/directory/room/{q('#a:remote.example')}", 404,
                        "M_NOT_FOUND")  # remote aliases need federation
            await alice.room_put_state(room_id, "m.room.canonical_alias", {"alias": alias})
            deleted = await alice.room_delete_alias(alias)
            assert isinstance(deleted, nio.RoomDeleteAliasResponse), deleted
            await error(server, "GET", path, 404, "M_NOT_FOUND")
            await error(server, "DELETE", path, 404, "M_NOT_FOUND", token=alice.access_token)
            # The server took the deleted alias out of the canonical alias event.
            canonical = await ok(server, "GET", f"/rooms/{q(room_id)}/state/"
                                 "m.room.canonical_alias", token=alice.access_token)
            assert "alias" not in canonical
        finally:
            await asyncio.gather(alice.close(), bob.close(), anonymous.close())

    asyncio.run(scenario())


def test_room_moderator_may_delete_an_alias(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice = await register(server, f"{unique}a")
        bob = await register(server, f"{unique}b")
        carol = await register(server, f"{unique}c")
        try:
            room_id = await _room(alice, preset=nio.RoomPreset.public_chat)
            for member in (bob, carol):
                await _join(member, room_id)
            alias = f"#{unique}-bobs:{server.server_name}"
            assert isinstance(await bob.room_put_alias(alias, room_id), nio.RoomPutAliasResponse)
            path = f"/directory/room/{q(alias)}"
            # Carol (power 0) neither created the alias nor may edit aliases.
            await error(server, "DELETE", path, 403, "M_FORBIDDEN", token=carol.access_token)
            # Alice is the room's creator: she may.
            await ok(server, "DELETE", path, token=alice.access_token)
            await error(server, "GET", path, 404, "M_NOT_FOUND")
        finally:
            await asyncio.gather(alice.close(), bob.close(), carol.close())

    asyncio.run(scenario())


def test_room_directory_visibility(server: HomeserverProcess, unique: str) -> None:
    unique += "q"

    async def scenario() -> None:
        alice = await register(server, f"{unique}a")
        bob = await register(server, f"{unique}b")
        try:
            room_id = await _room(alice, visibility=nio.RoomVisibility.public, name=unique)
            seen = await alice.room_get_visibility(room_id)
            assert isinstance(seen, nio.RoomGetVisibilityResponse), seen
            assert seen.visibility == "public"
            path = f"/directory/list/room/{q(room_id)}"
            await error(server, "PUT", path, 403, "M_FORBIDDEN", {"visibility": "private"},
                        bob.access_token)  # not a member
            await _join(bob, room_id)
            await error(server, "PUT", path, 403, "M_FORBIDDEN", {"visibility": "private"},
                        bob.access_token)  # a member without power
            await error(server, "PUT", path, 400, "M_INVALID_PARAM", {"visibility": "secret"},
                        alice.access_token)
            await ok(server, "PUT", path, {"visibility": "private"}, alice.access_token)
            assert await ok(server, "GET", path) == {"visibility": "private"}
            found = await ok(server, "POST", "/publicRooms",
                             {"filter": {"generic_search_term": unique}}, alice.access_token)
            assert found["chunk"] == []
            await ok(server, "PUT", path, {}, alice.access_token)  # `public` by default
            assert await ok(server, "GET", path) == {"visibility": "public"}
            await error(server, "GET", f"/directory/list/room/{q('!nope:' + server.server_name)}",
                        404, "M_NOT_FOUND")
        finally:
            await asyncio.gather(alice.close(), bob.close())

    asyncio.run(scenario())


async def _public_rooms(server: HomeserverProcess, unique: str, members: list[nio.AsyncClient]
                        ) -> list[str]:
    """Three published rooms with 3, 2 and 1 joined members; returns their IDs."""
    alice = members[0]
    space = await _room(alice, visibility=nio.RoomVisibility.public, space=True,
                        name=f"{unique} guild", topic="the guild")
    alias_name = f"{unique}-general"
    general = await alice.room_create(visibility=nio.RoomVisibility.public, alias=alias_name,
                                      name=f"General {unique.upper()}", topic="chat here")
    assert isinstance(general, nio.RoomCreateResponse), general
    quiet = await _room(alice, visibility=nio.RoomVisibility.public, name=f"quiet {unique}")
    for client in members[1:]:
        await _join(client, general.room_id)
    await _join(members[1], space)
    return [general.room_id, space, quiet]


def test_public_rooms_filter_order_and_pages(server: HomeserverProcess, unique: str) -> None:
    unique += "q"  # "u1x5" is in every name of test "u1x50"; "u1x5q" is in none

    async def scenario() -> None:
        people = [await register(server, f"{unique}{n}") for n in "abc"]
        try:
            general, space, quiet = await _public_rooms(server, unique, people)
            token = people[0].access_token
            search = {"filter": {"generic_search_term": unique.upper()}}  # case-insensitive
            everything = await ok(server, "POST", "/publicRooms", search, token)
            assert [e["room_id"] for e in everything["chunk"]] == [general, space, quiet]
            assert everything["total_room_count_estimate"] == 3
            assert "next_batch" not in everything and "prev_batch" not in everything
            entry = everything["chunk"][0]
            assert entry == {
                "room_id": general, "num_joined_members": 3, "world_readable": False,
                "guest_can_join": False, "name": f"General {unique.upper()}",
                "topic": "chat here", "canonical_alias": f"#{unique}-general:localhost",
                "join_rule": "public"}
            assert everything["chunk"][1]["room_type"] == "m.space"
            assert "room_type" not in everything["chunk"][2]
            pages, batch, prev = [], None, None
            while True:
                body = {**search, "limit": 1, **({"since": batch} if batch else {})}
                page = await ok(server, "POST", "/publicRooms", body, token)
                pages.append(page["chunk"][0]["room_id"])
                assert ("prev_batch" in page) == (len(pages) > 1)
                prev = page.get("prev_batch")
                batch = page.get("next_batch")
                if batch is None:
                    break
            assert pages == [general, space, quiet]
            back = await ok(server, "POST", "/publicRooms", {**search, "limit": 1, "since": prev},
                            token)
            assert [e["room_id"] for e in back["chunk"]] == [space]
            spaces = await ok(server, "POST", "/publicRooms", {"filter": {
                "generic_search_term": unique, "room_types": ["m.space"]}}, token)
            assert [e["room_id"] for e in spaces["chunk"]] == [space]
            plain = await ok(server, "POST", "/publicRooms", {"filter": {
                "generic_search_term": unique, "room_types": [None]}}, token)
            assert [e["room_id"] for e in plain["chunk"]] == [general, quiet]
            await error(server, "POST", "/publicRooms", 401, "M_MISSING_TOKEN", search)
            await error(server, "POST", "/publicRooms", 400, "M_INVALID_PARAM",
                        {"since": "bogus"}, token)
        finally:
            await asyncio.gather(*(p.close() for p in people))

    asyncio.run(scenario())


def test_public_rooms_get_needs_no_auth_and_pages_stably(server: HomeserverProcess,
                                                         unique: str) -> None:
    unique += "q"

    async def scenario() -> None:
        people = [await register(server, f"{unique}{n}") for n in "ab"]
        try:
            general, space, quiet = await _public_rooms(server, unique, people)
            seen: list[str] = []
            batch = None
            for _ in range(1000):  # every published room on the shared server, 7 at a time
                query = {"limit": 7, **({"since": batch} if batch else {})}
                page = await ok(server, "GET", "/publicRooms", query=query)
                seen += [e["room_id"] for e in page["chunk"]]
                keys = [(-e["num_joined_members"], e["room_id"]) for e in page["chunk"]]
                assert keys == sorted(keys)
                batch = page.get("next_batch")
                if batch is None:
                    break
            assert len(seen) == len(set(seen))  # no room twice
            assert {general, space, quiet} <= set(seen)
            await error(server, "GET", "/publicRooms?server=other.example", 404, "M_NOT_FOUND")
            status, _ = await raw(server, "GET", f"/publicRooms?server={server.server_name}")
            assert status == 200
        finally:
            await asyncio.gather(*(p.close() for p in people))

    asyncio.run(scenario())


def test_user_directory_search(server: HomeserverProcess, unique: str) -> None:
    unique += "q"  # a search term no other test's user IDs contain

    async def scenario() -> None:
        alice, bob, carol, dave = [await register(server, f"{unique}{n}") for n in "abcd"]
        try:
            await bob.set_displayname(f"Zebra {unique}")
            shared = await _room(alice, invite=[bob.user_id])  # private: invite only
            await _join(bob, shared)
            public = await _room(carol, preset=nio.RoomPreset.public_chat)
            private = await _room(dave)
            assert public and private
            found = await ok(server, "POST", "/user_directory/search",
                             {"search_term": unique.upper()}, alice.access_token)
            ids = [r["user_id"] for r in found["results"]]
            assert set(ids) == {alice.user_id, bob.user_id, carol.user_id}, found
            assert found["limited"] is False
            by_name = await ok(server, "POST", "/user_directory/search",
                               {"search_term": "zebra"}, alice.access_token)
            mine = [r for r in by_name["results"] if r["user_id"] == bob.user_id]
            assert mine == [{"user_id": bob.user_id, "display_name": f"Zebra {unique}"}]
            # Dave sees Carol (public room) but not Bob (a private room he isn't in).
            seen_by_dave = await ok(server, "POST", "/user_directory/search",
                                    {"search_term": unique}, dave.access_token)
            assert {r["user_id"] for r in seen_by_dave["results"]} == {
                carol.user_id, dave.user_id}
            limited = await ok(server, "POST", "/user_directory/search",
                               {"search_term": unique, "limit": 1}, alice.access_token)
            assert len(limited["results"]) == 1 and limited["limited"] is True
            await error(server, "POST", "/user_directory/search", 400, "M_MISSING_PARAM", {},
                        alice.access_token)
            await error(server, "POST", "/user_directory/search", 401, "M_MISSING_TOKEN",
                        {"search_term": "x"})
        finally:
            await asyncio.gather(*(c.close() for c in (alice, bob, carol, dave)))

    asyncio.run(scenario())
