"""The state machine of one 1:1 call, sans-I/O.

Inputs are method calls (remote events, local decisions, timers, media state); outputs
are action objects the engine carries out (send an event, apply an SDP, start a timer).
States the GUI renders: preparing, invite_sent (outgoing ringing), ringing (incoming),
connecting, connected, ended (with a reason and who ended it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from client.calls import events as ev


class CallState(enum.Enum):
    PREPARING = "preparing"
    INVITE_SENT = "invite_sent"
    RINGING = "ringing"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ENDED = "ended"


# Local end reasons that never go on the wire (the spec's hangup reasons are in events.py).
REJECTED = "user_rejected"  # the callee declined
ANSWERED_ELSEWHERE = "answered_elsewhere"  # another of our devices took or declined it
REPLACED = "replaced"  # glare: this call gave way to the other side's


@dataclass(frozen=True)
class SendEvent:
    event_type: str
    content: dict[str, Any]


@dataclass(frozen=True)
class ApplyRemoteDescription:
    """Set the peer's SDP; for an offer inside a call, answer it with `Call.negotiation_answer`."""
    kind: str  # "offer" or "answer"
    sdp: str
    renegotiation: bool = False


@dataclass(frozen=True)
class AddRemoteCandidates:
    candidates: list[dict[str, Any]]


@dataclass(frozen=True)
class StartTimer:
    name: str
    delay_ms: int


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class StateChanged:
    old: CallState
    new: CallState
    reason: str | None = None


@dataclass(frozen=True)
class RemoteMetadata:
    metadata: dict[str, Any]


Action = (SendEvent | ApplyRemoteDescription | AddRemoteCandidates | StartTimer | CancelTimer
          | StateChanged | RemoteMetadata)

INVITE_TIMER = "invite"  # the caller's wait for an answer, and the callee's ringing
CONNECT_TIMER = "connect"  # ICE must connect within this once answered


@dataclass
class Call:
    call_id: str
    room_id: str
    party_id: str
    outgoing: bool
    lifetime_ms: int = ev.DEFAULT_LIFETIME_MS
    connect_timeout_ms: int = 30_000
    invitee: str | None = None
    state: CallState = CallState.PREPARING
    end_reason: str | None = None
    ended_by_remote: bool = False
    remote_user_id: str | None = None
    remote_party_id: str | None = None
    remote_metadata: dict[str, Any] = field(default_factory=dict)
    media_seen: bool = False
    _pending_candidates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def new_outgoing(cls, room_id: str, invitee: str | None = None,
                     lifetime_ms: int = ev.DEFAULT_LIFETIME_MS, call_id: str | None = None,
                     party_id: str | None = None) -> Call:
        return cls(call_id=call_id or ev.new_call_id(), room_id=room_id,
                   party_id=party_id or ev.new_party_id(), outgoing=True,
                   lifetime_ms=lifetime_ms, invitee=invitee, remote_user_id=invitee)

    @classmethod
    def from_invite(cls, room_id: str, sender: str, content: dict[str, Any], our_user_id: str,
                    age_ms: int = 0, party_id: str | None = None) -> tuple[Call, list[Action]] | None:
        """A ringing call for a received invite, or None when the invite is not for us."""
        if not ev.is_supported_version(content) or sender == our_user_id:
            return None
        invitee = content.get("invitee")
        if invitee is not None and invitee != our_user_id:
            return None
        offer = ev.description_of(content, "offer")
        lifetime = content.get("lifetime")
        call_id = content.get("call_id")
        if offer is None or offer[0] != "offer" or not isinstance(call_id, str):
            return None
        if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
            return None
        remaining = lifetime - max(age_ms, 0)  # the spec judges expiry with unsigned.age
        if remaining <= 0:
            return None
        call = cls(call_id=call_id, room_id=room_id, party_id=party_id or ev.new_party_id(),
                   outgoing=False, lifetime_ms=lifetime, invitee=invitee,
                   remote_user_id=sender, remote_party_id=_party(content))
        call.remote_metadata = dict(content.get("sdp_stream_metadata") or {})
        actions = call._move(CallState.RINGING)
        actions += [ApplyRemoteDescription("offer", offer[1]), StartTimer(INVITE_TIMER, remaining)]
        return call, actions

    # -- local decisions ------------------------------------------------------------------

    @property
    def polite(self) -> bool:
        """The callee is always the polite peer in renegotiation glare."""
        return not self.outgoing

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    def offer_created(self, sdp: str, metadata: dict[str, Any] | None = None) -> list[Action]:
        """The caller's offer is ready: send the invite and wait `lifetime` for an answer."""
        if self.state is not CallState.PREPARING:
            return []
        content = ev.invite(self.call_id, self.party_id, sdp, self.lifetime_ms, metadata,
                            self.invitee)
        return [SendEvent(ev.INVITE, content), *self._move(CallState.INVITE_SENT),
                StartTimer(INVITE_TIMER, self.lifetime_ms)]

    def answer_created(self, sdp: str, metadata: dict[str, Any] | None = None) -> list[Action]:
        """The callee accepted and its answer is ready."""
        if self.state is not CallState.RINGING:
            return []
        return [CancelTimer(INVITE_TIMER),
                SendEvent(ev.ANSWER, ev.answer(self.call_id, self.party_id, sdp, metadata)),
                *self._connecting()]

    def local_candidates(self, batch: list[dict[str, Any]]) -> list[Action]:
        if self.ended or not batch:
            return []
        return [SendEvent(ev.CANDIDATES, ev.candidates(self.call_id, self.party_id, batch))]

    def renegotiate(self, sdp: str, metadata: dict[str, Any] | None = None) -> list[Action]:
        """A new local offer inside the call (track added or removed, screen share, hold)."""
        if self.state not in (CallState.CONNECTING, CallState.CONNECTED):
            return []
        return [SendEvent(ev.NEGOTIATE, ev.negotiate(self.call_id, self.party_id, "offer", sdp,
                                                     self.lifetime_ms, metadata))]

    def negotiation_answer(self, sdp: str, metadata: dict[str, Any] | None = None) -> list[Action]:
        if self.ended:
            return []
        return [SendEvent(ev.NEGOTIATE, ev.negotiate(self.call_id, self.party_id, "answer", sdp,
                                                     self.lifetime_ms, metadata))]

    def metadata_changed(self, metadata: dict[str, Any]) -> list[Action]:
        """Mute or unmute: no new SDP needed."""
        if self.ended:
            return []
        return [SendEvent(ev.METADATA_CHANGED,
                          ev.metadata_changed(self.call_id, self.party_id, metadata))]

    def hangup(self, reason: str = ev.USER_HANGUP) -> list[Action]:
        """End the call locally; a ringing callee rejects instead of hanging up."""
        if self.ended:
            return []
        if self.state is CallState.RINGING and reason == ev.USER_HANGUP:
            return [SendEvent(ev.REJECT, ev.reject(self.call_id, self.party_id)),
                    *self._end(REJECTED)]
        if self.state is CallState.PREPARING:
            return self._end(reason)  # nothing was sent yet
        return [SendEvent(ev.HANGUP, ev.hangup(self.call_id, self.party_id, reason)),
                *self._end(reason)]

    def replace(self) -> list[Action]:
        """Glare: give way to the peer's call (hang ours up if it was sent)."""
        if self.ended:
            return []
        sent = self.state is not CallState.PREPARING
        actions: list[Action] = []
        if sent:
            actions.append(SendEvent(ev.HANGUP, ev.hangup(self.call_id, self.party_id)))
        return actions + self._end(REPLACED)

    def peer_left(self) -> list[Action]:
        """The other party left the room: the spec treats it as a hangup."""
        if self.ended:
            return []
        return self._end(ev.USER_HANGUP, remote=True)

    # -- media and timers -------------------------------------------------------------------

    def media_connected(self) -> list[Action]:
        if self.state is not CallState.CONNECTING:
            return []
        self.media_seen = True
        return [CancelTimer(CONNECT_TIMER), *self._move(CallState.CONNECTED)]

    def media_failed(self) -> list[Action]:
        """ICE failed or media stopped: ice_timeout once media flowed, ice_failed before."""
        return self.hangup(ev.ICE_TIMEOUT if self.media_seen else ev.ICE_FAILED)

    def timer_fired(self, name: str) -> list[Action]:
        if name == INVITE_TIMER and self.state is CallState.INVITE_SENT:
            return self.hangup(ev.INVITE_TIMEOUT)
        if name == INVITE_TIMER and self.state is CallState.RINGING:
            return self._end(ev.INVITE_TIMEOUT)  # the caller hangs up; we just stop ringing
        if name == CONNECT_TIMER and self.state is CallState.CONNECTING:
            return self.media_failed()
        return []

    # -- remote events ----------------------------------------------------------------------

    def receive(self, sender: str, event_type: str, content: dict[str, Any],
                our_user_id: str) -> list[Action]:
        """A call event of this call from the room timeline (our own echoes included)."""
        if self.ended or content.get("call_id") != self.call_id:
            return []
        party = _party(content)
        if party == self.party_id and sender == our_user_id:
            return []  # our own echo
        handler = _HANDLERS.get(event_type)
        if handler is None:
            return []
        return handler(self, sender, party, content, our_user_id)

    def _on_answer(self, sender: str, party: str | None, content: dict[str, Any],
                   our_user_id: str) -> list[Action]:
        if not self.outgoing:
            return self._other_device_took_it(sender, our_user_id, party)
        answer = ev.description_of(content, "answer")
        if self.state is not CallState.INVITE_SENT or answer is None or party is None:
            return []  # a later answer from another device: it stops on our select_answer
        self.remote_user_id, self.remote_party_id = sender, party
        self.remote_metadata = dict(content.get("sdp_stream_metadata") or {})
        actions: list[Action] = [
            CancelTimer(INVITE_TIMER),
            SendEvent(ev.SELECT_ANSWER, ev.select_answer(self.call_id, self.party_id, party)),
            ApplyRemoteDescription("answer", answer[1])]
        buffered = self._pending_candidates.pop(party, [])
        self._pending_candidates.clear()
        if buffered:
            actions.append(AddRemoteCandidates(buffered))
        return actions + self._connecting()

    def _on_candidates(self, sender: str, party: str | None, content: dict[str, Any],
                       our_user_id: str) -> list[Action]:
        batch = [c for c in content.get("candidates") or [] if isinstance(c, dict)]
        if not batch or party is None:
            return []
        if self.outgoing and self.remote_party_id is None:
            self._pending_candidates.setdefault(party, []).extend(batch)
            return []  # held until we select this party's answer
        if party != self.remote_party_id:
            return []
        return [AddRemoteCandidates(batch)]

    def _on_select_answer(self, sender: str, party: str | None, content: dict[str, Any],
                          our_user_id: str) -> list[Action]:
        if self.outgoing or party != self.remote_party_id:
            return []
        if content.get("selected_party_id") != self.party_id:
            return self._end(ANSWERED_ELSEWHERE)  # another device of ours won: stop silently
        return []

    def _on_negotiate(self, sender: str, party: str | None, content: dict[str, Any],
                      our_user_id: str) -> list[Action]:
        description = ev.description_of(content, "description")
        if description is None or party != self.remote_party_id:
            return []
        if self.state not in (CallState.CONNECTING, CallState.CONNECTED):
            return []
        actions: list[Action] = []
        if "sdp_stream_metadata" in content:
            self.remote_metadata = dict(content["sdp_stream_metadata"] or {})
            actions.append(RemoteMetadata(self.remote_metadata))
        kind, sdp = description
        if kind not in ("offer", "answer"):
            return actions
        return actions + [ApplyRemoteDescription(kind, sdp, renegotiation=True)]

    def _on_metadata_changed(self, sender: str, party: str | None, content: dict[str, Any],
                             our_user_id: str) -> list[Action]:
        metadata = content.get("sdp_stream_metadata")
        if party != self.remote_party_id or not isinstance(metadata, dict):
            return []
        self.remote_metadata = dict(metadata)
        return [RemoteMetadata(self.remote_metadata)]

    def _on_reject(self, sender: str, party: str | None, content: dict[str, Any],
                   our_user_id: str) -> list[Action]:
        if not self.outgoing:
            return self._other_device_took_it(sender, our_user_id, party)
        if self.state is not CallState.INVITE_SENT:
            return []  # rejected after another device answered: ignored
        return [CancelTimer(INVITE_TIMER), *self._end(REJECTED, remote=True)]

    def _on_hangup(self, sender: str, party: str | None, content: dict[str, Any],
                   our_user_id: str) -> list[Action]:
        from_peer = party == self.remote_party_id or (
            self.outgoing and self.remote_party_id is None and sender != our_user_id)
        if not from_peer:
            return []
        return [CancelTimer(INVITE_TIMER), CancelTimer(CONNECT_TIMER),
                *self._end(ev.hangup_reason(content), remote=True)]

    def _other_device_took_it(self, sender: str, our_user_id: str,
                              party: str | None) -> list[Action]:
        """A callee device of ours answered or rejected elsewhere: stop ringing here."""
        if sender != our_user_id or party == self.party_id or self.state is not CallState.RINGING:
            return []
        return [CancelTimer(INVITE_TIMER), *self._end(ANSWERED_ELSEWHERE)]

    # -- transitions ------------------------------------------------------------------------

    def _connecting(self) -> list[Action]:
        return [*self._move(CallState.CONNECTING),
                StartTimer(CONNECT_TIMER, self.connect_timeout_ms)]

    def _end(self, reason: str, remote: bool = False) -> list[Action]:
        self.end_reason, self.ended_by_remote = reason, remote
        return [*self._move(CallState.ENDED, reason), CancelTimer(INVITE_TIMER),
                CancelTimer(CONNECT_TIMER)]

    def _move(self, new: CallState, reason: str | None = None) -> list[Action]:
        old, self.state = self.state, new
        return [StateChanged(old, new, reason)]


def _party(content: dict[str, Any]) -> str | None:
    party = content.get("party_id")
    return party if isinstance(party, str) else None


_HANDLERS = {
    ev.ANSWER: Call._on_answer,
    ev.CANDIDATES: Call._on_candidates,
    ev.SELECT_ANSWER: Call._on_select_answer,
    ev.NEGOTIATE: Call._on_negotiate,
    ev.METADATA_CHANGED: Call._on_metadata_changed,
    ev.REJECT: Call._on_reject,
    ev.HANGUP: Call._on_hangup,
}
