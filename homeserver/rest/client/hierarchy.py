"""`GET /_matrix/client/v1/rooms/{roomId}/hierarchy`: a space's rooms (local rooms)."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from ...handlers.auth import Authenticator
from ...handlers.hierarchy import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    HierarchyQuery,
    SpaceHierarchyHandler,
)
from ..http import JsonRouter, query_arg, query_bool, query_int
from .common import requester, room_id_param

# Deeper than any real space; bounds the walk together with MAX_ROOMS_WALKED.
MAX_DEPTH = 1000


def _query(request: Request) -> HierarchyQuery:
    limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    max_depth = query_int(request, "max_depth", None, minimum=0, maximum=MAX_DEPTH)
    return HierarchyQuery(limit=limit or DEFAULT_LIMIT, max_depth=max_depth,
                          suggested_only=query_bool(request, "suggested_only"),
                          since=query_arg(request, "from"))


def register(router: JsonRouter, auth: Authenticator, hierarchy: SpaceHierarchyHandler) -> None:
    async def get_hierarchy(request: Request, room_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, await hierarchy.client_hierarchy(who.user_id, room_id_param(room_id),
                                                     _query(request))

    router.add("GET", "/_matrix/client/v1/rooms/{room_id}/hierarchy", get_hierarchy)
