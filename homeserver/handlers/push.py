"""Push rules applied to new events, and the unread counts they add up to.

Spec (push module, "Server behaviour"): when an event arrives, the server
processes push rules for each local user in the room, excluding the sender.
The room writer asks `PushActionEvaluator` before persisting an event, so
the notifications commit in the event's own transaction.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from federation.protocol import identifiers
from federation.protocol.events import CREATE_KEY, MEMBER, POWER_LEVELS_KEY, Event, StateKey
from federation.protocol.power_levels import notification_level, user_power_level

from ..push.evaluator import PushContext, evaluate
from ..rooms.threads import thread_of
from ..storage.events import EventStore, PushActionRow
from ..storage.push_actions import PushActionStore
from .push_rules import PushRulesHandler

logger = logging.getLogger(__name__)


class PushActionEvaluator:
    """Implements the room writer's `PushActionSource`."""

    def __init__(self, events: EventStore, rules: PushRulesHandler, server_name: str) -> None:
        self._events = events
        self._rules = rules
        self._server_name = server_name

    async def push_actions(self, state: Mapping[StateKey, str], event: Event
                           ) -> list[PushActionRow]:
        members = await self._events.get_events(
            eid for key, eid in state.items() if key[0] == MEMBER)
        joined = {e.state_key: e for e in members.values()
                  if e.membership == "join" and isinstance(e.state_key, str)}
        recipients = [u for u in joined if self._is_local(u) and u != event.sender]
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
        for user_id in recipients:
            member = joined.get(user_id)
            decision = evaluate(rules[user_id], fields, context, user_id,
                                _display_name(member) if member is not None else None)
            # Only notifying actions count (Synapse stores only these as well).
            if decision is not None and decision.notify:
                rows.append(PushActionRow(user_id, decision.highlight, thread_id))
        return rows

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
    """The /sync handler's `UnreadCounter`."""

    def __init__(self, counts: PushActionStore) -> None:
        self._counts = counts

    async def unread_counts(self, user_id: str, room_id: str) -> dict[str, int]:
        counts = await self._counts.unread_counts(user_id, room_id)
        return {"notification_count": counts.notifications,
                "highlight_count": counts.highlights}
