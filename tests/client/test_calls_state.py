"""The pure call state machine and glare resolution: every transition, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from client.calls import events as ev
from client.calls.registry import CallRegistry
from client.calls.state import (
    ANSWERED_ELSEWHERE,
    CONNECT_TIMER,
    INVITE_TIMER,
    REJECTED,
    REPLACED,
    AddRemoteCandidates,
    ApplyRemoteDescription,
    Call,
    CallState,
    CancelTimer,
    RemoteMetadata,
    SendEvent,
    StartTimer,
    StateChanged,
)

ALICE, BOB = "@alice:hs", "@bob:hs"
ROOM = "!room:hs"


def sent(actions: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(a.event_type, a.content) for a in actions if isinstance(a, SendEvent)]


def states(actions: list[Any]) -> list[tuple[CallState, CallState, str | None]]:
    return [(a.old, a.new, a.reason) for a in actions if isinstance(a, StateChanged)]


def outgoing_sent(lifetime: int = 60_000) -> Call:
    call = Call.new_outgoing(ROOM, invitee=BOB, lifetime_ms=lifetime, call_id="c1",
                             party_id="alicep")
    call.offer_created("v=0 offer")
    return call


def incoming(content: dict[str, Any] | None = None, age_ms: int = 0,
             our: str = BOB) -> tuple[Call, list[Any]]:
    content = content or ev.invite("c1", "alicep", "v=0 offer", 60_000, invitee=BOB)
    created = Call.from_invite(ROOM, ALICE, content, our, age_ms, party_id="bobp")
    assert created is not None
    return created


def test_outgoing_invite_carries_version_party_lifetime_invitee_metadata() -> None:
    call = Call.new_outgoing(ROOM, invitee=BOB, lifetime_ms=60_000)
    assert call.state is CallState.PREPARING
    metadata = ev.stream_metadata({"s1": ev.USERMEDIA})
    actions = call.offer_created("v=0 offer", metadata)
    [(kind, content)] = sent(actions)
    assert kind == ev.INVITE
    assert content == {"call_id": call.call_id, "party_id": call.party_id, "version": "1",
                       "offer": {"type": "offer", "sdp": "v=0 offer"}, "lifetime": 60_000,
                       "invitee": BOB, "sdp_stream_metadata": metadata}
    assert states(actions) == [(CallState.PREPARING, CallState.INVITE_SENT, None)]
    assert StartTimer(INVITE_TIMER, 60_000) in actions
    assert call.offer_created("again") == []  # only once


def test_ids_are_alphanumeric_and_distinct() -> None:
    assert ev.new_party_id().isalnum() and len(ev.new_party_id()) == 8
    assert len({ev.new_call_id() for _ in range(100)}) == 100


def test_answer_selects_the_party_and_applies_sdp_then_connects() -> None:
    call = outgoing_sent()
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"}
    early = call.receive(BOB, ev.CANDIDATES, ev.candidates("c1", "bobp", [candidate]), ALICE)
    assert early == []  # held until the answer from that party is selected
    actions = call.receive(BOB, ev.ANSWER, ev.answer("c1", "bobp", "v=0 answer"), ALICE)
    assert sent(actions) == [(ev.SELECT_ANSWER, {"call_id": "c1", "party_id": "alicep",
                                                 "version": "1", "selected_party_id": "bobp"})]
    assert ApplyRemoteDescription("answer", "v=0 answer") in actions
    assert AddRemoteCandidates([candidate]) in actions
    assert CancelTimer(INVITE_TIMER) in actions
    assert StartTimer(CONNECT_TIMER, call.connect_timeout_ms) in actions
    assert call.state is CallState.CONNECTING and call.remote_party_id == "bobp"
    second = call.receive(BOB, ev.ANSWER, ev.answer("c1", "otherp", "v=0 late"), ALICE)
    assert second == []  # a second device's answer is ignored after selection
    later = call.receive(BOB, ev.CANDIDATES, ev.candidates("c1", "otherp", [candidate]), ALICE)
    assert later == []
    assert call.receive(BOB, ev.CANDIDATES, ev.candidates("c1", "bobp", [candidate]),
                        ALICE) == [AddRemoteCandidates([candidate])]


def test_media_connected_then_remote_hangup() -> None:
    call = outgoing_sent()
    call.receive(BOB, ev.ANSWER, ev.answer("c1", "bobp", "sdp"), ALICE)
    assert states(call.media_connected()) == [(CallState.CONNECTING, CallState.CONNECTED, None)]
    assert call.media_connected() == []
    actions = call.receive(BOB, ev.HANGUP, ev.hangup("c1", "bobp"), ALICE)
    assert states(actions) == [(CallState.CONNECTED, CallState.ENDED, ev.USER_HANGUP)]
    assert call.ended_by_remote and call.end_reason == ev.USER_HANGUP
    assert call.hangup() == []  # ended is final
    assert call.receive(BOB, ev.HANGUP, ev.hangup("c1", "bobp"), ALICE) == []


@pytest.mark.parametrize("content_reason,expected", [
    (None, ev.USER_HANGUP), ("ice_failed", ev.ICE_FAILED), ("user_busy", ev.USER_BUSY),
    ("martian", ev.UNKNOWN_ERROR)])
def test_hangup_reason_read_as_the_spec_says(content_reason: str | None, expected: str) -> None:
    call, _ = incoming()
    call.answer_created("sdp")
    content = {"call_id": "c1", "party_id": "alicep", "version": "1"}
    if content_reason is not None:
        content["reason"] = content_reason
    call.receive(ALICE, ev.HANGUP, content, BOB)
    assert call.end_reason == expected


def test_local_hangup_sends_reason() -> None:
    call = outgoing_sent()
    actions = call.hangup()
    assert sent(actions) == [(ev.HANGUP, ev.hangup("c1", "alicep", ev.USER_HANGUP))]
    assert call.end_reason == ev.USER_HANGUP and not call.ended_by_remote


def test_hangup_while_preparing_sends_nothing() -> None:
    call = Call.new_outgoing(ROOM)
    actions = call.hangup()
    assert sent(actions) == [] and call.ended


def test_invite_timeout_on_the_caller_hangs_up() -> None:
    call = outgoing_sent()
    actions = call.timer_fired(INVITE_TIMER)
    assert sent(actions) == [(ev.HANGUP, ev.hangup("c1", "alicep", ev.INVITE_TIMEOUT))]
    assert call.end_reason == ev.INVITE_TIMEOUT


def test_invite_timer_after_answer_does_nothing() -> None:
    call = outgoing_sent()
    call.receive(BOB, ev.ANSWER, ev.answer("c1", "bobp", "sdp"), ALICE)
    assert call.timer_fired(INVITE_TIMER) == []
    assert call.state is CallState.CONNECTING


def test_connect_timeout_is_ice_failed() -> None:
    call = outgoing_sent()
    call.receive(BOB, ev.ANSWER, ev.answer("c1", "bobp", "sdp"), ALICE)
    actions = call.timer_fired(CONNECT_TIMER)
    assert sent(actions) == [(ev.HANGUP, ev.hangup("c1", "alicep", ev.ICE_FAILED))]


def test_media_lost_after_flowing_is_ice_timeout() -> None:
    call = outgoing_sent()
    call.receive(BOB, ev.ANSWER, ev.answer("c1", "bobp", "sdp"), ALICE)
    call.media_connected()
    actions = call.media_failed()
    assert sent(actions) == [(ev.HANGUP, ev.hangup("c1", "alicep", ev.ICE_TIMEOUT))]
    assert call.timer_fired(CONNECT_TIMER) == []


def test_reject_ends_the_caller() -> None:
    call = outgoing_sent()
    actions = call.receive(BOB, ev.REJECT, ev.reject("c1", "bobp"), ALICE)
    assert states(actions) == [(CallState.INVITE_SENT, CallState.ENDED, REJECTED)]
    assert call.ended_by_remote


def test_incoming_rings_applies_offer_and_times_out_with_age() -> None:
    call, actions = incoming(age_ms=20_000)
    assert call.state is CallState.RINGING and call.remote_party_id == "alicep"
    assert ApplyRemoteDescription("offer", "v=0 offer") in actions
    assert StartTimer(INVITE_TIMER, 40_000) in actions
    assert not call.outgoing and call.polite
    ended = call.timer_fired(INVITE_TIMER)
    assert sent(ended) == [] and call.end_reason == ev.INVITE_TIMEOUT


def test_callee_answers_and_gets_selected() -> None:
    call, _ = incoming()
    actions = call.answer_created("v=0 answer", ev.stream_metadata({"s": ev.USERMEDIA}))
    [(kind, content)] = sent(actions)
    assert kind == ev.ANSWER and content["answer"] == {"type": "answer", "sdp": "v=0 answer"}
    assert content["party_id"] == "bobp" and content["version"] == "1"
    assert call.state is CallState.CONNECTING
    assert call.receive(ALICE, ev.SELECT_ANSWER,
                        ev.select_answer("c1", "alicep", "bobp"), BOB) == []
    assert call.state is CallState.CONNECTING


def test_callee_not_selected_stops_silently() -> None:
    call, _ = incoming()
    call.answer_created("sdp")
    actions = call.receive(ALICE, ev.SELECT_ANSWER, ev.select_answer("c1", "alicep", "other"),
                           BOB)
    assert sent(actions) == [] and call.end_reason == ANSWERED_ELSEWHERE


def test_ringing_callee_rejects() -> None:
    call, _ = incoming()
    actions = call.hangup()
    assert sent(actions) == [(ev.REJECT, ev.reject("c1", "bobp"))]
    assert call.end_reason == REJECTED


def test_another_device_of_ours_answering_stops_the_ringing() -> None:
    call, _ = incoming()
    assert call.receive(BOB, ev.ANSWER, ev.answer("c1", "bobp", "sdp"), BOB) == []  # echo
    actions = call.receive(BOB, ev.ANSWER, ev.answer("c1", "bobphone", "sdp"), BOB)
    assert call.end_reason == ANSWERED_ELSEWHERE and sent(actions) == []


def test_caller_candidates_reach_a_ringing_callee() -> None:
    call, _ = incoming()
    batch = [{"candidate": "candidate:1 1 udp 1 127.0.0.1 5 typ host", "sdpMLineIndex": 0}]
    assert call.receive(ALICE, ev.CANDIDATES, ev.candidates("c1", "alicep", batch),
                        BOB) == [AddRemoteCandidates(batch)]
    assert call.receive(ALICE, ev.CANDIDATES, ev.candidates("c1", "alicep", []), BOB) == []


@pytest.mark.parametrize("content", [
    ev.invite("c1", "alicep", "sdp", 60_000, invitee="@carol:hs"),  # another member targeted
    {**ev.invite("c1", "alicep", "sdp", 60_000), "version": 0},  # legacy version 0
    {**ev.invite("c1", "alicep", "sdp", 60_000), "lifetime": "soon"},
    {**ev.invite("c1", "alicep", "sdp", 60_000), "offer": {"type": "answer", "sdp": "x"}},
    {**ev.invite("c1", "alicep", "sdp", 60_000), "offer": "v=0"},
    {k: v for k, v in ev.invite("c1", "alicep", "sdp", 60_000).items() if k != "call_id"},
])
def test_invites_not_for_us_are_ignored(content: dict[str, Any]) -> None:
    assert Call.from_invite(ROOM, ALICE, content, BOB) is None


def test_expired_invite_is_ignored_and_integer_version_accepted() -> None:
    content = {**ev.invite("c1", "alicep", "sdp", 60_000), "version": 1}
    assert Call.from_invite(ROOM, ALICE, content, BOB, age_ms=60_001) is None
    assert Call.from_invite(ROOM, ALICE, content, BOB, age_ms=59_000) is not None
    assert Call.from_invite(ROOM, BOB, content, BOB) is None  # our own invite


def test_renegotiation_offer_and_answer() -> None:
    call = outgoing_sent()
    call.receive(BOB, ev.ANSWER, ev.answer("c1", "bobp", "sdp"), ALICE)
    call.media_connected()
    [(kind, content)] = sent(call.renegotiate("v=0 new offer"))
    assert kind == ev.NEGOTIATE and content["description"] == {"type": "offer",
                                                               "sdp": "v=0 new offer"}
    assert content["lifetime"] == 60_000
    metadata = ev.stream_metadata({"s": ev.USERMEDIA, "screen": ev.SCREENSHARE})
    offer = ev.negotiate("c1", "bobp", "offer", "v=0 their offer", 60_000, metadata)
    actions = call.receive(BOB, ev.NEGOTIATE, offer, ALICE)
    assert actions == [RemoteMetadata(metadata),
                       ApplyRemoteDescription("offer", "v=0 their offer", renegotiation=True)]
    [(kind, content)] = sent(call.negotiation_answer("v=0 answer"))
    assert content["description"]["type"] == "answer"
    stranger = ev.negotiate("c1", "otherp", "offer", "x", 60_000)
    assert call.receive(BOB, ev.NEGOTIATE, stranger, ALICE) == []


def test_renegotiation_refused_before_answer() -> None:
    assert outgoing_sent().renegotiate("sdp") == []


def test_mute_sends_metadata_changed_and_peer_metadata_is_kept() -> None:
    call = outgoing_sent()
    call.receive(BOB, ev.ANSWER, ev.answer("c1", "bobp", "sdp"), ALICE)
    muted = ev.stream_metadata({"s": ev.USERMEDIA}, audio_muted=True)
    [(kind, content)] = sent(call.metadata_changed(muted))
    assert kind == ev.METADATA_CHANGED and content["sdp_stream_metadata"] == muted
    actions = call.receive(BOB, ev.METADATA_CHANGED, ev.metadata_changed("c1", "bobp", muted),
                           ALICE)
    assert actions == [RemoteMetadata(muted)] and call.remote_metadata == muted


def test_events_of_other_calls_are_ignored() -> None:
    call = outgoing_sent()
    assert call.receive(BOB, ev.ANSWER, ev.answer("other", "bobp", "sdp"), ALICE) == []
    assert call.receive(BOB, "m.room.message", {"call_id": "c1"}, ALICE) == []


# -- the registry: routing and glare ---------------------------------------------------------


def test_registry_rings_for_an_invite_and_routes_follow_ups() -> None:
    registry = CallRegistry(BOB)
    routed = registry.receive(ROOM, ALICE, ev.INVITE,
                              ev.invite("c1", "alicep", "sdp", 60_000))
    assert routed.incoming is not None and not routed.auto_answer
    call = routed.incoming
    assert registry.receive(ROOM, ALICE, ev.INVITE,
                            ev.invite("c1", "alicep", "sdp", 60_000)).incoming is None
    call.answer_created("sdp")
    hung = registry.receive(ROOM, ALICE, ev.HANGUP, ev.hangup("c1", "alicep"))
    assert hung.actions and call.ended
    assert registry.receive("!other:hs", ALICE, ev.HANGUP, ev.hangup("c1", "alicep")).actions \
        == []
    assert registry.active() == []


def _glare(ours_id: str, theirs_id: str, sent_ours: bool = True) -> tuple[Call, Any]:
    registry = CallRegistry(ALICE)
    ours = registry.place(ROOM, invitee=BOB)
    ours.call_id = ours_id
    registry.calls = {ours_id: ours}
    if sent_ours:
        ours.offer_created("sdp")
    routed = registry.receive(ROOM, BOB, ev.INVITE, ev.invite(theirs_id, "bobp", "sdp", 60_000))
    return ours, routed


def test_glare_lower_call_id_wins_on_our_side() -> None:
    ours, routed = _glare("aaa", "bbb")
    assert routed.incoming is None and routed.actions == []
    assert ours.state is CallState.INVITE_SENT


def test_glare_their_lower_call_id_replaces_ours_and_auto_answers() -> None:
    ours, routed = _glare("bbb", "aaa")
    assert routed.auto_answer and routed.incoming is not None
    assert routed.incoming.call_id == "aaa"
    assert ours.end_reason == REPLACED
    [(first_call, first_actions), _] = routed.actions
    assert first_call is ours and sent(first_actions)[0][0] == ev.HANGUP


def test_glare_while_preparing_drops_ours_unsent() -> None:
    ours, routed = _glare("aaa", "bbb", sent_ours=False)
    assert routed.auto_answer and ours.end_reason == REPLACED
    assert sent(routed.actions[0][1]) == []


def test_glare_both_sides_end_in_one_call() -> None:
    """Both registries see both invites, in either order: exactly one call survives."""
    alice, bob = CallRegistry(ALICE), CallRegistry(BOB)
    a_call, b_call = alice.place(ROOM, invitee=BOB), bob.place(ROOM, invitee=ALICE)
    a_invite = sent(a_call.offer_created("sdp"))[0][1]
    b_invite = sent(b_call.offer_created("sdp"))[0][1]
    a_routed = alice.receive(ROOM, BOB, ev.INVITE, b_invite)
    b_routed = bob.receive(ROOM, ALICE, ev.INVITE, a_invite)
    winner = min(a_call.call_id, b_call.call_id)
    survivors = {call.call_id for call in [a_call, b_call] if not call.ended}
    answered = {r.incoming.call_id for r in (a_routed, b_routed) if r.incoming and r.auto_answer}
    assert survivors == {winner} and answered == {winner}


def test_the_peer_leaving_the_room_is_a_hangup() -> None:
    registry = CallRegistry(ALICE)
    call = registry.place(ROOM, invitee=BOB)
    call.offer_created("sdp")
    other_room = registry.receive("!elsewhere:hs", BOB, "m.room.member", {"membership": "leave"},
                                  state_key=BOB)
    joined = registry.receive(ROOM, BOB, "m.room.member", {"membership": "join"}, state_key=BOB)
    assert other_room.actions == [] and joined.actions == [] and not call.ended
    routed = registry.receive(ROOM, BOB, "m.room.member", {"membership": "leave"}, state_key=BOB)
    [(ended, actions)] = routed.actions
    assert ended is call and sent(actions) == []
    assert call.end_reason == ev.USER_HANGUP and call.ended_by_remote


def test_ringing_callee_busy_sends_a_hangup_with_the_reason() -> None:
    call, _ = incoming()
    actions = call.hangup(ev.USER_BUSY)
    assert sent(actions) == [(ev.HANGUP, ev.hangup("c1", "bobp", ev.USER_BUSY))]
    assert call.end_reason == ev.USER_BUSY


def test_the_registry_forgets_old_ended_calls_only() -> None:
    from client.calls.registry import KEEP_ENDED

    registry = CallRegistry(ALICE)
    live = registry.place(ROOM)
    ended = [registry.place(ROOM) for _ in range(KEEP_ENDED + 5)]
    for call in ended:
        call.hangup()
    dropped = registry.forget_old()
    assert dropped == [call.call_id for call in ended[:5]]
    assert live.call_id in registry.calls and len(registry.calls) == KEEP_ENDED + 1
    assert registry.forget_old() == []


# -- every local input in every state ---------------------------------------------------------

def _outgoing_in(state: CallState) -> Call:
    call = Call.new_outgoing(ROOM, invitee=BOB, lifetime_ms=60_000, call_id="c1",
                             party_id="alicep")
    if state is CallState.PREPARING:
        return call
    call.offer_created("offer")
    if state is CallState.INVITE_SENT:
        return call
    call.receive(BOB, ev.ANSWER, ev.answer("c1", "bobp", "answer"), ALICE)
    if state is CallState.CONNECTING:
        return call
    call.media_connected()
    if state is CallState.CONNECTED:
        return call
    call.hangup()
    return call


def _incoming_in(state: CallState) -> Call:
    call, _ = incoming()
    if state is CallState.RINGING:
        return call
    call.answer_created("answer")
    if state is CallState.CONNECTING:
        return call
    call.media_connected()
    if state is CallState.CONNECTED:
        return call
    call.hangup()
    return call


CALLS_IN_STATE = [
    ("out", CallState.PREPARING), ("out", CallState.INVITE_SENT), ("out", CallState.CONNECTING),
    ("out", CallState.CONNECTED), ("out", CallState.ENDED), ("in", CallState.RINGING),
    ("in", CallState.CONNECTING), ("in", CallState.CONNECTED), ("in", CallState.ENDED)]

# input -> {(direction, state): (event types sent, state after)}; unlisted = nothing happens
LOCAL_INPUTS: dict[str, dict[tuple[str, CallState], tuple[list[str], CallState]]] = {
    "offer_created": {("out", CallState.PREPARING): ([ev.INVITE], CallState.INVITE_SENT)},
    "answer_created": {("in", CallState.RINGING): ([ev.ANSWER], CallState.CONNECTING)},
    "hangup": {
        ("out", CallState.PREPARING): ([], CallState.ENDED),
        ("out", CallState.INVITE_SENT): ([ev.HANGUP], CallState.ENDED),
        ("out", CallState.CONNECTING): ([ev.HANGUP], CallState.ENDED),
        ("out", CallState.CONNECTED): ([ev.HANGUP], CallState.ENDED),
        ("in", CallState.RINGING): ([ev.REJECT], CallState.ENDED),
        ("in", CallState.CONNECTING): ([ev.HANGUP], CallState.ENDED),
        ("in", CallState.CONNECTED): ([ev.HANGUP], CallState.ENDED)},
    "media_connected": {
        ("out", CallState.CONNECTING): ([], CallState.CONNECTED),
        ("in", CallState.CONNECTING): ([], CallState.CONNECTED)},
    "renegotiate": {
        ("out", CallState.CONNECTING): ([ev.NEGOTIATE], CallState.CONNECTING),
        ("out", CallState.CONNECTED): ([ev.NEGOTIATE], CallState.CONNECTED),
        ("in", CallState.CONNECTING): ([ev.NEGOTIATE], CallState.CONNECTING),
        ("in", CallState.CONNECTED): ([ev.NEGOTIATE], CallState.CONNECTED)},
    "invite_timer": {
        ("out", CallState.INVITE_SENT): ([ev.HANGUP], CallState.ENDED),
        ("in", CallState.RINGING): ([], CallState.ENDED)},
    "connect_timer": {
        ("out", CallState.CONNECTING): ([ev.HANGUP], CallState.ENDED),
        ("in", CallState.CONNECTING): ([ev.HANGUP], CallState.ENDED)},
}


def _apply_local(call: Call, name: str) -> list[Any]:
    if name in ("offer_created", "answer_created", "renegotiate"):
        return getattr(call, name)("sdp")  # type: ignore[no-any-return]
    if name == "invite_timer":
        return call.timer_fired(INVITE_TIMER)
    if name == "connect_timer":
        return call.timer_fired(CONNECT_TIMER)
    return getattr(call, name)()  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(LOCAL_INPUTS))
@pytest.mark.parametrize("direction,state", CALLS_IN_STATE)
def test_every_local_input_in_every_state(name: str, direction: str, state: CallState) -> None:
    call = _outgoing_in(state) if direction == "out" else _incoming_in(state)
    assert call.state is state
    expected_sent, expected_state = LOCAL_INPUTS[name].get((direction, state), ([], state))
    actions = _apply_local(call, name)
    assert [kind for kind, _ in sent(actions)] == expected_sent
    assert call.state is expected_state
    if expected_state is not state:
        assert states(actions)[-1][:2] == (state, expected_state)
    else:
        assert states(actions) == []


def test_a_ringing_call_cancelled_by_the_caller() -> None:
    call, _ = incoming()
    actions = call.receive(ALICE, ev.HANGUP, ev.hangup("c1", "alicep"), BOB)
    assert call.end_reason == ev.USER_HANGUP and call.ended_by_remote and sent(actions) == []


def test_a_callee_hanging_up_before_answering_ends_the_caller() -> None:
    call = outgoing_sent()
    call.receive(BOB, ev.HANGUP, ev.hangup("c1", "bobp", ev.USER_BUSY), ALICE)
    assert call.end_reason == ev.USER_BUSY and call.ended_by_remote
    assert not call.media_seen
