"""The SDK against a real homeserver process: the live model, local echo,
reconnects without loss or duplicates, the /sync fallback and history."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from client.sdk.client import MatrixClient
from tests.client.helpers import messages_in, new_client, run, wait_for
from tests.client.proxies import NoStreamProxy, TcpProxy
from tests.harness import HomeserverProcess

pytestmark = pytest.mark.timeout(240)


async def _room_of_two(server: HomeserverProcess | str, unique: str, **listener_options: Any
                       ) -> tuple[MatrixClient, MatrixClient, str]:
    sender = await new_client(server, f"{unique}s")
    listener_url = listener_options.pop("url", None) or (
        server if isinstance(server, str) else server.base_url)
    listener = await new_client(listener_url, f"{unique}l", **listener_options)
    room_id = await sender.create_room(name="test", invite=[listener.user_id])
    await listener.join(room_id)
    return sender, listener, room_id


def _collect(client: MatrixClient, room_id: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    client.on_timeline(lambda room, event: seen.append(event) if room == room_id else None)
    return seen


def _bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


def test_live_model_follows_the_stream(client_server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        sender, listener, room_id = await _room_of_two(client_server, unique)
        seen = _collect(listener, room_id)
        updated: list[str] = []

        async def room_updated(changed_room: str) -> None:  # async callbacks work too
            updated.append(changed_room)

        listener.on_room_update(room_updated)
        try:
            await listener.start()
            assert listener.sync.transport == "stream"
            room = listener.rooms[room_id]
            assert room.name == "test"
            assert room.joined_members == sorted([sender.user_id, listener.user_id])
            await sender.send_text(room_id, "hello")
            await wait_for(lambda: _bodies(seen) == ["hello"], what="the message")
            assert updated and set(updated) == {room_id}
            await sender.send_typing(room_id, True)
            await wait_for(lambda: room.typing == [sender.user_id], what="typing")
            await sender.send_receipt(room_id, seen[-1]["event_id"])
            await wait_for(lambda: room.receipts.get(sender.user_id, {}).get("event_id")
                           == seen[-1]["event_id"], what="the receipt")
            assert room.notification_count >= 1  # the message counts as unread for us
            await listener.send_receipt(room_id, seen[-1]["event_id"])
            await wait_for(lambda: room.notification_count == 0, what="unread reset")
            await sender.set_presence("online", "testing")
            await wait_for(lambda: listener.model.presence.get(sender.user_id, {})
                           .get("status_msg") == "testing", what="the sender's presence")
        finally:
            await sender.close()
            await listener.close()

    run(scenario())


def test_local_echo_is_replaced_by_the_real_event(client_server: HomeserverProcess,
                                                  unique: str) -> None:
    async def scenario() -> None:
        client = await new_client(client_server, unique)
        echoes: list[tuple[str, Any]] = []
        client.on_local_echo(lambda room, txn, echo: echoes.append(
            (txn, None if echo is None else echo["status"])))
        try:
            room_id = await client.create_room(name="echo")
            seen = _collect(client, room_id)
            await client.start()
            sending = asyncio.create_task(client.send_text(room_id, "pending?", ))
            await asyncio.sleep(0)  # the echo is in the model before any I/O completes
            room = client.rooms[room_id]
            [(txn_id, echo)] = room.pending.items()
            assert echo["status"] == "sending" and echo["content"]["body"] == "pending?"
            assert room.messages()[-1] is echo
            event_id = await sending
            await wait_for(lambda: not room.pending, what="the echo to resolve")
            real = room.timeline[-1]
            assert real["event_id"] == event_id
            assert real["unsigned"]["transaction_id"] == txn_id
            assert room.messages()[-1] is real
            assert [e["event_id"] for e in seen] == [event_id]
            assert echoes[0] == (txn_id, "sending") and echoes[-1] == (txn_id, None)
            # The same txnId again is the same event, and shows once.
            again = await client.send_event(room_id, "m.room.message",
                                            {"msgtype": "m.text", "body": "pending?"}, txn_id)
            assert again == event_id
            await asyncio.sleep(0.5)
            await wait_for(lambda: not room.pending, what="the retried echo to resolve")
            assert [e["event_id"] for e in seen] == [event_id]
            assert messages_in(client, room_id).count("pending?") == 1
        finally:
            await client.close()

    run(scenario())


def test_reconnect_after_homeserver_restart_loses_and_duplicates_nothing(
        own_server: HomeserverProcess, unique: str, caplog: pytest.LogCaptureFixture) -> None:
    """The listener's stream dies with the server while 50 messages are sent; the
    sender's sends retry under their txnIds across the outage."""
    caplog.set_level(logging.INFO, logger="client.sdk")

    async def scenario() -> None:
        sender, listener, room_id = await _room_of_two(own_server, unique, max_backoff=1.0)
        seen = _collect(listener, room_id)
        expected = [f"message {i}" for i in range(50)]
        try:
            await listener.start()

            async def send_all() -> None:
                for body in expected:
                    await sender.send_text(room_id, body)
                    await asyncio.sleep(0.05)  # keep sending through the outage

            sending = asyncio.create_task(send_all())
            await wait_for(lambda: len(seen) >= 10, what="the first messages")
            await asyncio.get_running_loop().run_in_executor(None, own_server.stop)
            assert not sending.done()
            await asyncio.sleep(1)
            await asyncio.get_running_loop().run_in_executor(None, own_server.start)
            await asyncio.wait_for(sending, 90)
            await wait_for(lambda: len(seen) >= 50, timeout=60, what="all 50 messages")
            await asyncio.sleep(1)  # anything extra would arrive now
            assert _bodies(seen) == expected
            assert messages_in(listener, room_id) == expected
            assert listener.running and listener.sync.transport == "stream"
        finally:
            await sender.close()
            await listener.close()

    run(scenario(), timeout=200)
    logged = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("retrying after") for m in logged)  # a send outlived the outage
    assert any(m.startswith("connection lost") for m in logged)  # the stream was cut


def test_network_drops_mid_stream_lose_and_duplicate_nothing(
        client_server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        proxy = await TcpProxy("127.0.0.1", client_server.port).start()
        sender, listener, room_id = await _room_of_two(client_server, unique, url=proxy.url,
                                                       max_backoff=0.5)
        seen = _collect(listener, room_id)
        expected = [f"drop {i}" for i in range(50)]
        try:
            await listener.start()
            for index, body in enumerate(expected):
                await sender.send_text(room_id, body)
                if index in (10, 25, 40):
                    assert proxy.drop_all() >= 1  # the stream was cut mid-flow
                    await wait_for(lambda: proxy.open_connections > 0, what="a reconnect")
            await wait_for(lambda: len(seen) >= 50, what="all 50 messages")
            await asyncio.sleep(1)
            assert _bodies(seen) == expected
            assert listener.running and listener.sync.transport == "stream"
        finally:
            await sender.close()
            await listener.close()
            await proxy.close()

    run(scenario())


def test_forced_sync_fallback(client_server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        sender, listener, room_id = await _room_of_two(client_server, unique, use_stream=False,
                                                       long_poll_ms=5000)
        seen = _collect(listener, room_id)
        try:
            await listener.start()
            for i in range(5):
                await sender.send_text(room_id, f"polled {i}")
            await wait_for(lambda: len(seen) >= 5, what="5 messages by /sync")
            assert _bodies(seen) == [f"polled {i}" for i in range(5)]
            assert listener.sync.transport == "sync"
        finally:
            await sender.close()
            await listener.close()

    run(scenario())


def test_failed_stream_upgrade_falls_back_to_sync(client_server: HomeserverProcess,
                                                  unique: str) -> None:
    async def scenario() -> None:
        proxy = await NoStreamProxy(client_server.base_url).start()
        sender, listener, room_id = await _room_of_two(client_server, unique, url=proxy.url,
                                                       long_poll_ms=5000)
        seen = _collect(listener, room_id)
        try:
            await listener.start()
            for i in range(5):
                await sender.send_text(room_id, f"fallback {i}")
            await wait_for(lambda: len(seen) >= 5, what="5 messages by /sync")
            assert _bodies(seen) == [f"fallback {i}" for i in range(5)]
            assert proxy.stream_refusals >= 1
            assert listener.sync.transport == "sync"
        finally:
            await sender.close()
            await listener.close()
            await proxy.close()

    run(scenario())


def test_history_pagination(client_server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        writer = await new_client(client_server, f"{unique}w")
        sent = [f"old {i}" for i in range(35)]
        reader = None
        try:
            room_id = await writer.create_room(name="history")
            for body in sent:
                await writer.send_text(room_id, body)
            reader = MatrixClient.restore(writer.session,
                                          sync_filter={"room": {"timeline": {"limit": 5}}})
            await reader.start()
            assert messages_in(reader, room_id) == sent[-5:]
            older = await reader.paginate(room_id, 10)
            assert len(older) == 10
            assert messages_in(reader, room_id) == sent[-15:]
            while await reader.paginate(room_id, 50):
                pass
            assert messages_in(reader, room_id) == sent
            events = reader.rooms[room_id].timeline
            assert events[0]["type"] == "m.room.create"
            assert len({e["event_id"] for e in events}) == len(events)
        finally:
            await writer.close()
            if reader is not None:
                await reader.close()

    run(scenario())


def test_gap_after_a_long_disconnection_is_filled(client_server: HomeserverProcess,
                                                  unique: str) -> None:
    """More events than the timeline limit while away: the limited batch's gap is
    fetched with /messages, so callbacks still see every event once, in order."""

    async def scenario() -> None:
        sender, listener, room_id = await _room_of_two(
            client_server, unique, sync_filter={"room": {"timeline": {"limit": 3}}})
        seen = _collect(listener, room_id)
        try:
            await listener.start()
            await listener.stop()
            expected = [f"away {i}" for i in range(20)]
            for body in expected:
                await sender.send_text(room_id, body)
            await listener.start()
            await wait_for(lambda: len(seen) >= 20, what="all 20 messages")
            assert _bodies(seen) == expected
        finally:
            await sender.close()
            await listener.close()

    run(scenario())


def test_invites_direct_rooms_and_turn(client_server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice = await new_client(client_server, f"{unique}a")
        bob = await new_client(client_server, f"{unique}b")
        invites: list[str] = []
        bob.on_invite(lambda room_id, state: invites.append(room_id))
        try:
            await bob.start()
            room_id = await alice.direct_room_with(bob.user_id)
            assert await alice.direct_room_with(bob.user_id) == room_id
            assert await alice.direct_room_with("@nobody:localhost", create=False) is None
            await wait_for(lambda: invites == [room_id], what="the invite")
            assert bob.rooms[room_id].membership == "invite"
            await bob.join(room_id)
            await wait_for(lambda: bob.rooms[room_id].joined_members ==
                           sorted([alice.user_id, bob.user_id]), what="the join")
            assert await alice.turn_server() == {}  # this homeserver has no TURN
        finally:
            await alice.close()
            await bob.close()

    run(scenario())


def test_session_restore_and_logout(client_server: HomeserverProcess, unique: str,
                                    tmp_path: Path) -> None:
    async def scenario() -> None:
        first = await new_client(client_server, unique)
        first.save_session(tmp_path)
        restored = MatrixClient.restore_saved(tmp_path)
        assert restored.session == first.session
        try:
            assert (await restored.whoami())["user_id"] == first.user_id
            await restored.start()
            await first.logout()
            # The stream closes with 4001 on logout; the loop stops for good.
            await wait_for(lambda: not restored.running, what="the revoked stream to stop")
            assert "revoked" in str(restored.stopped_reason) or \
                "M_UNKNOWN_TOKEN" in str(restored.stopped_reason)
        finally:
            await first.close()
            await restored.close()

    run(scenario())


def test_to_device_and_replayed_initial_batch(client_server: HomeserverProcess,
                                              unique: str) -> None:
    async def scenario() -> None:
        alice = await new_client(client_server, f"{unique}a")
        bob = await new_client(client_server, f"{unique}b")
        replayer = None
        received: list[dict[str, Any]] = []
        bob.on_to_device(received.append)
        try:
            room_id = await alice.create_room(name="replay")
            await alice.send_text(room_id, "before start")
            await bob.start()
            await alice.send_to_device("org.example.ping", {
                bob.user_id: {bob.device_id: {"n": 1}}})
            await wait_for(lambda: len(received) == 1, what="the to-device message")
            assert received[0]["sender"] == alice.user_id
            assert received[0]["content"] == {"n": 1}
            # Without replay, the initial batch only fills the model; with it, the
            # callbacks see it too.
            replayer = MatrixClient.restore(alice.session)
            seen = _collect(replayer, room_id)
            await replayer.start(replay_initial=True)
            assert "before start" in _bodies(seen)
            quiet = MatrixClient.restore(alice.session)
            quiet_seen = _collect(quiet, room_id)
            await quiet.start()
            assert quiet_seen == [] and messages_in(quiet, room_id) == ["before start"]
            await quiet.close()
        finally:
            await alice.close()
            await bob.close()
            if replayer is not None:
                await replayer.close()

    run(scenario())
