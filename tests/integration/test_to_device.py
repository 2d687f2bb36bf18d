"""Send-to-device messaging with matrix-nio, on both databases: delivered exactly
once, a retried txnId not delivered again, deleted once the next sync
acknowledges it, `*` for every device, at most 100 per sync."""

from __future__ import annotations

import asyncio
from typing import Any

import nio

from tests.harness import HomeserverProcess
from tests.integration.pair import PROMPT_S, Pair, long_poll, with_pair
from tests.integration.sessions import ok, q, sync

PING = "org.example.ping"


def pings(events: list[Any]) -> list[tuple[str, int]]:
    """(sender, n) of the test's messages, from nio events or raw JSON."""
    out = []
    for event in events:
        source = event.source if hasattr(event, "source") else event
        if source["type"] == PING:
            out.append((source["sender"], source["content"]["n"]))
    return out


async def send(sender: nio.AsyncClient, txn_id: str, messages: dict[str, Any]) -> None:
    await ok(sender, "PUT", f"/sendToDevice/{PING}/{q(txn_id)}", {"messages": messages})


def test_delivered_once_and_deleted_after_the_ack(server: HomeserverProcess,
                                                  unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, bob = pair.alice, pair.bob
        message = nio.ToDeviceMessage(PING, bob.user_id, bob.device_id, {"n": 1})

        response, took = await long_poll(bob, lambda: alice.to_device(message, "t1"))
        assert took < PROMPT_S, took
        assert pings(response.to_device_events) == [(alice.user_id, 1)]

        # The same txnId again (a client retrying): answered, not delivered again,
        # whatever the body says this time.
        again = await alice.to_device(message, "t1")
        assert isinstance(again, nio.ToDeviceResponse), again
        await send(alice, "t1", {bob.user_id: {bob.device_id: {"n": 99}}})
        response = await bob.sync(timeout=1000)
        assert isinstance(response, nio.SyncResponse), response
        assert pings(response.to_device_events) == []

        # Until the next sync acknowledges it, a message is sent again to a client
        # that retries its sync; after that it is gone.
        before = bob.next_batch
        await send(alice, "t2", {bob.user_id: {bob.device_id: {"n": 2}}})
        first = await sync(bob, before)
        retried = await sync(bob, before)
        assert pings(first["to_device"]["events"]) == [(alice.user_id, 2)]
        assert pings(retried["to_device"]["events"]) == [(alice.user_id, 2)]
        acknowledged = await sync(bob, first["next_batch"])
        assert pings(acknowledged["to_device"]["events"]) == []
        assert pings((await sync(bob, before))["to_device"]["events"]) == []

    asyncio.run(with_pair(server, unique, scenario))


def test_every_device_local_only_and_batches_of_100(server: HomeserverProcess,
                                                    unique: str) -> None:
    async def scenario(pair: Pair) -> None:
        alice, bob = pair.alice, pair.bob
        phone = nio.AsyncClient(server.base_url, bob.user_id)
        login = await phone.login("correct horse", device_name="phone")
        assert isinstance(login, nio.LoginResponse), login
        try:
            desktop_token = (await sync(bob))["next_batch"]
            phone_token = (await sync(phone))["next_batch"]
            # `*`: each of Bob's devices, once. Remote users and unknown devices are
            # not an error.
            await send(alice, "all", {bob.user_id: {"*": {"n": 1}},
                                      "@someone:elsewhere.example": {"DEV": {"n": 2}},
                                      alice.user_id: {"NO_SUCH_DEVICE": {"n": 3}}})
            for client, token in ((phone, phone_token), (bob, desktop_token)):
                response = await sync(client, token)
                assert pings(response["to_device"]["events"]) == [(alice.user_id, 1)]
            assert pings((await sync(alice))["to_device"]["events"]) == []

            # At most 100 per sync, in order (the first sync acknowledges the `*` one).
            for n in range(105):
                await send(alice, f"batch{n}", {bob.user_id: {bob.device_id: {"n": n}}})
            token, received, sizes = response["next_batch"], [], []
            for _ in range(3):
                response = await sync(bob, token)
                sizes.append(len(response["to_device"]["events"]))
                received += [n for _, n in pings(response["to_device"]["events"])]
                token = response["next_batch"]
            assert sizes == [100, 5, 0], sizes
            assert received == list(range(105)), received
        finally:
            await phone.close()

    asyncio.run(with_pair(server, unique, scenario))
