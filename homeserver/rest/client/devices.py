"""Device management: rename and delete devices (listing is in account.py)."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from ...handlers.auth import Authenticator
from ...handlers.devices import DeviceHandler
from ..http import JsonRouter, parse_json_body
from .common import requester


def register(router: JsonRouter, auth: Authenticator, devices: DeviceHandler) -> None:
    async def rename(request: Request, device_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        await devices.rename(who, device_id, parse_json_body(request))
        return 200, {}

    async def delete_one(request: Request, device_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = _body_or_empty(request)
        await devices.delete(who, [device_id], body.get("auth"))
        return 200, {}

    async def delete_many(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request, allow_empty=False)
        await devices.delete(who, body["devices"], body.get("auth"))
        return 200, {}

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        router.add("PUT", f"{prefix}/devices/{{device_id}}", rename, body="client/updateDevice")
        router.add("DELETE", f"{prefix}/devices/{{device_id}}", delete_one,
                   body="client/deleteDevice")
        router.add("POST", f"{prefix}/delete_devices", delete_many, body="client/deleteDevices")


def _body_or_empty(request: Request) -> dict[str, Any]:
    """Old clients send DELETE without a body; that is `{}` (as Synapse does).
    A body that is there but not JSON is still M_NOT_JSON."""
    return parse_json_body(request, allow_empty=True)
