"""The aiortc engine: two real aiortc peers in one process, signalling through an in-memory
room, media on 127.0.0.1 only (loopback-only ICE)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from client.calls import events as ev
from client.calls.engine import CallEngine, CallOptions, CallSession, MediaSet
from client.calls.ice import IceSettings, set_loopback_only
from client.calls.state import CallState
from client.media import VideoStats, WavRecorder, audio_source, video_source
from client.media.base import TrackSource
from client.media.synthetic import PatternTrack
from tests.client.calls_helpers import MemoryRoom, assert_pattern, dominant_frequency, rms

ALICE, BOB = "@alice:test", "@bob:test"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def loopback_only() -> Any:
    set_loopback_only(True)
    yield
    set_loopback_only(False)


class Peer:
    def __init__(self, room: MemoryRoom, user_id: str, options: CallOptions) -> None:
        self.engine = CallEngine(user_id, room.signalling(user_id), options)
        room.join(self.engine)
        self.transitions: list[tuple[str, str, str | None]] = []
        self.incoming: asyncio.Queue[CallSession] = asyncio.Queue()
        self.engine.on_state(lambda s, old, new, why: self.transitions.append(
            (s.call_id, new.value, why)))
        self.engine.on_incoming(self.incoming.put_nowait)

    def states(self, call_id: str) -> list[str]:
        return [new for cid, new, _ in self.transitions if cid == call_id]


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def run(scenario: Callable[[MemoryRoom, Peer, Peer], Awaitable[None]],
        options: CallOptions | None = None) -> None:
    async def main() -> None:
        room = MemoryRoom()
        alice = Peer(room, ALICE, options or CallOptions())
        bob = Peer(room, BOB, options or CallOptions())
        try:
            await scenario(room, alice, bob)
        finally:
            await alice.engine.hangup_all()
            await bob.engine.hangup_all()
            await room.close()

    asyncio.run(main())


def test_call_tone_and_pattern_then_hangup(tmp_path: Path) -> None:
    recording = tmp_path / "bob.wav"

    async def scenario(room: MemoryRoom, alice: Peer, bob: Peer) -> None:
        media = MediaSet(sources=[audio_source("tone:440"), video_source("pattern")])
        call = await alice.engine.place_call(room.room_id, media, invitee=BOB)
        ringing = await asyncio.wait_for(bob.incoming.get(), 10)
        assert ringing.state is CallState.RINGING and ringing.call_id == call.call_id
        stats, recorder = VideoStats(every=5), WavRecorder(recording)
        await ringing.answer(MediaSet(audio_sink=recorder, video_sink=stats))
        await until(lambda: call.state is CallState.CONNECTED
                    and ringing.state is CallState.CONNECTED)
        await until(lambda: recorder.frames > 100 and stats.frames > 40)
        await call.hangup()
        assert await ringing.wait_ended(10) == ev.USER_HANGUP
        assert ringing.call.ended_by_remote and not call.call.ended_by_remote
        await recorder.close()
        await stats.close()
        frequency, seconds = dominant_frequency(recording)
        assert abs(frequency - 440) < 5 and seconds > 1.5
        assert_pattern(stats.samples)
        assert alice.states(call.call_id) == ["invite_sent", "connecting", "connected", "ended"]
        assert bob.states(call.call_id) == ["ringing", "connecting", "connected", "ended"]
        sent = room.types_sent_by(ALICE)
        assert sent[:2] == [ev.INVITE, ev.CANDIDATES] and ev.SELECT_ANSWER in sent
        assert room.types_sent_by(BOB)[:2] == [ev.ANSWER, ev.CANDIDATES]
        invite = next(e for e in room.sent if e["type"] == ev.INVITE)
        assert "a=candidate" not in invite["content"]["offer"]["sdp"]  # trickled instead
        [(stream, meta)] = invite["content"]["sdp_stream_metadata"].items()
        assert meta["purpose"] == ev.USERMEDIA and f"a=msid:{stream}" in \
            invite["content"]["offer"]["sdp"]
        candidates = next(e for e in room.sent if e["type"] == ev.CANDIDATES)["content"]
        hosts = [c["candidate"] for c in candidates["candidates"] if c["candidate"]]
        assert hosts and all(" 127.0.0.1 " in c for c in hosts)  # loopback only
        assert candidates["candidates"][-1] == {"candidate": ""}

    run(scenario)


def test_mute_unmute_and_add_remove_video_mid_call(tmp_path: Path) -> None:
    recording = tmp_path / "bob.wav"

    async def scenario(room: MemoryRoom, alice: Peer, bob: Peer) -> None:
        tone = audio_source("tone:440")
        call = await alice.engine.place_call(room.room_id, MediaSet(sources=[tone]))
        ringing = await asyncio.wait_for(bob.incoming.get(), 10)
        recorder, video, screen = WavRecorder(recording), VideoStats(every=5), VideoStats()
        metadata: list[dict[str, Any]] = []
        bob.engine.on_metadata(lambda _s, m: metadata.append(m))
        await ringing.answer(MediaSet(audio_sink=recorder, video_sink=video, screen_sink=screen))
        await until(lambda: recorder.frames > 50)
        await call.set_muted(audio=True)
        muted_at = recorder.frames
        await until(lambda: recorder.frames > muted_at + 50)
        await call.set_muted(audio=False)
        await until(lambda: any(next(iter(m.values()))["audio_muted"] for m in metadata))
        unmuted_at = recorder.frames
        await until(lambda: recorder.frames > unmuted_at + 50)
        # Add a video track mid-call (m.call.negotiate), then a screen share stream.
        camera = video_source("pattern")
        await call.add_source(camera)
        await until(lambda: video.frames > 30, timeout=15)
        share = TrackSource("video", PatternTrack(320, 240), purpose=ev.SCREENSHARE)
        await call.add_source(share)
        await until(lambda: screen.frames > 10, timeout=15)
        purposes = {m["purpose"] for m in ringing.call.remote_metadata.values()}
        assert purposes == {ev.USERMEDIA, ev.SCREENSHARE}
        await call.remove_source(share)
        stopped_at = screen.frames
        await asyncio.sleep(1.0)
        assert screen.frames <= stopped_at + 5  # the share stopped after renegotiation
        assert video.frames > 30 and call.state is CallState.CONNECTED
        negotiations = [e["content"]["description"]["type"] for e in room.sent
                        if e["type"] == ev.NEGOTIATE]
        assert negotiations == ["offer", "answer"] * 3
        await call.hangup()
        await recorder.close()
        rate = 48_000
        assert rms(recording, (muted_at + 15) * 0.02, (muted_at + 45) * 0.02) < 50
        assert rms(recording, (unmuted_at + 15) * 0.02, (unmuted_at + 45) * 0.02) > 3000
        assert rate  # keep the frame arithmetic above readable
        assert_pattern(video.samples)
        await video.close()
        await screen.close()

    run(scenario)


def test_unanswered_call_ends_as_invite_timeout() -> None:
    async def scenario(room: MemoryRoom, alice: Peer, bob: Peer) -> None:
        call = await alice.engine.place_call(room.room_id, MediaSet(
            sources=[audio_source("tone:440")]))
        ringing = await asyncio.wait_for(bob.incoming.get(), 10)
        assert await call.wait_ended(10) == ev.INVITE_TIMEOUT
        assert await ringing.wait_ended(10) == ev.INVITE_TIMEOUT
        hangup = [e for e in room.sent if e["type"] == ev.HANGUP]
        assert [h["content"]["reason"] for h in hangup] == [ev.INVITE_TIMEOUT]

    run(scenario, CallOptions(lifetime_ms=1500))


def test_rejected_call() -> None:
    async def scenario(room: MemoryRoom, alice: Peer, bob: Peer) -> None:
        call = await alice.engine.place_call(room.room_id, MediaSet(
            sources=[audio_source("tone:440")]))
        ringing = await asyncio.wait_for(bob.incoming.get(), 10)
        await ringing.hangup()
        assert await call.wait_ended(10) == "user_rejected"
        assert ev.REJECT in room.types_sent_by(BOB)

    run(scenario)


def test_glare_ends_in_one_connected_call() -> None:
    async def scenario(room: MemoryRoom, alice: Peer, bob: Peer) -> None:
        a_call, b_call = await asyncio.gather(
            alice.engine.place_call(room.room_id, MediaSet(sources=[audio_source("tone:440")]),
                                    invitee=BOB),
            bob.engine.place_call(room.room_id, MediaSet(sources=[audio_source("tone:880")]),
                                  invitee=ALICE))
        winner = min(a_call.call_id, b_call.call_id)
        await until(lambda: all(s.state is CallState.CONNECTED for p in (alice, bob)
                                for s in p.engine.sessions.values() if s.call_id == winner))
        for peer in (alice, bob):
            live = [s for s in peer.engine.sessions.values() if not s.call.ended]
            assert [s.call_id for s in live] == [winner]
        loser = max(a_call.call_id, b_call.call_id)
        assert {s.call.end_reason for p in (alice, bob) for s in p.engine.sessions.values()
                if s.call_id == loser} <= {"replaced", ev.USER_HANGUP}
        assert alice.incoming.empty() and bob.incoming.empty()  # nobody was asked to answer
        handed_over = [s.replaced_by.call_id for p in (alice, bob)
                       for s in p.engine.sessions.values() if s.replaced_by is not None]
        assert handed_over == [winner]  # the loser's caller follows the winning call

    run(scenario)


def test_relay_only_without_turn_fails_loudly() -> None:
    async def scenario(room: MemoryRoom, alice: Peer, bob: Peer) -> None:
        call = await alice.engine.place_call(room.room_id, MediaSet(
            sources=[audio_source("tone:440")]))
        assert call.call.end_reason == ev.ICE_FAILED
        assert call.error is not None and "TURN" in call.error
        assert room.sent == []  # nothing reached the room

    run(scenario, CallOptions(ice=IceSettings(relay_only=True)))


def test_peer_vanishing_ends_with_ice_timeout() -> None:
    async def scenario(room: MemoryRoom, alice: Peer, bob: Peer) -> None:
        call = await alice.engine.place_call(room.room_id, MediaSet(
            sources=[audio_source("tone:440")]))
        ringing = await asyncio.wait_for(bob.incoming.get(), 10)
        recorder = VideoStats()
        await ringing.answer(MediaSet(sources=[audio_source("tone:330")]))
        await until(lambda: call.state is CallState.CONNECTED)
        room.blocked.add(BOB)  # bob's process dies: no hangup, no media
        await ringing.pc.close()
        assert await call.wait_ended(15) == ev.ICE_TIMEOUT
        hangups = [e["content"]["reason"] for e in room.sent if e["type"] == ev.HANGUP
                   and e["sender"] == ALICE]
        assert hangups == [ev.ICE_TIMEOUT]
        await recorder.close()

    run(scenario, CallOptions(media_timeout_s=2.0))


def test_a_second_call_while_in_a_call_gets_user_busy() -> None:
    async def scenario(room: MemoryRoom, alice: Peer, bob: Peer) -> None:
        first = await alice.engine.place_call(room.room_id, MediaSet(
            sources=[audio_source("tone:440")]))
        ringing = await asyncio.wait_for(bob.incoming.get(), 10)
        await ringing.answer(MediaSet(sources=[audio_source("tone:330")]))
        await until(lambda: first.state is CallState.CONNECTED)
        second = await alice.engine.place_call(room.room_id, MediaSet(
            sources=[audio_source("tone:550")]))
        assert await second.wait_ended(10) == ev.USER_BUSY
        assert second.call.ended_by_remote and bob.incoming.empty()
        assert first.state is CallState.CONNECTED and ringing.state is CallState.CONNECTED

    run(scenario)


def test_callee_video_on_an_audio_only_invite_is_renegotiated() -> None:
    async def scenario(room: MemoryRoom, alice: Peer, bob: Peer) -> None:
        video = VideoStats(every=5)
        call = await alice.engine.place_call(room.room_id, MediaSet(
            sources=[audio_source("tone:440")], video_sink=video))
        ringing = await asyncio.wait_for(bob.incoming.get(), 10)
        await ringing.answer(MediaSet(sources=[audio_source("tone:330"),
                                               video_source("pattern")]))
        await until(lambda: video.frames > 30, timeout=15)
        assert [e["sender"] for e in room.sent if e["type"] == ev.NEGOTIATE] == [BOB, ALICE]
        assert_pattern(video.samples)
        await call.hangup()
        await video.close()

    run(scenario)


def test_a_hangup_that_cannot_be_sent_still_ends_both_sides() -> None:
    async def scenario(room: MemoryRoom, alice: Peer, bob: Peer) -> None:
        call = await alice.engine.place_call(room.room_id, MediaSet(
            sources=[audio_source("tone:440")]))
        ringing = await asyncio.wait_for(bob.incoming.get(), 10)
        await ringing.answer(MediaSet(sources=[audio_source("tone:330")]))
        await until(lambda: call.state is CallState.CONNECTED
                    and ringing.state is CallState.CONNECTED)
        room.offline.add(ALICE)  # the homeserver is gone for Alice
        await call.hangup()
        assert call.state is CallState.ENDED and call.call.end_reason == ev.USER_HANGUP
        assert call.error is not None and ev.HANGUP in call.error
        # Bob never hears the hangup; the media stopping ends his side.
        assert await ringing.wait_ended(15) == ev.ICE_TIMEOUT

    run(scenario, CallOptions(media_timeout_s=2.0))
