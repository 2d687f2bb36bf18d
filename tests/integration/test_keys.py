"""End-to-end encryption, server side: key upload/query/claim, device-list
changes in /sync and /keys/changes, and matrix-nio built with E2E
(`matrix-nio[e2e]`, vodozemac) encrypting a conversation through us."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import nio

from tests.harness import HomeserverProcess
from tests.integration.cs_helpers import device_keys, error, ok, q, register, sync


def signed_key(key: str, device: str, user_id: str, fallback: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key, "signatures": {user_id: {f"ed25519:{device}": "s"}}}
    if fallback:
        body["fallback"] = True
    return body


def test_upload_query_claim(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice = await register(server, f"{unique}a")
        bob = await register(server, f"{unique}b")
        try:
            token, dev, uid = alice.access_token, alice.device_id, alice.user_id
            one_time = {f"signed_curve25519:AAA{i}": signed_key(f"otk{i}", dev, uid)
                        for i in range(3)}
            one_time["curve25519:OLD"] = "plainkey"
            uploaded = await ok(server, "POST", "/keys/upload", {
                "device_keys": device_keys(alice), "one_time_keys": one_time,
                "fallback_keys": {"signed_curve25519:FB1": signed_key("fb1", dev, uid, True)}},
                token)
            assert uploaded == {"one_time_key_counts": {"signed_curve25519": 3, "curve25519": 1}}
            # Re-uploading the same keys changes nothing; a changed key under an old ID is refused.
            again = await ok(server, "POST", "/keys/upload", {"one_time_keys": one_time}, token)
            assert again["one_time_key_counts"]["signed_curve25519"] == 3
            await error(server, "POST", "/keys/upload", 400, "M_UNKNOWN", {"one_time_keys": {
                "signed_curve25519:AAA0": signed_key("different", dev, uid)}}, token)
            await error(server, "POST", "/keys/upload", 400, "M_BAD_JSON",
                        {"device_keys": device_keys(bob)}, token)  # someone else's device
            await error(server, "POST", "/keys/upload", 400, "M_BAD_JSON",
                        {"one_time_keys": {"no-colon": "k"}}, token)
            await alice.update_device(dev, {"display_name": "Alice's laptop"})

            query = {"device_keys": {uid: [], bob.user_id: [], "@x:remote.example": []}}
            found = await ok(server, "POST", "/keys/query", query, bob.access_token)
            assert found["device_keys"][uid] == {
                dev: {**device_keys(alice), "unsigned": {"device_display_name": "Alice's laptop"}}}
            assert found["device_keys"][bob.user_id] == {}  # no keys uploaded
            assert list(found["failures"]) == ["remote.example"]
            only = await ok(server, "POST", "/keys/query",
                            {"device_keys": {uid: ["NOSUCHDEVICE"]}}, bob.access_token)
            assert only["device_keys"] == {uid: {}}
            await error(server, "POST", "/keys/query", 400, "M_INVALID_PARAM",
                        {"device_keys": {"not-a-user": []}}, bob.access_token)

            claimed = []
            for _ in range(5):  # three one-time keys, then the fallback key, twice
                got = await ok(server, "POST", "/keys/claim", {
                    "one_time_keys": {uid: {dev: "signed_curve25519"}}}, bob.access_token)
                claimed.append(got["one_time_keys"][uid][dev])
            assert [list(k)[0] for k in claimed] == [
                "signed_curve25519:AAA0", "signed_curve25519:AAA1", "signed_curve25519:AAA2",
                "signed_curve25519:FB1", "signed_curve25519:FB1"]
            assert claimed[0]["signed_curve25519:AAA0"] == one_time["signed_curve25519:AAA0"]
            none = await ok(server, "POST", "/keys/claim", {
                "one_time_keys": {uid: {dev: "unknown_alg"}}}, bob.access_token)
            assert none == {"one_time_keys": {}, "failures": {}}
            state = await sync(server, token)
            assert state["device_one_time_keys_count"] == {"signed_curve25519": 0,
                                                           "curve25519": 1}
            assert state["device_unused_fallback_key_types"] == []  # FB1 was handed out
            await ok(server, "POST", "/keys/upload", {"fallback_keys": {
                "signed_curve25519:FB2": signed_key("fb2", dev, uid, True)}}, token)
            state = await sync(server, token)
            assert state["device_unused_fallback_key_types"] == ["signed_curve25519"]
            await error(server, "POST", "/keys/claim", 401, "M_MISSING_TOKEN",
                        {"one_time_keys": {}})
        finally:
            await asyncio.gather(alice.close(), bob.close())

    asyncio.run(scenario())


def test_device_list_changes_in_sync_and_keys_changes(server: HomeserverProcess,
                                                      unique: str) -> None:
    async def scenario() -> None:
        alice = await register(server, f"{unique}a")
        bob = await register(server, f"{unique}b")
        carol = await register(server, f"{unique}c")
        try:
            room = await alice.room_create()
            assert isinstance(room, nio.RoomCreateResponse), room
            start = (await sync(server, alice.access_token))["next_batch"]
            # Bob is new to the room (invited counts, as in Synapse): alice must fetch his keys.
            await alice.room_invite(room.room_id, bob.user_id)
            invited = await sync(server, alice.access_token, start)
            assert invited["device_lists"]["changed"] == [bob.user_id]
            await bob.join(room.room_id)
            joined = await sync(server, alice.access_token, invited["next_batch"])
            assert joined["device_lists"]["changed"] == []  # invite -> join: nothing new
            # A long-poll wakes when bob uploads device keys.
            waiting = asyncio.create_task(
                sync(server, alice.access_token, joined["next_batch"], timeout_ms=20000))
            await asyncio.sleep(0.5)
            await ok(server, "POST", "/keys/upload", {"device_keys": device_keys(bob)},
                     bob.access_token)
            woken = await asyncio.wait_for(waiting, 15)
            for _ in range(5):  # other news (bob's presence) may wake it first
                if woken["device_lists"]["changed"]:
                    break
                woken = await sync(server, alice.access_token, woken["next_batch"],
                                   timeout_ms=10000)
            assert woken["device_lists"] == {"changed": [bob.user_id], "left": []}
            # Carol shares no room with alice: her keys are none of alice's business.
            await ok(server, "POST", "/keys/upload", {"device_keys": device_keys(carol)},
                     carol.access_token)
            changes = await ok(server, "GET", "/keys/changes", token=alice.access_token,
                               query={"from": joined["next_batch"], "to": woken["next_batch"]})
            assert changes == {"changed": [bob.user_id], "left": []}
            quiet = await sync(server, alice.access_token, woken["next_batch"])
            assert quiet["device_lists"] == {"changed": [], "left": []}
            # Re-uploading identical keys is no change.
            await ok(server, "POST", "/keys/upload", {"device_keys": device_keys(bob)},
                     bob.access_token)
            await ok(server, "POST", "/keys/upload", {"device_keys": device_keys(bob, "new")},
                     bob.access_token)
            changed = await sync(server, alice.access_token, quiet["next_batch"])
            assert changed["device_lists"]["changed"] == [bob.user_id]
            await bob.room_leave(room.room_id)
            left = await sync(server, alice.access_token, changed["next_batch"])
            assert left["device_lists"] == {"changed": [], "left": [bob.user_id]}
            # Over a longer span: bob's key changes are moot once he has gone.
            span = await ok(server, "GET", "/keys/changes", token=alice.access_token,
                            query={"from": joined["next_batch"], "to": left["next_batch"]})
            assert span == {"changed": [], "left": [bob.user_id]}
            # And from before he came to after he went, there is nothing to say.
            everything = await ok(server, "GET", "/keys/changes", token=alice.access_token,
                                  query={"from": start, "to": left["next_batch"]})
            assert everything == {"changed": [], "left": []}
            await error(server, "GET", "/keys/changes?from=bogus&to=s1_0", 400,
                        "M_INVALID_PARAM", token=alice.access_token)
            await error(server, "GET", "/keys/changes", 400, "M_MISSING_PARAM",
                        token=alice.access_token)
        finally:
            await asyncio.gather(alice.close(), bob.close(), carol.close())

    asyncio.run(scenario())


def test_logout_removes_device_keys(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice = await register(server, f"{unique}a")
        bob = await register(server, f"{unique}b")
        try:
            room = await alice.room_create(invite=[bob.user_id])
            await bob.join(room.room_id)
            await ok(server, "POST", "/keys/upload", {"device_keys": device_keys(bob)},
                     bob.access_token)
            since = (await sync(server, alice.access_token))["next_batch"]
            query = {"device_keys": {bob.user_id: []}}
            before = await ok(server, "POST", "/keys/query", query, alice.access_token)
            assert list(before["device_keys"][bob.user_id]) == [bob.device_id]
            await ok(server, "POST", "/logout", {}, bob.access_token)
            after = await ok(server, "POST", "/keys/query", query, alice.access_token)
            assert after["device_keys"][bob.user_id] == {}
            changed = await sync(server, alice.access_token, since)
            assert changed["device_lists"]["changed"] == [bob.user_id]
        finally:
            await asyncio.gather(alice.close(), bob.close())

    asyncio.run(scenario())


async def _e2e_client(server: HomeserverProcess, name: str, store: str) -> nio.AsyncClient:
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    client = await register(server, name, store_path=store, config=config)
    assert client.olm is not None, "matrix-nio was installed without E2E support"
    return client


async def _sync_until(client: nio.AsyncClient, done: Any, rounds: int = 20) -> None:
    for _ in range(rounds):
        await client.sync(timeout=1000, full_state=False)
        if client.should_upload_keys:
            assert isinstance(await client.keys_upload(), nio.KeysUploadResponse)
        if client.should_query_keys:
            assert isinstance(await client.keys_query(), nio.KeysQueryResponse)
        if done():
            return
    raise AssertionError("condition never reached")


def test_nio_encrypted_conversation(server: HomeserverProcess, unique: str) -> None:
    """Two unmodified nio clients with E2E: keys up, keys down, an Olm session
    from a claimed one-time key, a Megolm room key over to-device, and a
    message only the clients can read."""

    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as store_a, tempfile.TemporaryDirectory() as store_b:
            alice = await _e2e_client(server, f"{unique}a", store_a)
            bob = await _e2e_client(server, f"{unique}b", store_b)
            try:
                for client in (alice, bob):
                    uploaded = await client.keys_upload()
                    assert isinstance(uploaded, nio.KeysUploadResponse), uploaded
                    assert uploaded.signed_curve25519_count > 0
                room = await alice.room_create(invite=[bob.user_id], initial_state=[
                    {"type": "m.room.encryption", "state_key": "",
                     "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
                assert isinstance(room, nio.RoomCreateResponse), room
                await bob.join(room.room_id)
                await _sync_until(alice, lambda: bob.device_id in alice.device_store[bob.user_id])
                await _sync_until(bob, lambda: room.room_id in bob.rooms)
                sent = await alice.room_send(room.room_id, "m.room.message",
                                             {"msgtype": "m.text", "body": "secret " + unique},
                                             ignore_unverified_devices=True)
                assert isinstance(sent, nio.RoomSendResponse), sent
                raw_event = await ok(server, "GET", f"/rooms/{q(room.room_id)}/event/"
                                     f"{q(sent.event_id)}", token=bob.access_token)
                assert raw_event["type"] == "m.room.encrypted"
                assert unique not in str(raw_event["content"])  # the server saw ciphertext

                seen: list[str] = []

                async def on_message(_room: nio.MatrixRoom, event: nio.RoomMessageText) -> None:
                    seen.append(event.body)

                bob.add_event_callback(on_message, nio.RoomMessageText)
                await _sync_until(bob, lambda: "secret " + unique in seen)
            finally:
                await asyncio.gather(alice.close(), bob.close())

    asyncio.run(scenario())
