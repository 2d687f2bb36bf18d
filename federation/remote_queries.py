"""Our users' questions that only another server can answer: a remote user's
profile, another server's room directory, remote users' device keys and
one-time keys. Every failure becomes a `MatrixError` for the client API
(404 when the remote says so, else 502), so callers handle one error type.
"""

from __future__ import annotations

import logging
from typing import Any

from federation import fetch
from federation.fetch import InvalidResponseError, JsonClient
from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError
from federation.transport.errors import DestinationUnreachable, HttpResponseError

logger = logging.getLogger(__name__)


def as_matrix_error(server: str, what: str, exc: Exception) -> MatrixError:
    if isinstance(exc, HttpResponseError) and exc.status == 404:
        return MatrixError(404, Codes.NOT_FOUND, f"{what} not found on {server}")
    if isinstance(exc, HttpResponseError) and exc.status == 403:
        return MatrixError(403, Codes.FORBIDDEN, f"{server} refused: {what}")
    logger.info("%s from %s failed: %s", what, server, exc)
    return MatrixError(502, Codes.UNKNOWN, f"Failed to fetch {what} from {server}")


QUERY_FAILURES = (HttpResponseError, DestinationUnreachable, InvalidResponseError)
# `via` servers asked for one room's hierarchy before giving up on it.
MAX_HIERARCHY_SERVERS = 3


class RemoteQueries:
    def __init__(self, client: JsonClient) -> None:
        self._client = client

    async def profile(self, user_id: str) -> dict[str, str]:
        server = identifiers.server_of(user_id)
        try:
            answer = await fetch.query_profile(self._client, server, user_id)
        except QUERY_FAILURES as exc:
            raise as_matrix_error(server, "profile", exc) from exc
        return {k: answer[k] for k in ("displayname", "avatar_url") if k in answer}

    async def public_rooms(self, server: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await fetch.query_public_rooms(self._client, server, body)
        except QUERY_FAILURES as exc:
            raise as_matrix_error(server, "room directory", exc) from exc

    async def device_keys(self, server: str, wanted: dict[str, list[str]]) -> dict[str, Any]:
        try:
            return await fetch.query_keys(self._client, server, wanted)
        except QUERY_FAILURES as exc:
            raise as_matrix_error(server, "device keys", exc) from exc

    async def claim_keys(self, server: str, wanted: dict[str, dict[str, str]]
                         ) -> dict[str, Any]:
        try:
            return await fetch.claim_keys(self._client, server, wanted)
        except QUERY_FAILURES as exc:
            raise as_matrix_error(server, "one-time keys", exc) from exc

    async def hierarchy(self, servers: list[str], room_id: str, suggested_only: bool
                        ) -> dict[str, Any] | None:
        """A room's `/hierarchy` from the first of `servers` that answers (None if
        none does: unknown to them, off-limits, or unreachable)."""
        for server in servers[:MAX_HIERARCHY_SERVERS]:
            try:
                return await fetch.fetch_hierarchy(self._client, server, room_id, suggested_only)
            except QUERY_FAILURES as exc:
                logger.info("hierarchy of %s from %s failed: %s", room_id, server, exc)
        return None
