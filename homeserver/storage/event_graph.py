"""The room DAG as federation reads it: auth chains, backfill and missing
events (spec: server-server API, "Backfilling and retrieving missing events").

Edges are read from the stored PDUs (`prev_events`, `auth_events`, plus the
v12 create event every auth chain implies) and kept in a bounded cache: an
event's edges never change once it is stored. Walks go level by level, one
query per level, so a long walk never holds the single SQLite writer.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from federation.protocol.events import Event
from federation.protocol.room_versions import KNOWN_ROOM_VERSIONS

from .database import Database
from .schema import events

# Walks never read more than this many levels (a DAG deeper than this per call
# is hostile or broken; callers get what was found so far).
MAX_LEVELS = 10_000
_CHUNK = 500


@dataclass(frozen=True)
class GraphNode:
    """One stored event's place in its room's DAG."""

    event_id: str
    room_id: str
    depth: int
    stream_ordering: int
    prev_ids: tuple[str, ...]
    # `auth_events`, plus the create event in v12 rooms (see Event.auth_and_create_event_ids).
    auth_ids: tuple[str, ...]
    outlier: bool
    rejected: bool


class EventGraphStore:
    def __init__(self, db: Database, cache_size: int = 100_000) -> None:
        self._db = db
        self._cache: OrderedDict[str, GraphNode] = OrderedDict()
        self._cache_size = cache_size

    async def nodes(self, event_ids: Iterable[str]) -> dict[str, GraphNode]:
        """The stored events among `event_ids` (unknown IDs are left out).

        An outlier may later take its place in the DAG (the room writer persists
        it again), so a cached outlier's flags are read again each time; only
        its edges, which never change, come from the cache.
        """
        wanted = list(dict.fromkeys(event_ids))
        found = {eid: self._cache[eid] for eid in wanted
                 if eid in self._cache and not self._cache[eid].outlier}
        outliers = [eid for eid in wanted if eid not in found and eid in self._cache]
        missing = [eid for eid in wanted if eid not in found and eid not in self._cache]
        if outliers:
            flags = await self._db.run("get_graph_flags", lambda c: _load_flags(c, outliers))
            for eid, (outlier, rejected) in flags.items():
                found[eid] = self._remember(replace(self._cache[eid], outlier=outlier,
                                                    rejected=rejected))
        if missing:
            for node in await self._db.run("get_graph_nodes", lambda c: _load_nodes(c, missing)):
                found[node.event_id] = self._remember(node)
        return found

    def _remember(self, node: GraphNode) -> GraphNode:
        self._cache[node.event_id] = node
        self._cache.move_to_end(node.event_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return node

    async def auth_chain_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Every stored event reachable through auth events from `event_ids`
        (the given events themselves only when reachable from another)."""
        chain: set[str] = set()
        frontier = [a for n in (await self.nodes(event_ids)).values() for a in n.auth_ids]
        for _ in range(MAX_LEVELS):
            frontier = [eid for eid in dict.fromkeys(frontier) if eid not in chain]
            if not frontier:
                break
            level = await self.nodes(frontier)
            chain.update(level)
            frontier = [a for n in level.values() for a in n.auth_ids]
        return chain

    async def backfill_ids(self, room_id: str, from_ids: Iterable[str], limit: int) -> list[str]:
        """Breadth-first back along prev_events from `from_ids` (included), newest
        first within a level: at most `limit` accepted events of the room's DAG."""
        found = await self._walk_back(room_id, list(from_ids), set(), limit, 0)
        return [n.event_id for n in found]

    async def missing_event_ids(self, room_id: str, earliest: Iterable[str],
                                latest: Iterable[str], limit: int, min_depth: int) -> list[str]:
        """Breadth-first back along prev_events from (not including) `latest`,
        never entering `earliest` or events below `min_depth`: at most `limit`
        events of the room, oldest first (spec: /get_missing_events)."""
        latest_ids = list(latest)
        seen = set(earliest) | set(latest_ids)
        starts = _newest_first(await self.nodes(latest_ids), room_id)
        found = await self._walk_back(room_id, [p for n in starts for p in n.prev_ids], seen,
                                      limit, min_depth)
        return [n.event_id for n in sorted(found, key=lambda n: (n.depth, n.stream_ordering))]

    async def _walk_back(self, room_id: str, frontier: list[str], seen: set[str], limit: int,
                         min_depth: int) -> list[GraphNode]:
        """Level by level along prev_events; rejected events are walked through
        but not returned, outliers and other rooms' events neither."""
        found: list[GraphNode] = []
        for _ in range(MAX_LEVELS):
            frontier = [eid for eid in dict.fromkeys(frontier) if eid not in seen]
            if not frontier or len(found) >= limit:
                break
            seen.update(frontier)
            level = _newest_first(await self.nodes(frontier), room_id)
            frontier = []
            for node in level:
                if len(found) >= limit:
                    break
                if node.depth < min_depth:
                    continue
                if not node.rejected:
                    found.append(node)
                frontier.extend(node.prev_ids)
        return found


def _newest_first(nodes: dict[str, GraphNode], room_id: str) -> list[GraphNode]:
    """The room's DAG events among `nodes`, by descending (depth, stream ordering)."""
    in_room = [n for n in nodes.values() if n.room_id == room_id and not n.outlier]
    return sorted(in_room, key=lambda n: (n.depth, n.stream_ordering), reverse=True)


def _load_nodes(conn: Connection, event_ids: list[str]) -> list[GraphNode]:
    nodes = []
    for start in range(0, len(event_ids), _CHUNK):
        rows = conn.execute(sa.select(
            events.c.event_id, events.c.room_id, events.c.room_version, events.c.depth,
            events.c.stream_ordering, events.c.json, events.c.outlier, events.c.rejected_reason,
        ).where(events.c.event_id.in_(event_ids[start:start + _CHUNK])))
        for row in rows:
            version = KNOWN_ROOM_VERSIONS.get(row.room_version)
            if version is None:
                continue
            event = Event(json.loads(row.json), version, event_id=row.event_id)
            nodes.append(GraphNode(
                row.event_id, row.room_id, int(row.depth), int(row.stream_ordering),
                tuple(_ids(event.prev_event_ids)), tuple(_ids(event.auth_and_create_event_ids())),
                bool(row.outlier), row.rejected_reason is not None))
    return nodes


def _load_flags(conn: Connection, event_ids: list[str]) -> dict[str, tuple[bool, bool]]:
    """event ID -> (outlier, rejected), without parsing any JSON."""
    flags = {}
    for start in range(0, len(event_ids), _CHUNK):
        rows = conn.execute(sa.select(
            events.c.event_id, events.c.outlier, events.c.rejected_reason,
        ).where(events.c.event_id.in_(event_ids[start:start + _CHUNK])))
        flags.update({r.event_id: (bool(r.outlier), r.rejected_reason is not None)
                      for r in rows})
    return flags


def _ids(values: list[object]) -> list[str]:
    """Event IDs from a stored list (rejected PDUs may hold anything)."""
    return [v for v in values if isinstance(v, str)]
