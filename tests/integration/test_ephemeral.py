"""Typing notifications, receipts and read markers between two matrix-nio users,
on both databases: what each sees in /sync, and long-polls woken by the other."""

from __future__ import annotations

import asyncio
import time

import nio
from nio.api import ReceiptType

from tests.harness import HomeserverProcess
from tests.integration.pair import (
    PROMPT_S,
    Pair,
    ephemeral,
    long_poll,
    room_account_data,
    settle,
    with_pair,
)
from tests.integration.sessions import ok, q, raw, refused, register, sync


def typing_users(response: nio.SyncResponse, room_id: str) -> list[list[str]]:
    return [e.users for e in ephemeral(response, room_id)
            if isinstance(e, nio.TypingNoticeEvent)]


def receipts(response: nio.SyncResponse, room_id: str) -> set[tuple[str, str, str, str | None]]:
    """(event_id, receipt type, user, thread_id) of every receipt in the response."""
    return {(r.event_id, r.receipt_type, r.user_id, r.thread_id)
            for e in ephemeral(response, room_id) if isinstance(e, nio.ReceiptEvent)
            for r in e.receipts}


async def send_text(client: nio.AsyncClient, room_id: str, body: str) -> str:
    response = await client.room_send(room_id, "m.room.message",
                                      {"msgtype": "m.text", "body": body})
    assert isinstance(response, nio.RoomSendResponse), response
    return response.event_id


def test_typing_start_stop_and_expiry(server: HomeserverProcess, unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, bob, room = pair.alice, pair.bob, pair.room_id

        response, took = await long_poll(bob, lambda: alice.room_typing(room, True, 30_000))
        assert typing_users(response, room) == [[alice.user_id]]
        assert took < PROMPT_S, took

        response, took = await long_poll(bob, lambda: alice.room_typing(room, False))
        assert typing_users(response, room) == [[]]
        assert took < PROMPT_S, took

        # Typing for one second: the expiry itself wakes the waiting sync.
        typed = await alice.room_typing(room, True, 1000)
        assert isinstance(typed, nio.RoomTypingResponse), typed
        started = time.monotonic()
        seen: list[list[str]] = []
        while [] not in seen:
            response = await bob.sync(timeout=10_000)
            assert isinstance(response, nio.SyncResponse), response
            seen += typing_users(response, room)
        expired_after = time.monotonic() - started
        assert seen == [[alice.user_id], []], seen
        assert 0.5 < expired_after < 1 + PROMPT_S, expired_after

    asyncio.run(with_pair(server, unique, scenario))


def test_typing_only_for_yourself_in_rooms_you_are_in(server: HomeserverProcess,
                                                      unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        room = q(pair.room_id)
        carol = await register(server, f"{unique}c")
        try:
            await refused(pair.alice, "PUT", f"/rooms/{room}/typing/{q(pair.bob.user_id)}",
                          {"typing": True})
            await refused(carol, "PUT", f"/rooms/{room}/typing/{q(carol.user_id)}",
                          {"typing": True})
            response = await carol.room_typing(pair.room_id, True)
            assert isinstance(response, nio.RoomTypingError), response
            await refused(pair.alice, "PUT", f"/rooms/{room}/typing/{q(pair.alice.user_id)}",
                          {"timeout": 5}, status=400, errcode="M_MISSING_PARAM")
            # Nothing of it reached the room.
            response = await pair.bob.sync(timeout=0)
            assert typing_users(response, pair.room_id) == []
            # Whoever leaves stops typing.
            typed = await pair.bob.room_typing(pair.room_id, True, 60_000)
            assert isinstance(typed, nio.RoomTypingResponse), typed
            response = await pair.alice.sync(timeout=0)
            assert typing_users(response, pair.room_id) == [[pair.bob.user_id]]
            left = await pair.bob.room_leave(pair.room_id)
            assert isinstance(left, nio.RoomLeaveResponse), left
            response = await pair.alice.sync(timeout=0)
            assert typing_users(response, pair.room_id) == [[]]
        finally:
            await carol.close()

    asyncio.run(with_pair(server, unique, scenario))


def test_public_receipts_to_all_private_ones_to_their_owner(server: HomeserverProcess,
                                                            unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, bob, room = pair.alice, pair.bob, pair.room_id
        first = await send_text(alice, room, "one")
        second = await send_text(alice, room, "two")
        await settle(alice, bob)

        # nio sends thread_id "main" with every receipt.
        response, took = await long_poll(alice, lambda: bob.update_receipt_marker(room, first))
        assert (first, "m.read", bob.user_id, "main") in receipts(response, room)
        assert took < PROMPT_S, took
        unthreaded = await raw(bob, "POST", f"/rooms/{q(room)}/receipt/m.read/{q(second)}", {})
        assert unthreaded[0] == 200, unthreaded
        mine = await bob.sync(timeout=0)
        assert (second, "m.read", bob.user_id, None) in receipts(mine, room)

        # A private receipt wakes its owner's other syncs, and nobody else's.
        private = await bob.update_receipt_marker(room, second, ReceiptType.read_private)
        assert isinstance(private, nio.UpdateReceiptMarkerResponse), private
        theirs = await alice.sync(timeout=1000)
        assert not any(kind == "m.read.private" for _, kind, _, _ in receipts(theirs, room))
        other_device = await bob_on_another_device(server, bob)
        try:
            seen = await other_device.sync(timeout=0)
            assert (second, "m.read.private", bob.user_id, "main") in receipts(seen, room)
            response, took = await long_poll(
                other_device, lambda: raw(bob, "POST",
                                          f"/rooms/{q(room)}/receipt/m.read.private/{q(first)}",
                                          {}))
            assert (first, "m.read.private", bob.user_id, None) in receipts(response, room)
            assert took < PROMPT_S, took
        finally:
            await other_device.close()
        # Alice's initial sync shows Bob's public receipts only.
        initial = await sync(alice)
        [event] = [e for e in initial["rooms"]["join"][room]["ephemeral"]["events"]
                   if e["type"] == "m.receipt"]
        kinds = {kind for by_kind in event["content"].values() for kind, users
                 in by_kind.items() if bob.user_id in users}
        assert kinds == {"m.read"}, event

    asyncio.run(with_pair(server, unique, scenario))


def test_receipts_only_for_events_you_can_see(server: HomeserverProcess, unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, room = pair.alice, q(pair.room_id)
        event = await send_text(alice, pair.room_id, "hello")
        other = await alice.room_create(name="elsewhere")
        assert isinstance(other, nio.RoomCreateResponse), other
        elsewhere = await send_text(alice, other.room_id, "not in the shared room")
        carol = await register(server, f"{unique}c")
        try:
            for client, path in (
                    (alice, f"/rooms/{room}/receipt/m.read/{q('$nonexistent')}"),
                    (alice, f"/rooms/{room}/receipt/m.read/{q(elsewhere)}"),
                    (pair.bob, f"/rooms/{q(other.room_id)}/receipt/m.read/{q(elsewhere)}"),
                    (carol, f"/rooms/{room}/receipt/m.read/{q(event)}"),
                    (carol, f"/rooms/{room}/read_markers")):
                await refused(client, "POST", path, {"m.fully_read": event}, status=404,
                              errcode="M_NOT_FOUND")
            await refused(alice, "POST", f"/rooms/{room}/receipt/m.unknown/{q(event)}", {},
                          status=400, errcode="M_INVALID_PARAM")
            await refused(alice, "POST", f"/rooms/{room}/receipt/m.read/{q(event)}",
                          {"thread_id": ""}, status=400, errcode="M_INVALID_PARAM")
            # As Synapse: m.fully_read is no receipt and has no thread (nio adds "main").
            response = await alice.update_receipt_marker(pair.room_id, event,
                                                         ReceiptType.fully_read)
            assert isinstance(response, nio.UpdateReceiptMarkerError), response
            # A read marker with one bad target writes nothing.
            await refused(alice, "POST", f"/rooms/{room}/read_markers",
                          {"m.fully_read": event, "m.read": "$nonexistent"}, status=404,
                          errcode="M_NOT_FOUND")
            await refused(alice, "GET", f"/user/{q(alice.user_id)}/rooms/{room}"
                          "/account_data/m.fully_read", status=404, errcode="M_NOT_FOUND")
        finally:
            await carol.close()

    asyncio.run(with_pair(server, unique, scenario))


def test_threaded_receipts_must_match_the_thread(server: HomeserverProcess,
                                                unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, bob, room = pair.alice, pair.bob, pair.room_id
        root = await send_text(alice, room, "root")
        reply = await alice.room_send(room, "m.room.message", {
            "msgtype": "m.text", "body": "in the thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
        assert isinstance(reply, nio.RoomSendResponse), reply
        plain = await send_text(alice, room, "main timeline")
        await settle(alice, bob)

        async def receipt(event_id: str, thread_id: str) -> tuple[int, object]:
            return await raw(bob, "POST", f"/rooms/{q(room)}/receipt/m.read/{q(event_id)}",
                             {"thread_id": thread_id})

        for event_id, thread_id in ((reply.event_id, root), (root, root), (root, "main"),
                                    (plain, "main")):
            assert (await receipt(event_id, thread_id))[0] == 200, (event_id, thread_id)
        for event_id, thread_id in ((reply.event_id, "main"), (plain, root)):
            status, answer = await receipt(event_id, thread_id)
            assert status == 400 and isinstance(answer, dict), answer
            assert answer["errcode"] == "M_INVALID_PARAM", answer
        response = await alice.sync(timeout=0)
        assert isinstance(response, nio.SyncResponse), response
        # One receipt per thread: the latest of each.
        mine = {r for r in receipts(response, room) if r[2] == bob.user_id}
        assert mine == {(root, "m.read", bob.user_id, root),
                        (plain, "m.read", bob.user_id, "main")}, mine

    asyncio.run(with_pair(server, unique, scenario))


def test_read_markers_are_room_account_data(server: HomeserverProcess, unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, bob, room = pair.alice, pair.bob, pair.room_id
        first = await send_text(alice, room, "one")
        second = await send_text(alice, room, "two")
        await settle(alice, bob)
        marker_path = f"/user/{q(bob.user_id)}/rooms/{q(room)}/account_data/m.fully_read"

        other_device = await bob_on_another_device(server, bob)
        try:
            await other_device.sync(timeout=0)
            response, took = await long_poll(
                other_device, lambda: bob.room_read_markers(room, first, first))
            assert took < PROMPT_S, took
            # The receipt and the marker are two writes: the long-poll may answer
            # with the first, and the next sync has the other.
            rest = await other_device.sync(timeout=0)
            assert isinstance(rest, nio.SyncResponse), rest
            markers = [e for r in (response, rest) for e in room_account_data(r, room)
                       if isinstance(e, nio.FullyReadEvent)]
            assert [m.event_id for m in markers] == [first]
            assert (first, "m.read", bob.user_id, None) in \
                receipts(response, room) | receipts(rest, room)
        finally:
            await other_device.close()
        assert await ok(bob, "GET", marker_path) == {"event_id": first}
        # The room sees the read receipt, never the marker.
        theirs = await alice.sync(timeout=0)
        assert (first, "m.read", bob.user_id, None) in receipts(theirs, room)
        assert not room_account_data(theirs, room)

        # The marker moves forward only; the receipt endpoint sets it too.
        await ok(bob, "POST", f"/rooms/{q(room)}/receipt/m.fully_read/{q(second)}", {})
        assert await ok(bob, "GET", marker_path) == {"event_id": second}
        marked = await bob.room_read_markers(room, first)
        assert isinstance(marked, nio.RoomReadMarkersResponse), marked
        assert await ok(bob, "GET", marker_path) == {"event_id": second}
        # Writing it as plain account data is refused (405, as Synapse).
        await refused(bob, "PUT", marker_path, {"event_id": first}, status=405,
                      errcode="M_BAD_JSON")

    asyncio.run(with_pair(server, unique, scenario))


async def bob_on_another_device(server: HomeserverProcess, bob: nio.AsyncClient
                                ) -> nio.AsyncClient:
    other = nio.AsyncClient(server.base_url, bob.user_id)
    response = await other.login("correct horse", device_name="second")
    assert isinstance(response, nio.LoginResponse), response
    return other
