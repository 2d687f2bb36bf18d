"""Push rules applied to new events, and the unread counts they add up to.

Spec (push module, "Server behaviour"): when an event arrives, the server
processes push rules for each local user in the room, excluding the sender.
The room writer asks `PushActionEvaluator` before persisting an event, so
the notifications commit in the event's own transaction.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Mapping

from federation.protocol import identifiers
from federation.protocol.events import CREATE_KEY, MEMBER, POWER_LEVELS_KEY, Event, StateKey
from federation.protocol.power_levels import notification_level, user_power_level

from ..push.evaluator import EventEvaluation, PushContext
from ..rooms.threads import thread_of
from ..rooms.writer import PersistedEvent
from ..storage.events import EventStore, PushActionRow
from ..storage.push_actions import PushActionStore
from .push_rules import PushRulesHandler

logger = logging.getLogger(__name__)


# Rooms whose members are kept for push rules (one entry per room's current state).
MEMBERS_CACHE_SIZE = 1000


class PushActionEvaluator:
    """Implements the room writer's `PushActionSource`."""

    def __init__(self, events: EventStore, rules: PushRulesHandler, server_name: str) -> None:
        self._events = events
        self._rules = rules
        self._server_name = server_name
        self._members_by_group: OrderedDict[tuple[str, int | None],
                                            tuple[dict[str, Event], list[str]]] = OrderedDict()

    async def push_actions(self, state: Mapping[StateKey, str], event: Event,
                           state_group: int | None = None) -> list[PushActionRow]:
        joined, local = await self._members(event.room_id, state, state_group)
        recipients = [u for u in local if u != event.sender]
        invitee = _invitee(event)
        if invitee is not None and self._is_local(invitee) and invitee not in recipients:
            recipients.append(invitee)
        if not recipients:
            return []
        context = await self._context(state, event, len(joined))
        rules = await self._rules.rules_for_users(recipients)
        fields = _event_fields(event)
        thread_id = await thread_of(self._events, event)
        rows: list[PushActionRow] = []
        evaluation = EventEvaluation(fields, context)
        for user_id in recipients:
            member = joined.get(user_id)
            decision = evaluation.decide(rules[user_id], user_id,
                                         _display_name(member) if member is not None else None)
            # Only notifying actions count (Synapse stores only these as well).
            if decision is not None and decision.notify:
                rows.append(PushActionRow(user_id, decision.highlight, thread_id))
        return rows

    async def _members(self, room_id: str, state: Mapping[StateKey, str],
                       state_group: int | None) -> tuple[dict[str, Event], list[str]]:
        """The joined members' member events, and the local members: read once
        per state group rather than once per message."""
        key = (room_id, state_group)
        found = self._members_by_group.get(key) if state_group is not None else None
        if found is not None:
            self._members_by_group.move_to_end(key)
            return found
        members = await self._events.get_events(
            eid for (kind, _), eid in state.items() if kind == MEMBER)
        joined = {e.state_key: e for e in members.values()
                  if e.membership == "join" and isinstance(e.state_key, str)}
        found = (joined, [u for u in joined if self._is_local(u)])
        if state_group is not None:
            self._members_by_group[key] = found
            while len(self._members_by_group) > MEMBERS_CACHE_SIZE:
                self._members_by_group.popitem(last=False)
        return found

    def _is_local(self, user_id: str) -> bool:
        try:
            return identifiers.server_of(user_id) == self._server_name
        except ValueError:
            return False

    async def _context(self, state: Mapping[StateKey, str], event: Event, member_count: int
                       ) -> PushContext:
        ids = {k: state[k] for k in (CREATE_KEY, POWER_LEVELS_KEY) if k in state}
        loaded = await self._events.get_events(ids.values())
        auth_state = {k: loaded[eid] for k, eid in ids.items() if eid in loaded}
        if CREATE_KEY not in auth_state:
            return PushContext(member_count)
        levels = auth_state.get(POWER_LEVELS_KEY)
        notifications = levels.content.get("notifications") if levels is not None else None
        keys = notifications if isinstance(notifications, dict) else {}
        return PushContext(
            room_member_count=member_count,
            sender_power_level=user_power_level(event.sender, auth_state),
            notification_levels={k: notification_level(auth_state, k) for k in keys},
        )


def _invitee(event: Event) -> str | None:
    """An invited user is not yet a member but is notified (`.m.rule.invite_for_me`)."""
    if event.type == MEMBER and event.membership == "invite" and event.state_key:
        return event.state_key
    return None


def _display_name(member: Event) -> str | None:
    name = member.content.get("displayname")
    return name if isinstance(name, str) else None


def _event_fields(event: Event) -> dict[str, Any]:
    """The event as push rules see it (v12 create events carry no room_id)."""
    fields = dict(event.pdu)
    fields["room_id"] = event.room_id
    return fields


class UnreadNotifications:
    """The /sync handler's `UnreadCounter`, with counts kept in memory.

    A cached count is exact: new push actions increment it as their event is
    persisted; a read receipt past every notification zeroes it (the usual
    receipt: for the newest message); other receipts and membership
    changes drop it. A database read that raced with a change is not cached
    (the per-key generation moved on).
    """

    def __init__(self, counts: PushActionStore, cache_size: int = 50_000) -> None:
        self._counts = counts
        # (user, room) -> [notifications, highlights, newest notification's position]
        self._cache: OrderedDict[tuple[str, str], list[int]] = OrderedDict()
        self._generation: dict[tuple[str, str], int] = {}
        self._cache_size = cache_size

    async def unread_counts(self, user_id: str, room_id: str) -> dict[str, int]:
        key = (user_id, room_id)
        cached = self._cache.get(key)
        if cached is None:
            generation = self._generation.get(key, 0)
            counts = await self._counts.unread_counts(user_id, room_id)
            cached = [counts.notifications, counts.highlights, counts.newest]
            if self._generation.get(key, 0) == generation:
                self._cache[key] = cached
                while len(self._cache) > self._cache_size:
                    evicted, _ = self._cache.popitem(last=False)
                    self._generation.pop(evicted, None)
        return {"notification_count": cached[0], "highlight_count": cached[1]}

    def _changed(self, key: tuple[str, str]) -> None:
        self._generation[key] = self._generation.get(key, 0) + 1

    def event_persisted(self, persisted: PersistedEvent) -> None:
        """Room writer listener: count new notifications; a membership change
        moves where counting starts, so forget that user's count."""
        room_id = persisted.event.room_id
        for row in persisted.push_actions:
            key = (row.user_id, room_id)
            self._changed(key)
            cached = self._cache.get(key)
            if cached is not None:
                cached[0] += 1
                cached[1] += int(row.highlight)
                cached[2] = max(cached[2], persisted.stream_ordering)
        event = persisted.event
        if event.type == "m.room.member" and event.state_key:
            self.forget(event.state_key, room_id)

    def receipt_stored(self, user_id: str, room_id: str, thread_id: str,
                       read_position: int) -> None:
        """A read receipt (m.read or m.read.private) of the event at `read_position`.
        Unthreaded and at or past every notification the user has in the room
        (read or not: a receipt may also move back), it reads them all, whatever
        the other receipts say (see push_actions.unread_counts_txn); otherwise
        the count is read again."""
        key = (user_id, room_id)
        cached = self._cache.get(key)
        if cached is not None and not thread_id and cached[2] <= read_position:
            self._changed(key)
            cached[0] = cached[1] = 0
            return
        self.forget(user_id, room_id)

    def forget(self, user_id: str, room_id: str) -> None:
        """A membership change or a receipt: recount from the database next time."""
        key = (user_id, room_id)
        self._changed(key)
        self._cache.pop(key, None)
