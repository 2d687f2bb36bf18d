"""State resolution v2 (room versions 2-11) and v2.1 (room version 12).

`resolve_state` takes the state sets to merge and a way to look events up; it
does no I/O of its own, so a server can run it in a thread pool. The steps
follow the spec's "Algorithm" section; v2.1's changes are marked.
"""

from __future__ import annotations

import heapq
import logging
from typing import Callable, Collection, Iterable, Mapping, Sequence

from .auth_events import auth_types_for
from .auth_rules import check_auth_rules
from .errors import AuthError
from .events import CREATE_KEY, MEMBER, POWER_LEVELS, POWER_LEVELS_KEY, JOIN_RULES, Event
from .events import StateKey
from .power_levels import user_power_level
from .room_versions import RoomVersion, StateResVersion

logger = logging.getLogger(__name__)

EventLookup = Callable[[str], "Event | None"]
StateMap = Mapping[StateKey, str]


def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    get_event: EventLookup,
) -> dict[StateKey, str]:
    """Resolve `state_sets` (maps of `(type, state_key)` -> event ID) into one."""
    unconflicted, conflicted = separate(state_sets)
    if not conflicted:
        return dict(unconflicted)
    graph = _AuthGraph(get_event)
    conflicted_ids = {eid for ids in conflicted.values() for eid in ids}
    full = conflicted_ids | auth_difference(state_sets, graph)
    v21 = room_version.state_res is StateResVersion.V2_1
    if v21:
        # v2.1: the full conflicted set also holds the conflicted state subgraph.
        full |= conflicted_subgraph(conflicted_ids, graph)
    full = {eid for eid in full if graph.event(eid) is not None}

    # Step 1: power events and their auth chains within the full conflicted set.
    power = {eid for eid in full if is_power_event(graph.event(eid))}  # type: ignore[arg-type]
    x = set(power)
    for eid in power:
        x |= graph.auth_chain(eid) & full
    sorted_power = reverse_topological_power_sort(x, graph)
    # Step 2: iterative auth checks; v2.1 starts from an empty state.
    base: dict[StateKey, str] = {} if v21 else dict(unconflicted)
    resolved = iterative_auth_checks(base, sorted_power, graph)
    # Step 3: the rest, in mainline order of the resolved power levels.
    rest = mainline_sort(full - x, resolved.get(POWER_LEVELS_KEY), graph)
    # Step 4: iterative auth checks on the partially resolved state.
    resolved = iterative_auth_checks(resolved, rest, graph)
    # Step 5: the unconflicted state map always wins.
    resolved.update(unconflicted)
    return resolved


def separate(state_sets: Sequence[StateMap]) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """Split into the unconflicted map and the conflicted set, per key.

    A key missing from any state set is conflicted.
    """
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    keys = {k for s in state_sets for k in s}
    for key in keys:
        values = {s.get(key) for s in state_sets}
        if len(values) == 1 and None not in values:
            unconflicted[key] = values.pop()  # type: ignore[assignment]
        else:
            conflicted[key] = {v for v in values if v is not None}
    return unconflicted, conflicted


def is_power_event(event: Event) -> bool:
    """Power levels, join rules, and kicks or bans (sender != state_key)."""
    if not event.is_state():
        return False
    if event.type in (POWER_LEVELS, JOIN_RULES) and event.state_key == "":
        return True
    return (
        event.type == MEMBER
        and event.membership in ("leave", "ban")
        and event.sender != event.state_key
    )


class _AuthGraph:
    """Events by ID with memoised auth chains (v12 create events included)."""

    def __init__(self, get_event: EventLookup) -> None:
        self._get_event = get_event
        self._events: dict[str, Event | None] = {}
        self._chains: dict[str, frozenset[str]] = {}

    def event(self, event_id: str) -> Event | None:
        if event_id not in self._events:
            self._events[event_id] = self._get_event(event_id)
        return self._events[event_id]

    def auth_ids(self, event_id: str) -> list[str]:
        event = self.event(event_id)
        return event.auth_and_create_event_ids() if event is not None else []

    def auth_chain(self, event_id: str) -> frozenset[str]:
        """All events reachable through auth_events (excluding the event itself)."""
        if event_id in self._chains:
            return self._chains[event_id]
        # Iterative post-order walk, so that deep DAGs don't hit the recursion limit.
        stack: list[tuple[str, bool]] = [(event_id, False)]
        while stack:
            eid, expanded = stack.pop()
            if eid in self._chains:
                continue
            parents = self.auth_ids(eid)
            if expanded:
                chain: set[str] = set(parents)
                for parent in parents:
                    chain |= self._chains.get(parent, frozenset())
                self._chains[eid] = frozenset(chain)
                continue
            stack.append((eid, True))
            stack.extend((p, False) for p in parents if p not in self._chains)
        return self._chains[event_id]


def auth_difference(state_sets: Sequence[StateMap], graph: _AuthGraph) -> set[str]:
    """∪Cᵢ − ∩Cᵢ, where Cᵢ is the full auth chain of state set i."""
    chains: list[set[str]] = []
    for state_set in state_sets:
        chain: set[str] = set()
        for eid in state_set.values():
            chain.add(eid)
            chain |= graph.auth_chain(eid)
        chains.append(chain)
    if not chains:
        return set()
    return set.union(*chains) - set.intersection(*chains)


def conflicted_subgraph(conflicted_ids: Collection[str], graph: _AuthGraph) -> set[str]:
    """v2.1: every event on an auth path between two conflicted events (endpoints included)."""
    conflicted = set(conflicted_ids)
    backwards: set[str] = set(conflicted)
    for eid in conflicted:
        backwards |= graph.auth_chain(eid)
    # An event is on such a path when a conflicted event is reachable from it.
    reaches: dict[str, bool] = {}
    for eid in backwards:
        if eid not in reaches:
            reaches[eid] = eid in conflicted or bool(graph.auth_chain(eid) & conflicted)
    return {eid for eid in backwards if reaches[eid]}


def sender_power_for_sort(event: Event, graph: _AuthGraph) -> int:
    """The sender's power level according to the event's own auth events."""
    auth_state: dict[StateKey, Event] = {}
    for aid in event.auth_and_create_event_ids():
        auth_event = graph.event(aid)
        if auth_event is not None and auth_event.is_state():
            auth_state[auth_event.state_key_tuple] = auth_event
    if CREATE_KEY not in auth_state:
        return 0
    return user_power_level(event.sender, auth_state)


def lexicographical_topological_sort(
    graph: Mapping[str, Iterable[str]], key: Callable[[str], tuple]
) -> list[str]:
    """Kahn's algorithm over `graph` (node -> the nodes it points back to),
    emitting at each step the smallest ready node by `key`; oldest first."""
    nodes = set(graph)  # built once: per node it made the sort quadratic
    pending = {node: set(edges) & nodes for node, edges in graph.items()}
    children: dict[str, set[str]] = {node: set() for node in graph}
    for node, parents in pending.items():
        for parent in parents:
            children[parent].add(node)
    ready = [(key(n), n) for n, parents in pending.items() if not parents]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for child in children[node]:
            pending[child].discard(node)
            if not pending[child]:
                heapq.heappush(ready, (key(child), child))
    return order


def reverse_topological_power_sort(event_ids: Collection[str], graph: _AuthGraph) -> list[str]:
    """Order by auth DAG, then higher sender power, earlier timestamp, lower ID."""
    ids = set(event_ids)
    edges = {eid: [a for a in graph.auth_ids(eid) if a in ids] for eid in ids}
    power = {eid: sender_power_for_sort(graph.event(eid), graph) for eid in ids}  # type: ignore[arg-type]

    def order(eid: str) -> tuple[int, int, str]:
        return (-power[eid], graph.event(eid).origin_server_ts, eid)  # type: ignore[union-attr]

    return lexicographical_topological_sort(edges, order)


def _power_levels_parent(event_id: str, graph: _AuthGraph) -> str | None:
    for aid in graph.auth_ids(event_id):
        auth_event = graph.event(aid)
        if auth_event is not None and auth_event.is_state() and (
            auth_event.state_key_tuple == POWER_LEVELS_KEY
        ):
            return aid
    return None


def mainline_sort(
    event_ids: Collection[str], power_levels_id: str | None, graph: _AuthGraph
) -> list[str]:
    """Sort by mainline position relative to `power_levels_id`, then ts, then ID.

    Positions are numbered from the oldest mainline event (1) to P (n), so a
    plain ascending sort gives the spec's order; 0 means no mainline event.
    """
    mainline: list[str] = []
    current = power_levels_id
    while current is not None and current not in mainline:
        mainline.append(current)
        current = _power_levels_parent(current, graph)
    depth_of = {eid: i for i, eid in enumerate(reversed(mainline), start=1)}

    def mainline_depth(event_id: str) -> int:
        seen: set[str] = set()
        current = _power_levels_parent(event_id, graph)
        while current is not None and current not in seen:
            if current in depth_of:
                return depth_of[current]
            seen.add(current)
            current = _power_levels_parent(current, graph)
        return 0

    def order(eid: str) -> tuple[int, int, str]:
        return (mainline_depth(eid), graph.event(eid).origin_server_ts, eid)  # type: ignore[union-attr]

    return sorted(event_ids, key=order)


def iterative_auth_checks(
    base: Mapping[StateKey, str], event_ids: Sequence[str], graph: _AuthGraph
) -> dict[StateKey, str]:
    """Apply each state event in order if it passes auth against the state so far.

    Keys missing from the state come from the event's own (non-rejected) auth
    events; rejected auth events are never used.
    """
    state = dict(base)
    for eid in event_ids:
        event = graph.event(eid)
        if event is None or not event.is_state():
            continue
        auth_state = _auth_state_for(event, state, graph)
        try:
            check_auth_rules(event, auth_state)
        except AuthError as exc:
            logger.debug("state res: %s not allowed: %s", eid, exc)
            continue
        state[event.state_key_tuple] = eid
    return state


def _auth_state_for(
    event: Event, state: Mapping[StateKey, str], graph: _AuthGraph
) -> dict[StateKey, Event]:
    auth_state: dict[StateKey, Event] = {}
    for aid in event.auth_and_create_event_ids():
        auth_event = graph.event(aid)
        if auth_event is not None and auth_event.is_state() and auth_event.rejected_reason is None:
            auth_state[auth_event.state_key_tuple] = auth_event
    for key in (CREATE_KEY, *auth_types_for(event)):
        if key in state:
            current = graph.event(state[key])
            if current is not None and current.rejected_reason is None:
                auth_state[key] = current
    return auth_state
