"""Media sources and sinks for calls, chosen by short specs as the CLI takes them:

audio: `tone:440`, `file:PATH`, `mic`, `none`; video: `pattern`, `file:PATH`, `webcam`,
`webcam:/dev/video2`, `none`; screen: `screen`. Sinks: `WavRecorder`, `VideoStats`,
`SpeakerSink`, `NullSink`.
"""

from __future__ import annotations

from client.media.base import MediaUnavailable, Sink, Source, TrackSource
from client.media.sinks import NullSink, VideoStats, WavRecorder

__all__ = [
    "MediaUnavailable",
    "NullSink",
    "Sink",
    "Source",
    "TrackSource",
    "VideoStats",
    "WavRecorder",
    "audio_source",
    "screen_source",
    "video_source",
]


def audio_source(spec: str) -> TrackSource | None:
    name, _, argument = spec.partition(":")
    if name == "none":
        return None
    if name == "tone":
        from client.media.synthetic import ToneTrack

        try:
            frequency = float(argument or "440")
        except ValueError:
            raise ValueError(f"bad tone frequency in {spec!r}") from None
        return TrackSource("audio", ToneTrack(frequency))
    if name == "file" and argument:
        from client.media.devices import file_player

        player = file_player(argument)
        if player.audio is None:
            raise MediaUnavailable(f"{argument} has no audio stream")
        return TrackSource("audio", player.audio, owner=player)
    if name == "mic":
        from client.media.devices import MicrophoneTrack

        return TrackSource("audio", MicrophoneTrack())
    raise ValueError(f"unknown audio source {spec!r} (tone:HZ, file:PATH, mic, none)")


def video_source(spec: str) -> TrackSource | None:
    name, _, argument = spec.partition(":")
    if name == "none":
        return None
    if name == "pattern":
        from client.media.synthetic import PatternTrack

        width, height = _size(argument) if argument else (640, 480)
        return TrackSource("video", PatternTrack(width, height))
    if name == "file" and argument:
        from client.media.devices import file_player

        player = file_player(argument)
        if player.video is None:
            raise MediaUnavailable(f"{argument} has no video stream")
        return TrackSource("video", player.video, owner=player)
    if name == "webcam":
        from client.media.devices import webcam_player

        player = webcam_player(argument or None)
        return TrackSource("video", player.video, owner=player)
    raise ValueError(f"unknown video source {spec!r} (pattern, file:PATH, webcam, none)")


def screen_source(fps: int = 15) -> TrackSource:
    from client.media.devices import ScreenTrack

    return TrackSource("video", ScreenTrack(fps), purpose="m.screenshare")


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        raise ValueError(f"bad size {text!r}, expected WIDTHxHEIGHT") from None
