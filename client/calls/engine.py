"""The aiortc call engine: carries out the state machine's actions on RTCPeerConnections.

It talks to the room through a `CallSignalling` port (send one event) and is fed every
room timeline event by its owner (`CallEngine.handle_event`), so two engines can be wired
back to back in memory for tests, or to a `MatrixClient` (see `client/calls/matrix.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from client.calls import events as ev
from client.calls.ice import IceSettings, set_loopback_only
from client.calls.registry import CallRegistry
from client.calls.sdp import END_OF_CANDIDATES, candidate_types, split_candidates, stream_ids_by_mid
from client.calls.state import (
    Action,
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
from client.media.base import Sink, TrackSource
from client.media.sinks import NullSink

logger = logging.getLogger(__name__)


class CallSignalling(Protocol):
    async def send(self, room_id: str, event_type: str, content: dict[str, Any]) -> None: ...


class TurnUnavailable(RuntimeError):
    """Relay-only was asked for but no relay candidate was gathered: the TURN server is
    unreachable or refused the credentials (aiortc itself stays silent about both)."""


@dataclass
class CallOptions:
    ice: IceSettings = field(default_factory=IceSettings)
    lifetime_ms: int = ev.DEFAULT_LIFETIME_MS
    connect_timeout_ms: int = 30_000
    media_timeout_s: float = 10.0  # no media at all for this long after it flowed: ice_timeout
    busy_when_in_call: bool = True  # a second incoming call is hung up with user_busy


@dataclass
class MediaSet:
    """What one side sends and where received media goes; its owner closes them."""
    sources: list[TrackSource] = field(default_factory=list)
    audio_sink: Sink | None = None
    video_sink: Sink | None = None
    screen_sink: Sink | None = None


StateListener = Callable[["CallSession", CallState, CallState, str | None], Any]


class CallSession:
    """One call: its state machine, its peer connection, its media."""

    def __init__(self, engine: CallEngine, call: Call, media: MediaSet | None = None) -> None:
        self.engine, self.call = engine, call
        self.call.connect_timeout_ms = engine.options.connect_timeout_ms
        self.media = media or MediaSet()
        self.pc = RTCPeerConnection(engine.options.ice.rtc_configuration())
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.ended = asyncio.Event()
        self.error: str | None = None
        self.invite_sent_at: float | None = None  # time.monotonic(), for set-up time
        self.replaced_by: CallSession | None = None  # glare: the call that took over
        self._lock = asyncio.Lock()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._remote_applied = False
        self._early_candidates: list[dict[str, Any]] = []
        self._remote_tracks: list[MediaStreamTrack] = []
        self._fallback_sinks: list[Sink] = []
        self._watchdog: asyncio.Task[None] | None = None
        self._screen_stream_id: str | None = None

    @property
    def call_id(self) -> str:
        return self.call.call_id

    @property
    def state(self) -> CallState:
        return self.call.state

    # -- user actions ---------------------------------------------------------------------

    async def answer(self, media: MediaSet | None = None) -> None:
        """Accept a ringing call with these sources and sinks."""
        if media is not None:
            self.media = media
        async with self._lock:
            if self.call.state is not CallState.RINGING:
                return
            try:
                self._add_sources(self._offered_sources())
                self._attach_remote_tracks()
                answer = await self.pc.createAnswer()
                await self.pc.setLocalDescription(answer)
                sdp, batch = self._local_sdp_and_candidates()
            except Exception as exc:  # media or SDP trouble on our side: tell the caller
                await self._fail_locally(exc)
                return
            await self._apply(self.call.answer_created(sdp, self.stream_metadata()))
            await self._send_candidates(batch)

    async def _fail_locally(self, exc: Exception) -> None:
        self.error = self.error or f"{type(exc).__name__}: {exc}"
        logger.warning("call %s failed: %s", self.call_id, self.error)
        reason = ev.ICE_FAILED if isinstance(exc, TurnUnavailable) else ev.UNKNOWN_ERROR
        await self._apply(self.call.hangup(reason))

    async def hangup(self, reason: str = ev.USER_HANGUP) -> None:
        async with self._lock:
            await self._apply(self.call.hangup(reason))

    async def set_muted(self, audio: bool | None = None, video: bool | None = None) -> None:
        """Mute without renegotiation: silence/black frames plus sdp_stream_metadata_changed."""
        for source in self.media.sources:
            if source.kind == "audio" and audio is not None:
                source.muted = audio
            if source.kind == "video" and video is not None and source.purpose == ev.USERMEDIA:
                source.muted = video
        async with self._lock:
            await self._apply(self.call.metadata_changed(self.stream_metadata()))

    async def add_source(self, source: TrackSource) -> None:
        """Add a track mid-call (video, or a screen share as its own stream): renegotiates."""
        async with self._lock:
            self.media.sources.append(source)
            self._add_sources([source])
            await self._renegotiate()

    def _usermedia_sources(self) -> list[TrackSource]:
        """Sources for the first offer/answer. Screen shares are added by `m.call.negotiate`
        once connected, as the spec describes (and a second video section in aiortc's
        first answer would get its own, never-connected transport)."""
        return [s for s in self.media.sources if s.purpose != ev.SCREENSHARE]

    def _offered_sources(self) -> list[TrackSource]:
        """The callee's user-media sources that fit a section of the caller's offer (aiortc
        cannot answer with a track the offer has no section for)."""
        free = [t.kind for t in self.pc.getTransceivers() if t.sender.track is None]
        fitting = []
        for source in self._usermedia_sources():
            if source.kind in free:
                free.remove(source.kind)
                fitting.append(source)
        return fitting

    async def _negotiate_late_media(self) -> None:
        """Once connected, offer what the first exchange could not carry: screen shares,
        and a callee's tracks of a kind the caller did not offer (audio-only invite)."""
        async with self._lock:
            sending = {t.sender.track for t in self.pc.getTransceivers()}
            late = [s for s in self.media.sources if s.track() not in sending]
            if self.call.state is not CallState.CONNECTED or not late:
                return
            self._add_sources(late)
            await self._renegotiate()

    async def remove_source(self, source: TrackSource) -> None:
        async with self._lock:
            for transceiver in self.pc.getTransceivers():
                if transceiver.sender.track is source.track():
                    transceiver.sender.replaceTrack(None)
                    transceiver.direction = "recvonly"
            self.media.sources.remove(source)
            source.close()
            await self._renegotiate()

    async def wait_ended(self, timeout: float | None = None) -> str | None:
        await asyncio.wait_for(self.ended.wait(), timeout)
        return self.call.end_reason

    def stream_metadata(self) -> dict[str, Any]:
        streams: dict[str, str] = {}
        for transceiver in self.pc.getTransceivers():
            if transceiver.sender.track is None:
                continue
            purpose = (ev.SCREENSHARE if transceiver.sender._stream_id == self._screen_stream_id
                       else ev.USERMEDIA)
            streams[transceiver.sender._stream_id] = purpose
        audio_muted = any(s.muted for s in self.media.sources if s.kind == "audio")
        video_muted = any(s.muted for s in self.media.sources
                          if s.kind == "video" and s.purpose == ev.USERMEDIA)
        return ev.stream_metadata(streams, audio_muted, video_muted)

    # -- driven by the engine -------------------------------------------------------------

    async def start_outgoing(self) -> None:
        async with self._lock:
            try:
                self._add_sources(self._usermedia_sources())
                if not self.media.sources:  # a receive-only call still needs a media section
                    self.pc.addTransceiver("audio", direction="recvonly")
                offer = await self.pc.createOffer()
                await self.pc.setLocalDescription(offer)
                sdp, batch = self._local_sdp_and_candidates()
            except Exception as exc:
                await self._fail_locally(exc)
                return
            if self.call.ended:  # glare replaced us while the offer was being built
                return
            self.invite_sent_at = time.monotonic()
            await self._apply(self.call.offer_created(sdp, self.stream_metadata()))
            await self._send_candidates(batch)

    async def receive(self, sender: str, event_type: str, content: dict[str, Any]) -> None:
        async with self._lock:
            await self._apply(self.call.receive(sender, event_type, content,
                                                self.engine.user_id))

    async def apply_locked(self, actions: list[Action]) -> None:
        async with self._lock:
            await self._apply(actions)

    # -- actions ----------------------------------------------------------------------------

    async def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            await self._apply_one(action)

    async def _apply_one(self, action: Action) -> None:
        if isinstance(action, SendEvent):
            await self._send(action)
        elif isinstance(action, ApplyRemoteDescription):
            await self._apply_remote_description(action)
        elif isinstance(action, AddRemoteCandidates):
            await self._add_remote_candidates(action.candidates)
        elif isinstance(action, StartTimer):
            self._start_timer(action.name, action.delay_ms)
        elif isinstance(action, CancelTimer):
            timer = self._timers.pop(action.name, None)
            if timer is not None:
                timer.cancel()
        elif isinstance(action, StateChanged):
            await self._state_changed(action)
        elif isinstance(action, RemoteMetadata):
            self.engine.emit_metadata(self, action.metadata)

    async def _send(self, action: SendEvent) -> None:
        """Send one event; a failure (after the SDK's retries) is logged, never fatal to
        the local state: a lost hangup still ends the call here."""
        try:
            await self.engine.signalling.send(self.call.room_id, action.event_type,
                                              action.content)
        except Exception as exc:
            self.error = f"could not send {action.event_type}: {exc}"
            logger.warning("call %s: %s", self.call_id, self.error)

    async def _apply_remote_description(self, action: ApplyRemoteDescription) -> None:
        if not self._fits_signaling_state(action.kind):
            return
        description = RTCSessionDescription(sdp=action.sdp, type=action.kind)
        try:
            await self.pc.setRemoteDescription(description)
        except Exception as exc:  # a malformed or incompatible SDP from the peer
            logger.warning("call %s: bad remote %s: %s", self.call_id, action.kind, exc)
            await self._apply(self.call.hangup(ev.UNKNOWN_ERROR))
            return
        self._remote_applied = True
        early, self._early_candidates = self._early_candidates, []
        await self._add_remote_candidates(early)
        if self.call.state is not CallState.RINGING:  # a ringing callee attaches on answer
            self._attach_remote_tracks()
        if action.renegotiation and action.kind == "offer":
            await self._answer_renegotiation()

    def _fits_signaling_state(self, kind: str) -> bool:
        expected = "stable" if kind == "offer" else "have-local-offer"
        if self.pc.signalingState == expected:
            return True
        # An offer while ours is pending means both sides renegotiated at once: aiortc
        # cannot roll ours back, so the peer's is dropped and the call keeps its current
        # media (a known limitation). An answer to no offer of ours is stale.
        logger.warning("call %s: remote %s ignored in signaling state %s", self.call_id,
                       kind, self.pc.signalingState)
        return False

    async def _answer_renegotiation(self) -> None:
        try:
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except Exception as exc:
            await self._fail_locally(exc)
            return
        sdp, _ = split_candidates(self.pc.localDescription.sdp)
        await self._apply(self.call.negotiation_answer(sdp, self.stream_metadata()))

    async def _add_remote_candidates(self, batch: list[dict[str, Any]]) -> None:
        if not self._remote_applied:
            self._early_candidates.extend(batch)
            return
        for entry in batch:
            text = str(entry.get("candidate", ""))
            try:
                if not text:
                    await self.pc.addIceCandidate(None)  # end of candidates
                    continue
                candidate = candidate_from_sdp(text.removeprefix("candidate:"))
                candidate.sdpMid = entry.get("sdpMid")
                candidate.sdpMLineIndex = entry.get("sdpMLineIndex")
                await self.pc.addIceCandidate(candidate)
            except (ValueError, AssertionError, IndexError) as exc:
                logger.debug("call %s: candidate %r ignored: %s", self.call_id, text, exc)

    def _start_timer(self, name: str, delay_ms: int) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(
            delay_ms / 1000, lambda: asyncio.ensure_future(self._timer_fired(name)))

    async def _timer_fired(self, name: str) -> None:
        self._timers.pop(name, None)
        async with self._lock:
            await self._apply(self.call.timer_fired(name))

    async def _state_changed(self, change: StateChanged) -> None:
        if change.new is CallState.CONNECTED:
            self._watchdog = asyncio.ensure_future(self._watch_media())
            asyncio.ensure_future(self._negotiate_late_media())
        await self.engine.emit_state(self, change.old, change.new, change.reason)
        if change.new is CallState.ENDED:
            await self._teardown()

    async def _teardown(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        await self.pc.close()
        for sink in self._fallback_sinks:
            await sink.close()
        self.ended.set()

    # -- media plumbing --------------------------------------------------------------------

    def _add_sources(self, sources: list[TrackSource]) -> None:
        for source in sources:
            sender = self.pc.addTrack(source.track())
            if source.purpose == ev.SCREENSHARE:
                # aiortc puts every sender in one stream; a screen share is its own stream.
                self._screen_stream_id = self._screen_stream_id or ev.new_call_id()
                sender._stream_id = self._screen_stream_id

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._remote_tracks.append(track)  # attached once the description is fully applied

    def _attach_remote_tracks(self) -> None:
        tracks, self._remote_tracks = self._remote_tracks, []
        for track in tracks:
            self._attach(track)

    def _attach(self, track: MediaStreamTrack) -> None:
        sink = self._sink_for(track)
        if sink is None:
            sink = NullSink(track.kind)
            self._fallback_sinks.append(sink)
        sink.consume(track)

    def _sink_for(self, track: MediaStreamTrack) -> Sink | None:
        if track.kind == "audio":
            return self.media.audio_sink
        purpose = self._remote_purpose(track)
        return self.media.screen_sink if purpose == ev.SCREENSHARE else self.media.video_sink

    def _remote_purpose(self, track: MediaStreamTrack) -> str:
        remote = self.pc.remoteDescription
        if remote is None:
            return ev.USERMEDIA
        streams = stream_ids_by_mid(remote.sdp)
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track and transceiver.mid in streams:
                entry = self.call.remote_metadata.get(streams[transceiver.mid]) or {}
                return str(entry.get("purpose", ev.USERMEDIA))
        return ev.USERMEDIA

    def _local_sdp_and_candidates(self) -> tuple[str, list[dict[str, Any]]]:
        sdp, batch = split_candidates(self.pc.localDescription.sdp)
        ice = self.engine.options.ice
        if ice.relay_only and "relay" not in candidate_types(batch):
            self.error = ("relay-only call but no relay candidate was gathered: the TURN "
                          "server is unreachable or refused the credentials")
            raise TurnUnavailable(self.error)
        if ice.has_turn and "relay" not in candidate_types(batch):
            logger.warning("call %s: TURN configured but no relay candidate gathered "
                           "(unreachable server or wrong credentials)", self.call_id)
        return sdp, batch

    async def _send_candidates(self, batch: list[dict[str, Any]]) -> None:
        await self._apply(self.call.local_candidates([*batch, END_OF_CANDIDATES]))

    async def _renegotiate(self) -> None:
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        sdp, _ = split_candidates(self.pc.localDescription.sdp)
        await self._apply(self.call.renegotiate(sdp, self.stream_metadata()))

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            asyncio.ensure_future(self.apply_locked(self.call.media_connected()))
        elif state == "failed" or (state == "closed" and not self.call.ended):
            asyncio.ensure_future(self._media_failed())

    async def _media_failed(self) -> None:
        async with self._lock:
            await self._apply(self.call.media_failed())

    async def _watch_media(self) -> None:
        """Hang up when expected media stops (or never starts) for `media_timeout_s`
        after connecting: the peer is gone; ICE consent would take about 30 s to notice."""
        timeout = self.engine.options.media_timeout_s
        connected_at = time.monotonic()
        while not self.call.ended:
            await asyncio.sleep(min(1.0, timeout / 4))
            if not self._expects_media():
                continue
            sinks = [self.media.audio_sink, self.media.video_sink, *self._fallback_sinks]
            seen = [s.last_frame_at for s in sinks if s is not None and s.last_frame_at]
            if time.monotonic() - max([connected_at, *seen]) > timeout:
                logger.info("call %s: no media for %.1f s", self.call_id, timeout)
                await self._media_failed()
                return

    def _expects_media(self) -> bool:
        return any(t.currentDirection in ("sendrecv", "recvonly")
                   for t in self.pc.getTransceivers())


class CallEngine:
    """All calls of one user on one device."""

    def __init__(self, user_id: str, signalling: CallSignalling,
                 options: CallOptions | None = None) -> None:
        self.user_id = user_id
        self.signalling = signalling
        self.options = options or CallOptions()
        if self.options.ice.loopback_only:
            set_loopback_only(True)
        self.registry = CallRegistry(user_id)
        self.sessions: dict[str, CallSession] = {}
        self._state_listeners: list[StateListener] = []
        self._incoming_listeners: list[Callable[[CallSession], Any]] = []
        self._metadata_listeners: list[Callable[[CallSession, dict[str, Any]], Any]] = []

    def on_state(self, listener: StateListener) -> None:
        self._state_listeners.append(listener)

    def on_incoming(self, listener: Callable[[CallSession], Any]) -> None:
        """Called with a ringing session; answer it with `session.answer(media)`."""
        self._incoming_listeners.append(listener)

    def on_metadata(self, listener: Callable[[CallSession, dict[str, Any]], Any]) -> None:
        self._metadata_listeners.append(listener)

    async def place_call(self, room_id: str, media: MediaSet, invitee: str | None = None
                         ) -> CallSession:
        """Call the room (or `invitee` in it). When the peer is already calling us there,
        answer that call instead: glare before our invite exists."""
        ringing = self.registry.ringing_from(room_id, invitee)
        if ringing is not None:
            session = self.sessions[ringing.call_id]
            await session.answer(media)
            return session
        call = self.registry.place(room_id, invitee, self.options.lifetime_ms)
        session = CallSession(self, call, media)
        self.sessions[call.call_id] = session
        await session.start_outgoing()
        return session

    async def handle_event(self, room_id: str, event: dict[str, Any]) -> None:
        """Feed every timeline event of joined rooms here (others are ignored)."""
        for call_id in self.registry.forget_old():
            self.sessions.pop(call_id, None)
        event_type, content = event.get("type"), event.get("content")
        wanted = event_type in ev.CALL_EVENT_TYPES or event_type == "m.room.member"
        if not wanted or not isinstance(content, dict):
            return
        age = (event.get("unsigned") or {}).get("age", 0)
        routed = self.registry.receive(room_id, str(event.get("sender")), str(event_type),
                                       content, age if isinstance(age, int) else 0,
                                       event.get("state_key"))
        if routed.auto_answer and routed.incoming is not None:
            self._link_replacement(routed.incoming, [c for c, _ in routed.actions])
        for call, actions in routed.actions:
            session = self.sessions.get(call.call_id)
            if session is None:  # a new incoming call
                session = CallSession(self, call)
                self.sessions[call.call_id] = session
            await session.apply_locked(actions)
        if routed.incoming is not None:
            await self._announce_incoming(routed.incoming, routed.auto_answer)

    async def hangup_all(self, reason: str = ev.USER_HANGUP) -> None:
        for session in list(self.sessions.values()):
            if not session.call.ended:
                await session.hangup(reason)

    def _link_replacement(self, incoming: Call, calls: list[Call]) -> None:
        """Glare: the incoming call takes over the media of the call it replaces."""
        for call in calls:
            old = self.sessions.get(call.call_id)
            if call is not incoming and old is not None:
                new = CallSession(self, incoming, old.media)
                self.sessions[incoming.call_id] = new
                old.replaced_by = new

    async def _announce_incoming(self, call: Call, auto_answer: bool) -> None:
        session = self.sessions[call.call_id]
        if call.ended:
            return
        if auto_answer:
            await session.answer()
            return
        if self.options.busy_when_in_call and self._in_another_call(session):
            await session.hangup(ev.USER_BUSY)
            return
        for listener in self._incoming_listeners:
            await _maybe_await(listener(session))

    def _in_another_call(self, session: CallSession) -> bool:
        return any(other is not session and not other.call.ended
                   and other.state is not CallState.RINGING
                   for other in self.sessions.values())

    async def emit_state(self, session: CallSession, old: CallState, new: CallState,
                         reason: str | None) -> None:
        for listener in self._state_listeners:
            await _maybe_await(listener(session, old, new, reason))

    def emit_metadata(self, session: CallSession, metadata: dict[str, Any]) -> None:
        for listener in self._metadata_listeners:
            result = listener(session, metadata)
            if asyncio.iscoroutine(result):
                asyncio.ensure_future(result)


async def _maybe_await(result: Any) -> None:
    if isinstance(result, Awaitable):
        await result
