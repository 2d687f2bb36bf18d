"""All calls of one client, sans-I/O: routes room events to calls and resolves glare.

Glare (spec, "Glare"): when the peer's invite arrives while ours is still being prepared,
ours is dropped and theirs answered; when ours was already sent, the lower `call_id` wins —
the side holding the higher call hangs it up and answers the other automatically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from client.calls import events as ev
from client.calls.state import Action, Call, CallState

_OUTGOING_UNANSWERED = (CallState.PREPARING, CallState.INVITE_SENT)


@dataclass
class Routed:
    """What one room event did: per-call actions, and a new incoming call if any."""
    actions: list[tuple[Call, list[Action]]] = field(default_factory=list)
    incoming: Call | None = None
    auto_answer: bool = False  # glare: the incoming call replaces one of ours


KEEP_ENDED = 50  # ended calls remembered, so late events for them are recognised and dropped


class CallRegistry:
    def __init__(self, our_user_id: str) -> None:
        self.our_user_id = our_user_id
        self.calls: dict[str, Call] = {}  # insertion order = oldest first

    def forget_old(self) -> list[str]:
        """Drop the oldest ended calls beyond `KEEP_ENDED`; returns their IDs."""
        ended = [call_id for call_id, call in self.calls.items() if call.ended]
        dropped = ended[:max(0, len(ended) - KEEP_ENDED)]
        for call_id in dropped:
            del self.calls[call_id]
        return dropped

    def place(self, room_id: str, invitee: str | None = None,
              lifetime_ms: int = ev.DEFAULT_LIFETIME_MS) -> Call:
        call = Call.new_outgoing(room_id, invitee=invitee, lifetime_ms=lifetime_ms)
        self.calls[call.call_id] = call
        return call

    def ringing_from(self, room_id: str, user_id: str | None) -> Call | None:
        """An incoming call ringing in this room (from `user_id` when given)."""
        for call in self.calls.values():
            if (not call.outgoing and call.room_id == room_id
                    and call.state is CallState.RINGING
                    and user_id in (None, call.remote_user_id)):
                return call
        return None

    def active(self) -> list[Call]:
        return [call for call in self.calls.values() if not call.ended]

    def receive(self, room_id: str, sender: str, event_type: str, content: dict[str, Any],
                age_ms: int = 0, state_key: str | None = None) -> Routed:
        if event_type == "m.room.member" and isinstance(content, dict):
            return self._membership(room_id, state_key, content)
        if event_type not in ev.CALL_EVENT_TYPES or not isinstance(content, dict):
            return Routed()
        if event_type == ev.INVITE:
            return self._receive_invite(room_id, sender, content, age_ms)
        call = self.calls.get(content.get("call_id"))  # type: ignore[arg-type]
        if call is None or call.room_id != room_id:
            return Routed()
        return Routed(actions=[(call, call.receive(sender, event_type, content,
                                                   self.our_user_id))])

    def _membership(self, room_id: str, user_id: str | None, content: dict[str, Any]) -> Routed:
        if content.get("membership") not in ("leave", "ban") or user_id is None:
            return Routed()
        return Routed(actions=[(call, call.peer_left()) for call in self.active()
                               if call.room_id == room_id and call.remote_user_id == user_id])

    def _receive_invite(self, room_id: str, sender: str, content: dict[str, Any],
                        age_ms: int) -> Routed:
        if content.get("call_id") in self.calls:
            return Routed()  # our own invite's echo, or a duplicate
        created = Call.from_invite(room_id, sender, content, self.our_user_id, age_ms)
        if created is None:
            return Routed()
        incoming, actions = created
        ours = self._glaring_call(room_id, sender)
        if ours is None:
            self.calls[incoming.call_id] = incoming
            return Routed(actions=[(incoming, actions)], incoming=incoming)
        if ours.state is CallState.INVITE_SENT and ours.call_id < incoming.call_id:
            return Routed()  # ours wins: the peer hangs theirs up and answers ours
        self.calls[incoming.call_id] = incoming
        return Routed(actions=[(ours, ours.replace()), (incoming, actions)],
                      incoming=incoming, auto_answer=True)

    def _glaring_call(self, room_id: str, sender: str) -> Call | None:
        for call in self.calls.values():
            if (call.outgoing and call.room_id == room_id and call.state in _OUTGOING_UNANSWERED
                    and call.invitee in (None, sender)):
                return call
        return None
