"""Room aliases, the published room directory and the user directory."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError

from ...handlers.auth import Authenticator
from ...handlers.room_aliases import RoomAliasHandler
from ...handlers.room_directory import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PageToken,
    PublicRoomsQuery,
    RoomDirectoryHandler,
)
from ...handlers.user_directory import UserDirectoryHandler
from ..http import JsonRouter, parse_json_body, query_arg, query_int
from .common import requester


def _room_id(room_id: str) -> str:
    if not identifiers.is_valid_room_id(room_id):
        raise MatrixError(400, Codes.INVALID_PARAM, "Invalid room ID")
    return room_id


def _remote_server(server: str | None, server_name: str) -> str | None:
    """The `server` parameter when it names another server (its directory comes
    over federation), None for ours."""
    if server is None or server == server_name:
        return None
    if not identifiers.is_valid_server_name(server):
        raise MatrixError(400, Codes.INVALID_PARAM, "Invalid server name")
    return server


def _remote_post_body(body: dict[str, Any]) -> dict[str, Any]:
    """A POST body to forward (its schema checked; the `since` token opaque)."""
    return {key: body[key] for key in ("limit", "since", "filter", "include_all_networks",
                                       "third_party_instance_id") if key in body}


def _since(text: str | None) -> PageToken | None:
    return PageToken.parse(text) if text else None


def post_query(body: dict[str, Any]) -> PublicRoomsQuery:
    """The query in a `POST /publicRooms` body matching its schema (client and
    federation alike); `include_all_networks` and `third_party_instance_id`
    are unused: we have no third-party networks."""
    filter_body = body.get("filter", {})
    return PublicRoomsQuery(
        limit=max(1, min(body.get("limit", DEFAULT_LIMIT), MAX_LIMIT)),
        since=_since(body.get("since")),
        search=filter_body.get("generic_search_term"),
        room_types=filter_body.get("room_types"))


def register(router: JsonRouter, auth: Authenticator, aliases: RoomAliasHandler,
             room_directory: RoomDirectoryHandler, user_directory: UserDirectoryHandler,
             server_name: str) -> None:
    async def get_alias(request: Request, alias: str) -> tuple[int, Any]:
        return 200, await aliases.resolve(alias)  # no auth (spec)

    async def put_alias(request: Request, alias: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request, allow_empty=False)
        await aliases.create(who.user_id, alias, body["room_id"])
        return 200, {}

    async def delete_alias(request: Request, alias: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        await aliases.delete(who.user_id, alias)
        return 200, {}

    async def room_aliases(request: Request, room_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, {"aliases": await aliases.local_aliases(who.user_id, _room_id(room_id))}

    async def get_listing(request: Request, room_id: str) -> tuple[int, Any]:
        return 200, {"visibility": await room_directory.visibility(_room_id(room_id))}

    async def put_listing(request: Request, room_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        body = parse_json_body(request)
        visibility = body.get("visibility", "public")
        await room_directory.set_visibility(who.user_id, _room_id(room_id), visibility)
        return 200, {}

    async def get_public_rooms(request: Request) -> tuple[int, Any]:
        limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        remote = _remote_server(query_arg(request, "server"), server_name)
        if remote is not None:
            room_directory.check_remote_reachable(remote)
            await requester(auth, request)  # only users may make us ask other servers
            since = query_arg(request, "since")
            return 200, await room_directory.remote_public_rooms(
                remote, {"limit": limit, **({"since": since} if since else {})})
        query = PublicRoomsQuery(limit=limit or DEFAULT_LIMIT,
                                 since=_since(query_arg(request, "since")))
        return 200, await room_directory.public_rooms(query)

    async def post_public_rooms(request: Request) -> tuple[int, Any]:
        await requester(auth, request)
        remote = _remote_server(query_arg(request, "server"), server_name)
        if remote is not None:
            body = _remote_post_body(parse_json_body(request))
            return 200, await room_directory.remote_public_rooms(remote, body)
        query = post_query(parse_json_body(request))
        return 200, await room_directory.public_rooms(query)

    async def search_users(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, await user_directory.search(who.user_id, parse_json_body(request))

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        router.add("GET", f"{prefix}/directory/room/{{alias}}", get_alias)
        router.add("PUT", f"{prefix}/directory/room/{{alias}}", put_alias,
                   body="client/setRoomAlias")
        router.add("DELETE", f"{prefix}/directory/room/{{alias}}", delete_alias)
        router.add("GET", f"{prefix}/rooms/{{room_id}}/aliases", room_aliases)
        router.add("GET", f"{prefix}/directory/list/room/{{room_id}}", get_listing)
        router.add("PUT", f"{prefix}/directory/list/room/{{room_id}}", put_listing,
                   body="client/setRoomVisibilityOnDirectory")
        router.add("GET", f"{prefix}/publicRooms", get_public_rooms)
        router.add("POST", f"{prefix}/publicRooms", post_public_rooms,
                   body="client/queryPublicRooms")
        router.add("POST", f"{prefix}/user_directory/search", search_users,
                   body="client/searchUserDirectory")
