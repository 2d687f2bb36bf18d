"""Space hierarchies (spec: client-server API `GET /rooms/{roomId}/hierarchy`,
server-server API `GET /hierarchy/{roomId}`): a space's rooms and sub-spaces,
from the `m.space.child` state of the rooms this server holds.

A room is shown to whoever could peek into it or join it: world-readable,
public or knockable rooms, rooms the user (or for federation, a user of the
requesting server) is joined to or invited to, and restricted rooms when they
are in one of the allowed rooms. For clients, children we do not hold are
asked of their `via` servers (federation `/hierarchy`); for other servers
they are left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from federation.acl import SERVER_ACL, server_allowed
from federation.protocol.errors import Codes, MatrixError
from federation.protocol.events import CREATE_KEY, JOIN_RULES_KEY, MEMBER, Event, StateKey
from federation.protocol.identifiers import server_of

from ..rooms.writer import RoomWriter
from .room_directory import summarise

SPACE_CHILD = "m.space.child"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# Rooms one walk visits at most: a bound on work however large or looped the graph.
MAX_ROOMS_WALKED = 1000
_ORDER = re.compile(r"[\x20-\x7E]{1,50}")
_TOKEN = re.compile(r"h(\d{1,9})\.(-|\d{1,4})\.([01])")


@dataclass(frozen=True)
class Reader:
    """Who asks: a local user (client API) or a server (federation)."""

    user_id: str | None = None
    server: str | None = None

    def matches(self, member: str) -> bool:
        if self.user_id is not None:
            return member == self.user_id
        try:
            return server_of(member) == self.server
        except ValueError:
            return False


@dataclass(frozen=True)
class HierarchyQuery:
    limit: int = DEFAULT_LIMIT
    max_depth: int | None = None
    suggested_only: bool = False
    since: str | None = None


def _via(content: Mapping[str, Any]) -> list[str]:
    """A child's `via`: a non-empty list of strings, else no child (spec: m.space.child)."""
    via = content.get("via")
    if isinstance(via, list) and via and all(isinstance(v, str) for v in via):
        return via
    return []


def _order_key(content: Mapping[str, Any], ts: Any, state_key: str) -> tuple[int, str, int, str]:
    """Valid `order` first (by code point), then the rest by timestamp, then room ID."""
    order = content.get("order")
    ts = ts if isinstance(ts, int) else 0
    if isinstance(order, str) and _ORDER.fullmatch(order):
        return (0, order, ts, state_key)
    return (1, "", ts, state_key)


def children_events(state: dict[StateKey, Event], suggested_only: bool) -> list[Event]:
    """The space's valid `m.space.child` events, in the spec's order."""
    children = [e for key, e in state.items() if key[0] == SPACE_CHILD and _via(e.content)
                and (not suggested_only or e.content.get("suggested") is True)]
    return sorted(children, key=lambda e: _order_key(e.content, e.origin_server_ts,
                                                     e.state_key or ""))


def _remote_children(children_state: list[dict[str, Any]], suggested_only: bool
                     ) -> list[tuple[str, list[str]]]:
    """(room ID, via) of a remote room's valid children, in the spec's order."""
    valid = [e for e in children_state if isinstance(e.get("content"), dict)
             and e.get("type") == SPACE_CHILD and _via(e["content"])
             and (not suggested_only or e["content"].get("suggested") is True)]
    valid.sort(key=lambda e: _order_key(e["content"], e.get("origin_server_ts"),
                                        e["state_key"]))
    return [(e["state_key"], _via(e["content"])) for e in valid]


def _stripped(event: Event) -> dict[str, Any]:
    return {"type": event.type, "state_key": event.state_key, "content": event.content,
            "sender": event.sender, "origin_server_ts": event.origin_server_ts}


def _allowed_room_ids(state: dict[StateKey, Event]) -> list[str]:
    rules = state.get(JOIN_RULES_KEY)
    allow = rules.content.get("allow") if rules is not None else None
    if not isinstance(allow, list):
        return []
    return [a["room_id"] for a in allow if isinstance(a, dict)
            and a.get("type") == "m.room_membership" and isinstance(a.get("room_id"), str)]


def _join_rule(state: dict[StateKey, Event]) -> str:
    rules = state.get(JOIN_RULES_KEY)
    value = rules.content.get("join_rule") if rules is not None else None
    return value if isinstance(value, str) else "invite"


def room_summary(room_id: str, state: dict[StateKey, Event]) -> dict[str, Any]:
    """`PublishedRoomsChunk` plus the hierarchy's fields (room_type, room_version,
    allowed_room_ids, encryption)."""
    summary = summarise(room_id, state)
    summary["num_joined_members"] = sum(
        1 for key, e in state.items() if key[0] == MEMBER and e.membership == "join")
    create = state.get(CREATE_KEY)
    version = create.content.get("room_version", "1") if create is not None else None
    if isinstance(version, str):
        summary["room_version"] = version
    if summary.get("join_rule") in ("restricted", "knock_restricted"):
        summary["allowed_room_ids"] = _allowed_room_ids(state)
    encryption = state.get(("m.room.encryption", ""))
    algorithm = encryption.content.get("algorithm") if encryption is not None else None
    if isinstance(algorithm, str):
        summary["encryption"] = algorithm
    return summary


# A room's hierarchy entry: its summary with `children_state`, and its children's
# (room ID, via servers).
Entry = tuple[dict[str, Any], list[tuple[str, list[str]]]]


class SpaceHierarchyHandler:
    def __init__(self, writer: RoomWriter) -> None:
        self._writer = writer
        # Asks other servers about rooms we don't hold (federation.remote_queries.
        # RemoteQueries); set by the composition root when federation is on.
        self.remote: Any = None

    async def _state(self, room_id: str) -> dict[StateKey, Event]:
        return await self._writer.current_state_events(room_id)

    async def accessible(self, state: dict[StateKey, Event], reader: Reader) -> bool:
        """Whether the reader could peek into or join the room (spec: server behaviour)."""
        if reader.server is not None:
            acl = state.get((SERVER_ACL, ""))
            if not server_allowed(acl.content if acl is not None else None, reader.server):
                return False
        join_rule = _join_rule(state)
        if join_rule in ("public", "knock", "knock_restricted"):
            return True
        visibility = state.get(("m.room.history_visibility", ""))
        if visibility is not None and \
                visibility.content.get("history_visibility") == "world_readable":
            return True
        if self._has_member(state, reader, ("join", "invite")):
            return True
        if join_rule == "restricted":
            for allowed in _allowed_room_ids(state):
                if self._has_member(await self._state(allowed), reader, ("join",)):
                    return True
        return False

    @staticmethod
    def _has_member(state: dict[StateKey, Event], reader: Reader,
                    memberships: tuple[str, ...]) -> bool:
        return any(key[0] == MEMBER and reader.matches(key[1]) and e.membership in memberships
                   for key, e in state.items())

    # Federation ---------------------------------------------------------------------

    async def federation_hierarchy(self, origin: str, room_id: str, suggested_only: bool
                                   ) -> dict[str, Any]:
        """`{room, children, inaccessible_children}` for a server; 404 when it may not look."""
        reader = Reader(server=origin)
        state = await self._state(room_id)
        if not state or not await self.accessible(state, reader):
            raise MatrixError(404, Codes.NOT_FOUND, "Unknown room")
        child_events = children_events(state, suggested_only)
        room = {**room_summary(room_id, state),
                "children_state": [_stripped(e) for e in child_events]}
        children, inaccessible = [], []
        for event in child_events:
            child_id = event.state_key or ""
            child_state = await self._state(child_id)
            if not child_state:
                continue  # not ours to describe
            if await self.accessible(child_state, reader):
                children.append(room_summary(child_id, child_state))
            else:
                inaccessible.append(child_id)
        return {"room": room, "children": children, "inaccessible_children": inaccessible}

    # Client -------------------------------------------------------------------------

    async def client_hierarchy(self, user_id: str, room_id: str, query: HierarchyQuery
                               ) -> dict[str, Any]:
        """`{rooms, next_batch?}`: depth-first from `room_id`, one page of it."""
        start = _parse_token(query) if query.since else 0
        rooms = await self._walk(room_id, Reader(user_id=user_id), query, start + query.limit)
        if not rooms:
            raise MatrixError(403, Codes.FORBIDDEN, "You may not see this room's hierarchy")
        response: dict[str, Any] = {"rooms": rooms[start:start + query.limit]}
        if len(rooms) > start + query.limit:
            response["next_batch"] = _token(start + query.limit, query)
        return response

    async def _walk(self, room_id: str, reader: Reader, query: HierarchyQuery, wanted: int
                    ) -> list[dict[str, Any]]:
        """Pre-order depth-first over accessible rooms, `wanted` rooms at most
        (plus one, to tell whether another page exists); empty if the reader may
        not see `room_id` itself. A root we don't hold is asked of the server its
        ID names, if any (v12 room IDs name none)."""
        rooms: list[dict[str, Any]] = []
        seen = {room_id}
        learnt: dict[str, dict[str, Any]] = {}  # summaries of children from remote answers
        stack: list[tuple[str, list[str], int]] = [(room_id, _servers_named_by(room_id), 0)]
        while stack and len(rooms) <= wanted and len(seen) <= MAX_ROOMS_WALKED:
            current, via, depth = stack.pop()
            entry = await self._entry(current, via, reader, query.suggested_only, learnt)
            if entry is None:
                continue
            summary, children = entry
            if query.max_depth is not None and depth >= query.max_depth:
                rooms.append({**summary, "children_state": []})
                continue
            rooms.append(summary)
            fresh = [(child, child_via, depth + 1) for child, child_via in children
                     if child not in seen]
            seen.update(child for child, _, _ in fresh)
            stack.extend(reversed(fresh))
        return rooms

    async def _entry(self, room_id: str, via: list[str], reader: Reader, suggested_only: bool,
                     learnt: dict[str, dict[str, Any]]) -> Entry | None:
        """A room's entry if the reader may see it: from our state when we hold the
        room, else from its `via` servers."""
        state = await self._state(room_id)
        if state:
            if not await self.accessible(state, reader):
                return None
            events = children_events(state, suggested_only)
            return ({**room_summary(room_id, state),
                     "children_state": [_stripped(e) for e in events]},
                    [(e.state_key or "", _via(e.content)) for e in events])
        if self.remote is None or not via:
            return None
        known = learnt.get(room_id)
        if known is not None and known.get("room_type") != "m.space":
            summary = {**known, "children_state": []}  # a leaf: its parent's answer suffices
        else:
            answer = await self.remote.hierarchy(via, room_id, suggested_only)
            if answer is None:
                return None
            for child in answer["children"]:
                learnt.setdefault(child["room_id"], child)
            summary = answer["room"]
        if not await self._remote_accessible(summary, reader):
            return None
        return summary, _remote_children(summary["children_state"], suggested_only)

    async def _remote_accessible(self, summary: dict[str, Any], reader: Reader) -> bool:
        """The client-side checks of a room another server described to us."""
        join_rule = summary.get("join_rule")
        if join_rule in ("public", "knock", "knock_restricted") or \
                summary.get("world_readable") is True:
            return True
        allowed = summary.get("allowed_room_ids")
        if join_rule == "restricted" and isinstance(allowed, list):
            for room_id in allowed:
                if isinstance(room_id, str) and \
                        self._has_member(await self._state(room_id), reader, ("join",)):
                    return True
        return False


def _servers_named_by(room_id: str) -> list[str]:
    try:
        return [server_of(room_id)]
    except ValueError:
        return []


def _token(offset: int, query: HierarchyQuery) -> str:
    depth = "-" if query.max_depth is None else str(query.max_depth)
    return f"h{offset}.{depth}.{int(query.suggested_only)}"


def _parse_token(query: HierarchyQuery) -> int:
    """The offset in a `from` token; 400 when it is not ours or the query changed."""
    match = _TOKEN.fullmatch(query.since or "")
    if match is None:
        raise MatrixError(400, Codes.INVALID_PARAM, "Unknown pagination token")
    depth = None if match[2] == "-" else int(match[2])
    if depth != query.max_depth or bool(int(match[3])) != query.suggested_only:
        raise MatrixError(400, Codes.INVALID_PARAM,
                          "max_depth and suggested_only cannot change while paginating")
    return int(match[1])
