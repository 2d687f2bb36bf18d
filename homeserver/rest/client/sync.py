"""/sync and stored filters."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from federation.protocol import canonical_json
from federation.protocol.errors import Codes, MatrixError

from ...handlers.auth import Authenticator
from ...storage.account_data import AccountDataStore
from ...sync.filtering import NO_FILTER, SyncFilter, interned_filter
from ...handlers.sync import SyncHandler, SyncRequest
from ...sync.tokens import SyncToken
from ..http import JsonRouter, parse_json_body, query_arg, query_bool, query_int
from .common import requester

MAX_TIMEOUT_MS = 5 * 60 * 1000


def _filter_id(text: str) -> int | None:
    """A stored filter's ID, or None: ASCII digits only (str.isdigit takes '²',
    which int() refuses) and few enough to fit a 64-bit column."""
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        return None
    return int(text)


async def resolve_filter(filters: AccountDataStore, user_id: str, text: str | None
                         ) -> SyncFilter:
    """A filter ID or inline JSON (which starts with '{')."""
    if not text:
        return NO_FILTER
    if text.lstrip().startswith("{"):
        try:
            return interned_filter(canonical_json.parse(text))
        except MatrixError as exc:
            raise MatrixError(400, Codes.BAD_JSON, f"Invalid filter: {exc.message}") from exc
    filter_id = _filter_id(text)
    if filter_id is None:
        raise MatrixError(400, Codes.INVALID_PARAM, "Invalid filter ID")
    stored = await filters.get_filter(user_id, filter_id)
    if stored is None:
        raise MatrixError(400, Codes.INVALID_PARAM, "Unknown filter ID")
    return interned_filter(stored)


def register(router: JsonRouter, auth: Authenticator, sync: SyncHandler,
             filters: AccountDataStore, presence: Any = None) -> None:
    async def do_sync(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        since_text = query_arg(request, "since")
        since = SyncToken.parse(since_text) if since_text else None
        timeout = query_int(request, "timeout", 0, minimum=0, maximum=MAX_TIMEOUT_MS) or 0
        sync_filter = await resolve_filter(filters, who.user_id, query_arg(request, "filter"))
        set_presence = query_arg(request, "set_presence", "online")
        if set_presence not in ("online", "offline", "unavailable"):
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid set_presence")
        if presence is not None:
            await presence.user_syncing(who.user_id, who.device_id, set_presence)
        try:
            result = await sync.sync(SyncRequest(
                who.user_id, who.device_id, since, timeout, sync_filter,
                full_state=query_bool(request, "full_state")))
        finally:
            if presence is not None:
                presence.user_stopped_syncing(who.user_id, who.device_id)
        return 200, result

    async def create_filter(request: Request, user_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        if who.user_id != user_id:
            raise MatrixError(403, Codes.FORBIDDEN, "Cannot create filters for other users")
        body = parse_json_body(request, allow_empty=False)
        SyncFilter.parse(body)  # validate
        filter_id = await filters.add_filter(user_id, body)
        return 200, {"filter_id": str(filter_id)}

    async def get_filter(request: Request, user_id: str, filter_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        if who.user_id != user_id:
            raise MatrixError(403, Codes.FORBIDDEN, "Cannot read other users' filters")
        number = _filter_id(filter_id)
        stored = await filters.get_filter(user_id, number) if number is not None else None
        if stored is None:
            raise MatrixError(404, Codes.NOT_FOUND, "No such filter")
        return 200, stored

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        router.add("GET", f"{prefix}/sync", do_sync)
        router.add("POST", f"{prefix}/user/{{user_id}}/filter", create_filter,
                   body="client/defineFilter")
        router.add("GET", f"{prefix}/user/{{user_id}}/filter/{{filter_id}}", get_filter)
