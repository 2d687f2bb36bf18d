"""The published room directory (spec: client-server API, "Room discovery"):
`/directory/list/room/{roomId}` and `/publicRooms`.

Rooms are ordered by joined members (largest first), then room ID. A page
token names the boundary entry (members, room ID) rather than an offset, so
pages stay stable while rooms are added or removed.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from federation.protocol.errors import Codes, MatrixError
from federation.protocol.events import CREATE_KEY, Event, StateKey

from ..rooms.writer import PersistedEvent, RoomWriter
from ..storage.directory import DirectoryStore
from ..storage.rooms import RoomStore
from .room_aliases import can_moderate_listing

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_SUMMARY_TYPES = ("m.room.name", "m.room.topic", "m.room.canonical_alias", "m.room.avatar",
                  "m.room.join_rules", "m.room.history_visibility", "m.room.guest_access",
                  "m.room.create")

Key = tuple[int, str]  # (-joined members, room ID): ascending is the listing order


@dataclass(frozen=True)
class PageToken:
    forward: bool
    key: Key

    def __str__(self) -> str:
        raw = f"{-self.key[0]}|{self.key[1]}".encode()
        return ("n" if self.forward else "p") + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, text: str) -> PageToken:
        try:
            if text[:1] not in ("n", "p"):
                raise ValueError
            raw = base64.urlsafe_b64decode(text[1:] + "=" * (-len(text[1:]) % 4)).decode()
            members, sep, room_id = raw.partition("|")
            if not sep or not room_id:
                raise ValueError
            return cls(text[0] == "n", (-int(members), room_id))
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise MatrixError(400, Codes.INVALID_PARAM, "Invalid pagination token") from exc


def _plain_topic(content: dict[str, Any]) -> str | None:
    """The text/plain topic: from `m.topic` if present (v1.15), else `topic`."""
    blocks = content.get("m.topic")
    if isinstance(blocks, list):
        for block in blocks:
            if isinstance(block, dict) and block.get("mimetype", "text/plain") == "text/plain" \
                    and isinstance(block.get("body"), str):
                return block["body"]
    topic = content.get("topic")
    return topic if isinstance(topic, str) else None


def summarise(room_id: str, state: dict[StateKey, Event]) -> dict[str, Any]:
    """A `PublishedRoomsChunk` without `num_joined_members`."""

    def field(event_type: str, key: str) -> Any:
        event = state.get((event_type, ""))
        value = event.content.get(key) if event is not None else None
        return value if isinstance(value, str) else None

    create = state.get(CREATE_KEY)
    room_type = create.content.get("type") if create is not None else None
    entry: dict[str, Any] = {
        "room_id": room_id,
        "world_readable": field("m.room.history_visibility", "history_visibility")
        == "world_readable",
        "guest_can_join": field("m.room.guest_access", "guest_access") == "can_join",
    }
    topic_event = state.get(("m.room.topic", ""))
    optional = {
        "name": field("m.room.name", "name"),
        "topic": _plain_topic(topic_event.content) if topic_event is not None else None,
        "canonical_alias": field("m.room.canonical_alias", "alias"),
        "avatar_url": field("m.room.avatar", "url"),
        "join_rule": field("m.room.join_rules", "join_rule"),
        "room_type": room_type if isinstance(room_type, str) else None,
    }
    entry.update({k: v for k, v in optional.items() if v})
    return entry


@dataclass(frozen=True)
class PublicRoomsQuery:
    limit: int
    since: PageToken | None
    search: str | None = None
    room_types: list[str | None] | None = None


class RoomDirectoryHandler:
    def __init__(self, writer: RoomWriter, rooms: RoomStore, directory: DirectoryStore,
                 cache_size: int = 5000) -> None:
        self._writer = writer
        self._rooms = rooms
        self._directory = directory
        self._summaries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = cache_size
        writer.add_listener(self._on_event)
        # Asks other servers for their directories (federation.remote_queries.
        # RemoteQueries); set by the composition root when federation is on.
        self.remote: Any = None

    def _on_event(self, persisted: PersistedEvent) -> None:
        if persisted.event.is_state() and persisted.event.type in _SUMMARY_TYPES:
            self._summaries.pop(persisted.event.room_id, None)

    async def _summary(self, room_id: str) -> dict[str, Any]:
        cached = self._summaries.get(room_id)
        if cached is None:
            cached = summarise(room_id, await self._writer.current_state_events(room_id))
            self._summaries[room_id] = cached
            while len(self._summaries) > self._cache_size:
                self._summaries.popitem(last=False)
        else:
            self._summaries.move_to_end(room_id)
        return cached

    # Visibility -----------------------------------------------------------------

    async def visibility(self, room_id: str) -> str:
        if await self._rooms.get_room_version(room_id) is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Room not found")
        return "public" if await self._rooms.is_public(room_id) else "private"

    async def set_visibility(self, user_id: str, room_id: str, visibility: str) -> None:
        if visibility not in ("public", "private"):
            raise MatrixError(400, Codes.INVALID_PARAM, "visibility must be public or private")
        state = await self._writer.current_state_events(room_id)
        if not state:
            raise MatrixError(404, Codes.NOT_FOUND, "Room not found")
        if not can_moderate_listing(state, user_id):
            raise MatrixError(403, Codes.FORBIDDEN, "You need to be a moderator in the room "
                              "to edit its room list entry")
        await self._rooms.set_public(room_id, visibility == "public")
        logger.info("%s set %s to %s in the room directory", user_id, room_id, visibility)

    # /publicRooms -------------------------------------------------------------------

    async def public_rooms(self, query: PublicRoomsQuery) -> dict[str, Any]:
        entries = []
        for room_id, joined in await self._directory.published_rooms():
            summary = await self._summary(room_id) if self._filtered(query) else None
            if summary is not None and not self._matches(summary, query):
                continue
            entries.append(((-joined, room_id), summary))
        page, before, after = self._page(entries, query)
        chunk = []
        for key, summary in page:
            entry = dict(summary if summary is not None else await self._summary(key[1]))
            entry["num_joined_members"] = -key[0]
            chunk.append(entry)
        response: dict[str, Any] = {"chunk": chunk, "total_room_count_estimate": len(entries)}
        if page and after:
            response["next_batch"] = str(PageToken(True, page[-1][0]))
        if page and before:
            response["prev_batch"] = str(PageToken(False, page[0][0]))
        return response

    def check_remote_reachable(self, server: str) -> None:
        """404 when federation is off: no other server's directory can be reached."""
        if self.remote is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Cannot reach the room directory of {server}")

    async def remote_public_rooms(self, server: str, body: dict[str, Any]) -> dict[str, Any]:
        """Another server's directory, asked over federation (`body` as the client sent it)."""
        self.check_remote_reachable(server)
        return dict(await self.remote.public_rooms(server, body))

    @staticmethod
    def _filtered(query: PublicRoomsQuery) -> bool:
        return bool(query.search) or query.room_types is not None

    @staticmethod
    def _matches(summary: dict[str, Any], query: PublicRoomsQuery) -> bool:
        if query.room_types is not None and summary.get("room_type") not in query.room_types:
            return False
        if query.search:
            term = query.search.casefold()
            text = (summary.get(k) for k in ("name", "topic", "canonical_alias", "room_id"))
            return any(term in value.casefold() for value in text if value)
        return True

    @staticmethod
    def _page(entries: list[tuple[Key, Any]], query: PublicRoomsQuery
              ) -> tuple[list[tuple[Key, Any]], bool, bool]:
        """The page the query asks for, and whether rooms exist before and after it."""
        since = query.since
        if since is None:
            return entries[:query.limit], False, len(entries) > query.limit
        if since.forward:
            rest = [e for e in entries if e[0] > since.key]
            return rest[:query.limit], True, len(rest) > query.limit
        earlier = [e for e in entries if e[0] < since.key]
        start = max(0, len(earlier) - query.limit)
        return earlier[start:], start > 0, True
