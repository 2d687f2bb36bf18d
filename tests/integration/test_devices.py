"""Device management: listing, renaming, and deleting devices behind
user-interactive auth (the `m.login.password` stage), with matrix-nio."""

from __future__ import annotations

import asyncio

import nio

from tests.harness import HomeserverProcess
from tests.integration.cs_helpers import (
    PASSWORD,
    device_keys,
    error,
    login,
    ok,
    q,
    raw,
    register,
)


def test_list_and_rename_devices(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice = await register(server, f"{unique}a")
        phone = await login(server, alice.user_id, "phone")
        try:
            listed = await alice.devices()
            assert isinstance(listed, nio.DevicesResponse), listed
            names = {d.id: d.display_name for d in listed.devices}
            assert names[phone.device_id] == "phone" and alice.device_id in names
            renamed = await alice.update_device(phone.device_id, {"display_name": "old phone"})
            assert isinstance(renamed, nio.UpdateDeviceResponse), renamed
            one = await ok(server, "GET", f"/devices/{q(phone.device_id)}",
                           token=alice.access_token)
            assert one["display_name"] == "old phone"
            await ok(server, "PUT", f"/devices/{q(phone.device_id)}", {},
                     alice.access_token)  # no display_name: unchanged
            one = await ok(server, "GET", f"/devices/{q(phone.device_id)}",
                           token=alice.access_token)
            assert one["display_name"] == "old phone"
            missing = await alice.update_device("NOSUCHDEVICE", {"display_name": "x"})
            assert isinstance(missing, nio.UpdateDeviceError), missing
            assert missing.status_code == "M_NOT_FOUND"
            await error(server, "PUT", f"/devices/{q(phone.device_id)}", 400, "M_TOO_LARGE",
                        {"display_name": "x" * 101}, alice.access_token)
            await error(server, "PUT", f"/devices/{q(phone.device_id)}", 401,
                        "M_MISSING_TOKEN", {"display_name": "x"})
        finally:
            await asyncio.gather(alice.close(), phone.close())

    asyncio.run(scenario())


def test_delete_devices_with_password_auth(server: HomeserverProcess, unique: str) -> None:
    async def scenario() -> None:
        alice = await register(server, f"{unique}a")
        bob = await register(server, f"{unique}b")
        phone = await login(server, alice.user_id, "phone")
        tablet = await login(server, alice.user_id, "tablet")
        try:
            await ok(server, "POST", "/keys/upload", {"device_keys": device_keys(phone)},
                     phone.access_token)
            challenge = await alice.delete_devices([phone.device_id])
            assert isinstance(challenge, nio.DeleteDevicesAuthResponse), challenge
            assert challenge.flows == [{"stages": ["m.login.password"]}]
            session = challenge.session
            wrong = {"type": "m.login.password", "user": alice.user_id, "password": "nope",
                     "session": session}
            status, body = await raw(server, "POST", "/delete_devices",
                                     {"devices": [phone.device_id], "auth": wrong},
                                     alice.access_token)
            assert status == 401 and body["errcode"] == "M_FORBIDDEN", body
            assert body["session"] == session and body["flows"] == challenge.flows
            as_bob = {"type": "m.login.password", "password": PASSWORD, "session": session,
                      "identifier": {"type": "m.id.user", "user": bob.user_id}}
            await error(server, "POST", "/delete_devices", 403, "M_FORBIDDEN",
                        {"devices": [phone.device_id], "auth": as_bob}, alice.access_token)
            await error(server, "POST", "/delete_devices", 400, "M_UNKNOWN",
                        {"devices": [phone.device_id], "auth": {**wrong, "session": "forged"}},
                        alice.access_token)
            # matrix-nio's documented form: the old `user` key, with the session.
            localpart = alice.user_id[1:].split(":")[0]
            deleted = await alice.delete_devices([phone.device_id, "NEVERHERE"], {
                "type": "m.login.password", "user": localpart, "password": PASSWORD,
                "session": session})
            assert isinstance(deleted, nio.DeleteDevicesResponse), deleted
            await error(server, "GET", "/account/whoami", 401, "M_UNKNOWN_TOKEN",
                        token=phone.access_token)
            keys = await ok(server, "POST", "/keys/query",
                            {"device_keys": {alice.user_id: []}}, alice.access_token)
            assert keys["device_keys"][alice.user_id] == {}  # E2E keys went with the device
            # DELETE /devices/{id}: auth in one request, without a session.
            path = f"/devices/{q(tablet.device_id)}"
            status, body = await raw(server, "DELETE", path, {}, alice.access_token)
            assert status == 401 and "errcode" not in body and body["session"], body
            await ok(server, "DELETE", path, {"auth": {
                "type": "m.login.password", "password": PASSWORD,
                "identifier": {"type": "m.id.user", "user": alice.user_id}}},
                alice.access_token)
            remaining = await alice.devices()
            assert isinstance(remaining, nio.DevicesResponse), remaining
            assert [d.id for d in remaining.devices] == [alice.device_id]
            await error(server, "POST", "/delete_devices", 400, "M_MISSING_PARAM", {"auth": {}},
                        alice.access_token)
        finally:
            await asyncio.gather(alice.close(), bob.close(), phone.close(), tablet.close())

    asyncio.run(scenario())
