"""The user directory (spec: `POST /user_directory/search`).

Searched users: those sharing a room with the searcher, and those joined to a
room with a `public` join rule or `world_readable` history (the spec's
minimum). Which rooms are public is kept in memory: read once from the
database, then updated by every state event the room writer persists.
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet.defer import DeferredLock

from federation.protocol.errors import Codes, MatrixError

from ..rooms.writer import PersistedEvent, RoomWriter
from ..storage.directory import DirectoryStore

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
# The state that makes a room's members searchable by anyone: (type, content key, value).
_PUBLIC_STATE = {"m.room.join_rules": ("join_rule", "public"),
                 "m.room.history_visibility": ("history_visibility", "world_readable")}


class UserDirectoryHandler:
    def __init__(self, writer: RoomWriter, directory: DirectoryStore) -> None:
        self._directory = directory
        # (room, event type) -> whether that state makes the room public.
        self._loaded: dict[tuple[str, str], bool] | None = None
        self._live: dict[tuple[str, str], bool] = {}  # seen before loading finished
        self._load_lock = DeferredLock()
        writer.add_listener(self._on_event)

    def _on_event(self, persisted: PersistedEvent) -> None:
        event = persisted.event
        rule = _PUBLIC_STATE.get(event.type)
        if rule is None or event.state_key != "":
            return
        target = self._live if self._loaded is None else self._loaded
        target[(event.room_id, event.type)] = event.content.get(rule[0]) == rule[1]

    async def _public_rooms(self) -> set[str]:
        if self._loaded is None:
            async with self._load_lock:
                if self._loaded is None:
                    rows = await self._directory.current_state_contents(_PUBLIC_STATE)
                    loaded = {(room, kind): content.get(_PUBLIC_STATE[kind][0])
                              == _PUBLIC_STATE[kind][1] for room, kind, content in rows}
                    loaded.update(self._live)  # events seen while loading are newer
                    self._loaded, self._live = loaded, {}
        return {room for (room, _), public in self._loaded.items() if public}

    async def search(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        term = body.get("search_term")
        if not isinstance(term, str):
            raise MatrixError(400, Codes.MISSING_PARAM if term is None else Codes.INVALID_PARAM,
                              "search_term must be a string")
        limit = body.get("limit", DEFAULT_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise MatrixError(400, Codes.INVALID_PARAM, "limit must be a non-negative integer")
        limit = min(limit, MAX_LIMIT)
        term = term.strip()
        if not term:
            return {"results": [], "limited": False}
        found = await self._directory.search_users(user_id, await self._public_rooms(), term,
                                                   limit + 1)
        results = []
        for user in found[:limit]:
            entry: dict[str, Any] = {"user_id": user.user_id}
            if user.display_name:
                entry["display_name"] = user.display_name
            if user.avatar_url:
                entry["avatar_url"] = user.avatar_url
            results.append(entry)
        return {"results": results, "limited": len(found) > limit}
