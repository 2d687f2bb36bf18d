"""Call subcommands: `call ROOM_OR_USER` and `answer`.

Both print each state transition of the call (`invite_sent`, `ringing`, `connecting`,
`connected`, `ended reason=...`) and exit non-zero unless the call connected and ended
with a hang-up. ICE settings come from `calls.json` in the config directory
(`{"loopback_only": true, "relay_only": false}`) and the `--loopback-only` /
`--relay-only` options; `--loopback-only` gathers 127.0.0.1 host candidates only, for
calls between processes on one machine (tests), never for real use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from client.calls import events as ev
from client.calls.engine import CallEngine, CallOptions, CallSession, MediaSet
from client.calls.matrix import attach_engine, ice_settings
from client.calls.state import CallState
from client.cli import CliError, add_command, emit, session_client
from client.media import (
    MediaUnavailable,
    NullSink,
    Sink,
    VideoStats,
    WavRecorder,
    audio_source,
    screen_source,
    video_source,
)
from client.sdk.client import MatrixClient
from client.sdk.session import config_dir

CALLS_CONFIG = "calls.json"


def add_commands(subparsers: Any) -> None:
    call = add_command(subparsers, "call", cmd_call, "call a room or a user")
    call.add_argument("target", metavar="ROOM_OR_USER",
                      help="room ID, #alias:server, or @user:server (their direct room)")
    _media_options(call, default_video="pattern")
    call.add_argument("--screen", action="store_true", help="also share the screen (mss)")
    call.add_argument("--lifetime", type=float, default=ev.DEFAULT_LIFETIME_MS / 1000,
                      metavar="SECONDS", help="how long the invite rings (default 90)")
    answer = add_command(subparsers, "answer", cmd_answer,
                         "wait for an incoming call and answer it")
    _media_options(answer, default_video="none")
    answer.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="fail if no call arrives in time")
    answer.add_argument("--accept-invites", action="store_true",
                        help="join rooms we are invited to while waiting")


def _media_options(parser: argparse.ArgumentParser, default_video: str) -> None:
    parser.add_argument("--audio", default="tone:440", metavar="SOURCE",
                        help="tone:HZ, file:PATH, mic or none (default tone:440)")
    parser.add_argument("--video", default=default_video, metavar="SOURCE",
                        help=f"pattern, file:PATH, webcam[:DEVICE] or none "
                             f"(default {default_video})")
    parser.add_argument("--record", metavar="OUT.wav", help="record received audio")
    parser.add_argument("--speakers", action="store_true", help="play received audio")
    parser.add_argument("--video-stats", metavar="OUT.json",
                        help="write received video statistics (frames, pattern checks, "
                             "screen-share frames)")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="hang up this long after connecting (default: until hung up)")
    ice = parser.add_argument_group("ICE")
    ice.add_argument("--loopback-only", action="store_true", default=None,
                     help="gather 127.0.0.1 host candidates only (one-machine tests)")
    ice.add_argument("--relay-only", action="store_true", default=None,
                     help="use TURN relay candidates only (iceTransportPolicy relay)")
    ice.add_argument("--connect-timeout", type=float, default=30, metavar="SECONDS")
    ice.add_argument("--media-timeout", type=float, default=10, metavar="SECONDS",
                     help="hang up (ice_timeout) when media stops this long")


# -- commands ---------------------------------------------------------------------------------

async def cmd_call(args: argparse.Namespace) -> int:
    media = _build_media(args, outgoing=True)
    client = await session_client(args)
    engine = await _engine(args, client, lifetime_s=args.lifetime)
    await client.start(replay_initial=True)  # a call placed just before we started still counts
    room_id, invitee = await _resolve_target(client, args.target)
    emit(args, f"calling {args.target} in {room_id}",
         {"event": "calling", "room_id": room_id, "invitee": invitee})
    session = await engine.place_call(room_id, media, invitee)
    if session.error:
        emit(args, f"error: {session.error}", {"event": "error", "error": session.error})
    return await _run_call(args, session, media)


async def cmd_answer(args: argparse.Namespace) -> int:
    media = _build_media(args, outgoing=False)
    client = await session_client(args)
    engine = await _engine(args, client)
    ringing: asyncio.Queue[CallSession] = asyncio.Queue()
    engine.on_incoming(ringing.put_nowait)
    if args.accept_invites:
        client.on_invite(lambda room_id, _state: asyncio.ensure_future(client.join(room_id)))
    await client.start(replay_initial=True)  # a call placed just before we started still rings
    emit(args, f"waiting for a call as {client.user_id}",
         {"event": "waiting", "user_id": client.user_id})
    try:
        session = await asyncio.wait_for(_next_live_call(ringing), args.timeout)
    except TimeoutError:
        await _close_media(args, media)
        raise CliError(f"no call arrived within {args.timeout:g} s") from None
    await session.answer(media)
    return await _run_call(args, session, media)


async def _next_live_call(ringing: asyncio.Queue[CallSession]) -> CallSession:
    """The next call still ringing (a replayed invite may have been hung up since)."""
    while True:
        session = await ringing.get()
        await asyncio.sleep(0)  # let the rest of the same sync batch reach the call first
        if session.state is CallState.RINGING:
            return session


# -- shared steps -----------------------------------------------------------------------------

def _calls_config(args: argparse.Namespace) -> dict[str, Any]:
    path = config_dir(args.config_dir) / CALLS_CONFIG
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"bad {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


async def _engine(args: argparse.Namespace, client: MatrixClient,
                  lifetime_s: float | None = None) -> CallEngine:
    config = _calls_config(args)
    loopback = bool(args.loopback_only if args.loopback_only is not None
                    else config.get("loopback_only", False))
    relay = bool(args.relay_only if args.relay_only is not None
                 else config.get("relay_only", False))
    ice = await ice_settings(client, relay_only=relay, loopback_only=loopback)
    if relay and not ice.servers:
        raise CliError("--relay-only needs a TURN server, and the homeserver offers none")
    options = CallOptions(ice=ice, connect_timeout_ms=int(args.connect_timeout * 1000),
                          media_timeout_s=args.media_timeout)
    if lifetime_s is not None:
        options.lifetime_ms = int(lifetime_s * 1000)
    engine = attach_engine(client, options)
    engine.on_state(lambda session, _old, new, reason: _print_state(args, session, new, reason))
    return engine


def _print_state(args: argparse.Namespace, session: CallSession, new: CallState,
                 reason: str | None) -> None:
    text = new.value + (f" reason={reason}" if reason else "")
    emit(args, text, {"event": "state", "call_id": session.call_id, "state": new.value,
                      "reason": reason, "t": time.time()})


async def _resolve_target(client: MatrixClient, target: str) -> tuple[str, str | None]:
    if target.startswith("@"):
        room_id = await client.direct_room_with(target, create=True)
        assert room_id is not None
        return room_id, target
    return await client.resolve_room(target), None


def _build_media(args: argparse.Namespace, outgoing: bool) -> MediaSet:
    try:
        sources = [s for s in (audio_source(args.audio), video_source(args.video)) if s]
        if outgoing and getattr(args, "screen", False):
            sources.append(screen_source())
        audio_sink: Sink | None = None
        if args.record:
            audio_sink = WavRecorder(args.record)
        elif args.speakers:
            from client.media.devices import SpeakerSink

            audio_sink = SpeakerSink()
    except (MediaUnavailable, ValueError) as exc:
        raise CliError(str(exc)) from None
    stats = bool(args.video_stats)
    return MediaSet(sources=sources, audio_sink=audio_sink or NullSink("audio"),
                    video_sink=VideoStats() if stats else NullSink("video"),
                    screen_sink=VideoStats(every=1_000_000) if stats else NullSink("video"))


async def _run_call(args: argparse.Namespace, session: CallSession, media: MediaSet) -> int:
    try:
        await _until_done(args, session)
        while session.replaced_by is not None:  # glare: the peer's call took over ours
            session = session.replaced_by
            emit(args, f"answering the glaring call {session.call_id}",
                 {"event": "replaced", "call_id": session.call_id})
            await _until_done(args, session)
    except asyncio.CancelledError:  # SIGTERM or Ctrl-C: hang up before leaving
        await asyncio.shield(session.hangup())
        await asyncio.shield(_close_media(args, media))
        raise
    _report_first_audio(args, session, media)
    await _close_media(args, media)
    connected = session.call.media_seen
    return 0 if connected and session.call.end_reason == ev.USER_HANGUP else 1


async def _until_done(args: argparse.Namespace, session: CallSession) -> None:
    if args.duration is None:
        await session.ended.wait()
        return
    while session.state is not CallState.CONNECTED and not session.call.ended:
        await asyncio.sleep(0.02)
    if session.call.ended:
        return
    try:
        await asyncio.wait_for(session.ended.wait(), args.duration)
    except TimeoutError:
        await session.hangup()


def _report_first_audio(args: argparse.Namespace, session: CallSession,
                        media: MediaSet) -> None:
    sink = media.audio_sink
    if sink is None or sink.first_frame_at is None or session.invite_sent_at is None:
        return
    setup = sink.first_frame_at - session.invite_sent_at
    emit(args, f"first audio frame {setup * 1000:.0f} ms after the invite",
         {"event": "setup", "first_audio_s": setup})


async def _close_media(args: argparse.Namespace, media: MediaSet) -> None:
    for source in media.sources:
        source.close()
    for sink in (media.audio_sink, media.video_sink, media.screen_sink):
        if sink is not None:
            await sink.close()
    if args.video_stats and isinstance(media.video_sink, VideoStats):
        summary = media.video_sink.summary()
        if isinstance(media.screen_sink, VideoStats):
            summary["screen_frames"] = media.screen_sink.frames
        Path(args.video_stats).write_text(json.dumps(summary))
