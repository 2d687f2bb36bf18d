"""Federation queries: `/query/directory`, `/query/profile`, `/user/devices`,
`/user/keys/query`, `/user/keys/claim`, `/publicRooms`, `/hierarchy` (all
X-Matrix authenticated)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.web.http import Request

from federation.protocol.errors import Codes, MatrixError

from ...handlers.federation_queries import FederationQueryHandler
from ...handlers.hierarchy import SpaceHierarchyHandler
from ...handlers.room_directory import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PageToken,
    PublicRoomsQuery,
    RoomDirectoryHandler,
)
from ..client.directory import post_query
from ..http import (
    JsonRouter,
    parse_json_body,
    query_arg,
    query_bool,
    query_int,
)
from .reads import room_id_param

V1 = "/_matrix/federation/v1"

Authenticate = Callable[[Request], Awaitable[str]]


def _required_arg(request: Request, name: str) -> str:
    value = query_arg(request, name)
    if not value:
        raise MatrixError(400, Codes.MISSING_PARAM, f"Missing parameter: {name}")
    return value


def _since(text: str | None) -> PageToken | None:
    return PageToken.parse(text) if text else None


def register(router: JsonRouter, authenticate: Authenticate, queries: FederationQueryHandler,
             directory: RoomDirectoryHandler, hierarchy: SpaceHierarchyHandler) -> None:
    async def query_directory(request: Request) -> tuple[int, Any]:
        await authenticate(request)
        return 200, await queries.directory(_required_arg(request, "room_alias"))

    async def query_profile(request: Request) -> tuple[int, Any]:
        await authenticate(request)
        return 200, await queries.profile(_required_arg(request, "user_id"),
                                          query_arg(request, "field") or None)

    async def user_devices(request: Request, user_id: str) -> tuple[int, Any]:
        await authenticate(request)
        return 200, await queries.user_devices(user_id)

    async def keys_query(request: Request) -> tuple[int, Any]:
        await authenticate(request)
        return 200, await queries.query_keys(parse_json_body(request, allow_empty=False))

    async def keys_claim(request: Request) -> tuple[int, Any]:
        await authenticate(request)
        return 200, await queries.claim_keys(parse_json_body(request, allow_empty=False))

    async def get_public_rooms(request: Request) -> tuple[int, Any]:
        await authenticate(request)
        query_bool(request, "include_all_networks")  # no third-party networks: only checked
        limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        return 200, await directory.public_rooms(PublicRoomsQuery(
            limit=limit or DEFAULT_LIMIT, since=_since(query_arg(request, "since"))))

    async def post_public_rooms(request: Request) -> tuple[int, Any]:
        await authenticate(request)
        query = post_query(parse_json_body(request))
        return 200, await directory.public_rooms(query)

    async def get_hierarchy(request: Request, room_id: str) -> tuple[int, Any]:
        origin = await authenticate(request)
        suggested_only = query_bool(request, "suggested_only")
        return 200, await hierarchy.federation_hierarchy(origin, room_id_param(room_id),
                                                         suggested_only)

    router.add("GET", f"{V1}/query/directory", query_directory)
    router.add("GET", f"{V1}/query/profile", query_profile)
    router.add("GET", f"{V1}/user/devices/{{user_id}}", user_devices)
    router.add("POST", f"{V1}/user/keys/query", keys_query,
               body="federation/queryUserEncryptionKeys")
    router.add("POST", f"{V1}/user/keys/claim", keys_claim,
               body="federation/claimUserEncryptionKeys")
    router.add("GET", f"{V1}/publicRooms", get_public_rooms)
    router.add("POST", f"{V1}/publicRooms", post_public_rooms, body="federation/queryPublicRooms")
    router.add("GET", f"{V1}/hierarchy/{{room_id}}", get_hierarchy)
