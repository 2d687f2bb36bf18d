"""Signing keys: our own (`/_matrix/key/v2/server`) and, as a notary, other
servers' (`/_matrix/key/v2/query`). Unauthenticated, as the spec says."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from federation.keys import KeyRing
from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError

from ..http import JsonRouter, parse_json_body, query_int

# A notary query names at most this many servers.
MAX_SERVERS_PER_QUERY = 100


def register(router: JsonRouter, keyring: KeyRing) -> None:
    async def own_keys(request: Request, key_id: str = "") -> tuple[int, Any]:
        return 200, keyring.own.document(keyring.now_ms())

    async def query_one(request: Request, server_name: str, key_id: str = ""
                        ) -> tuple[int, Any]:
        minimum = query_int(request, "minimum_valid_until_ts", keyring.now_ms())
        assert minimum is not None
        return 200, {"server_keys": await _documents(keyring, {server_name: minimum})}

    async def query_many(request: Request) -> tuple[int, Any]:
        criteria = _parse_criteria(parse_json_body(request, allow_empty=False),
                                   keyring.now_ms())
        return 200, {"server_keys": await _documents(keyring, criteria)}

    router.add("GET", "/_matrix/key/v2/server", own_keys)
    # Deprecated: the key id is ignored, all keys are returned.
    router.add("GET", "/_matrix/key/v2/server/{key_id}", own_keys)
    router.add("GET", "/_matrix/key/v2/query/{server_name}", query_one)
    router.add("GET", "/_matrix/key/v2/query/{server_name}/{key_id}", query_one)
    router.add("POST", "/_matrix/key/v2/query", query_many,
               body="federation/bulkPerspectivesKeyQuery")


def _parse_criteria(body: dict[str, Any], now_ms: int) -> dict[str, int]:
    """`{server_keys: {server: {key_id: {minimum_valid_until_ts}}}}` -> the
    latest validity each server's keys are wanted until."""
    wanted = body["server_keys"]  # its shape checked by the route's schema
    if len(wanted) > MAX_SERVERS_PER_QUERY:
        raise MatrixError(400, Codes.TOO_LARGE, "Too many servers in one query")
    criteria: dict[str, int] = {}
    for server_name, keys in wanted.items():
        minimums = [c["minimum_valid_until_ts"] for c in keys.values()
                    if "minimum_valid_until_ts" in c]
        criteria[server_name] = max(minimums or [now_ms])
    return criteria


async def _documents(keyring: KeyRing, criteria: dict[str, int]) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for server_name, minimum in criteria.items():
        if identifiers.is_valid_server_name(server_name):
            documents += await keyring.notary_documents(server_name, minimum)
    return documents
