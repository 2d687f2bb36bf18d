"""End-to-end encryption keys: upload, query, claim, changes."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from federation.protocol.errors import Codes, MatrixError

from ...handlers.auth import Authenticator
from ...handlers.e2e_keys import E2eKeysHandler
from ...sync.tokens import SyncToken
from ..http import JsonRouter, parse_json_body, query_arg
from .common import requester


def _position(request: Request, name: str) -> int:
    text = query_arg(request, name)
    if not text:
        raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameter: {name}")
    return SyncToken.parse(text).position


def register(router: JsonRouter, auth: Authenticator, keys: E2eKeysHandler) -> None:
    async def upload(request: Request, device_id: str | None = None) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, await keys.upload(who, parse_json_body(request))

    async def query(request: Request) -> tuple[int, Any]:
        await requester(auth, request)
        return 200, await keys.query(parse_json_body(request, allow_empty=False))

    async def claim(request: Request) -> tuple[int, Any]:
        await requester(auth, request)
        return 200, await keys.claim(parse_json_body(request, allow_empty=False))

    async def changes(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        since = _position(request, "from")
        upto = _position(request, "to")
        return 200, await keys.changes(who.user_id, since, upto)

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        router.add("POST", f"{prefix}/keys/upload", upload, body="client/uploadKeys")
        # r0's `/keys/upload/{deviceId}`: the device is the requester's anyway.
        router.add("POST", f"{prefix}/keys/upload/{{device_id}}", upload,
                   body="client/uploadKeys")
        # `timeout` is unused (the schema still checks its type).
        router.add("POST", f"{prefix}/keys/query", query, body="client/queryKeys")
        router.add("POST", f"{prefix}/keys/claim", claim, body="client/claimKeys")
        router.add("GET", f"{prefix}/keys/changes", changes)
