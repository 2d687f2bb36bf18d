"""Media sources and sinks: synthetic generators, files, devices (present or reported
missing with a clear message), the screen under a real Xvfb, the WAV recorder."""

from __future__ import annotations

import asyncio
import fractions
import os
import time
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from client.calls.engine import CallEngine, CallOptions, MediaSet
from client.calls.ice import set_loopback_only
from client.calls.state import CallState
from client.media import (
    MediaUnavailable,
    VideoStats,
    WavRecorder,
    audio_source,
    screen_source,
    video_source,
)
from client.media.synthetic import (
    BAR_COLOURS_YUV,
    PatternTrack,
    ToneTrack,
    analyse_pattern_frame,
    square_x,
)
from tests.client.calls_helpers import MemoryRoom, assert_pattern, dominant_frequency

pytestmark = pytest.mark.timeout(120)


def test_tone_frames_are_20ms_of_the_right_frequency(tmp_path: Path) -> None:
    async def frames() -> list[Any]:
        track = ToneTrack(440)
        return [await track.recv() for _ in range(25)]

    started = time.monotonic()
    got = asyncio.run(frames())
    assert time.monotonic() - started > 0.4  # paced in real time, not as fast as possible
    assert [f.pts for f in got[:3]] == [0, 960, 1920]
    assert all(f.samples == 960 and f.sample_rate == 48_000 for f in got)
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48_000)
        for frame in got:
            wav.writeframes(frame.to_ndarray().tobytes())
    frequency, _ = dominant_frequency(path, skip_s=0)
    assert abs(frequency - 440) < 3


def test_pattern_frames_show_bars_and_a_moving_square() -> None:
    async def frames() -> list[Any]:
        track = PatternTrack(640, 480)
        return [await track.recv() for _ in range(3)]

    got = asyncio.run(frames())
    samples = [analyse_pattern_frame(frame) for frame in got]
    assert [s["square_x"] for s in samples] == [square_x(i, 640) for i in range(3)]
    assert samples[0]["bar_luma"] == [y for y, _, _ in BAR_COLOURS_YUV]
    assert_pattern(samples)
    assert got[1].pts - got[0].pts == 3000  # 90 kHz clock at 30 fps


def test_recorder_keeps_the_first_channel_of_packed_stereo(tmp_path: Path) -> None:
    t = np.arange(960 * 25) / 48_000
    left = (np.sin(2 * np.pi * 440 * t) * 10_000).astype(np.int16)
    right = (np.sin(2 * np.pi * 1000 * t) * 10_000).astype(np.int16)
    packed = np.empty(left.size * 2, dtype=np.int16)
    packed[0::2], packed[1::2] = left, right
    recorder = WavRecorder(tmp_path / "out.wav")
    for index in range(25):
        chunk = packed[index * 1920:(index + 1) * 1920].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate = 48_000
        recorder.on_frame(frame)
    asyncio.run(recorder.close())
    frequency, seconds = dominant_frequency(tmp_path / "out.wav", skip_s=0)
    assert abs(frequency - 440) < 3 and abs(seconds - 0.5) < 0.01


def _write_tone_wav(path: Path, frequency: float, seconds: float = 2.0) -> None:
    t = np.arange(int(48_000 * seconds)) / 48_000
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48_000)
        wav.writeframes((np.sin(2 * np.pi * frequency * t) * 12_000).astype(np.int16).tobytes())


def _write_pattern_webm(path: Path, frames: int = 60) -> None:
    """A VP8 file of the test pattern, encoded by PyAV (no fixture binary in the repo)."""
    from client.media.synthetic import pattern_planes

    background = pattern_planes(320, 240)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(frames):
            buffer = background.copy()
            x = square_x(index, 320)
            buffer[88:152, x:x + 64] = 16
            frame = av.VideoFrame.from_ndarray(buffer, format="yuv420p")
            frame.pts, frame.time_base = index, fractions.Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_media_files_as_call_sources(tmp_path: Path) -> None:
    tone, clip, recording = tmp_path / "tone.wav", tmp_path / "clip.webm", tmp_path / "rx.wav"
    _write_tone_wav(tone, 523.0)
    _write_pattern_webm(clip)

    async def scenario() -> None:
        room = MemoryRoom()
        alice = CallEngine("@a:t", room.signalling("@a:t"), CallOptions())
        bob = CallEngine("@b:t", room.signalling("@b:t"), CallOptions())
        room.join(alice)
        room.join(bob)
        stats, recorder = VideoStats(every=3), WavRecorder(recording)
        bob.on_incoming(lambda s: asyncio.ensure_future(
            s.answer(MediaSet(audio_sink=recorder, video_sink=stats))))
        media = MediaSet(sources=[audio_source(f"file:{tone}"), video_source(f"file:{clip}")])
        call = await alice.place_call(room.room_id, media)
        deadline = time.monotonic() + 20
        while (recorder.frames < 120 or stats.frames < 40) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await call.hangup()
        await recorder.close()
        await stats.close()
        for source in media.sources:
            source.close()
        await room.close()
        assert call.call.media_seen and call.state is CallState.ENDED
        frequency, _ = dominant_frequency(recording)
        assert abs(frequency - 523) < 5
        assert_pattern(stats.samples, 320, 240)

    set_loopback_only(True)
    try:
        asyncio.run(scenario())
    finally:
        set_loopback_only(False)


@pytest.mark.parametrize("spec,message", [
    ("file:/nonexistent/clip.webm", "no such media file"),
    ("webcam:/dev/nonexistent-camera", "no webcam: /dev/nonexistent-camera does not exist"),
])
def test_missing_video_inputs_are_reported(spec: str, message: str) -> None:
    with pytest.raises(MediaUnavailable, match=message):
        video_source(spec)


@pytest.mark.parametrize("spec", ["tone:abc", "telepathy", "file:"])
def test_bad_audio_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        audio_source(spec)


def test_file_without_the_stream_asked_for(tmp_path: Path) -> None:
    tone = tmp_path / "tone.wav"
    _write_tone_wav(tone, 440, 0.2)
    with pytest.raises(MediaUnavailable, match="has no video stream"):
        video_source(f"file:{tone}")


def test_microphone_works_or_says_it_is_missing() -> None:
    """This machine has no sound card: the message must say so. With one, a frame arrives."""
    async def open_mic() -> Any:
        source = audio_source("mic")
        assert source is not None
        try:
            return await asyncio.wait_for(source.track().recv(), 5)
        finally:
            source.close()

    try:
        frame = asyncio.run(open_mic())
    except MediaUnavailable as exc:
        assert "microphone" in str(exc)
    else:
        assert frame.samples == 960


def test_speakers_work_or_say_they_are_missing() -> None:
    from client.media.devices import SpeakerSink

    async def open_speakers() -> None:
        sink = SpeakerSink()
        await sink.close()

    try:
        asyncio.run(open_speakers())
    except MediaUnavailable as exc:
        assert "speakers" in str(exc)


def test_webcam_works_or_says_it_is_missing() -> None:
    if os.path.exists("/dev/video0"):
        source = video_source("webcam")
        assert source is not None
        source.close()
        return
    with pytest.raises(MediaUnavailable, match="no webcam"):
        video_source("webcam")


def test_screen_without_a_display_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(MediaUnavailable, match="no screen"):
        screen_source()


def test_screen_capture_under_xvfb(xvfb: str) -> None:
    async def grab() -> Any:
        source = screen_source(fps=10)
        try:
            assert source.purpose == "m.screenshare"
            return [await source.track().recv() for _ in range(3)]
        finally:
            source.close()

    frames = asyncio.run(grab())
    assert (frames[0].width, frames[0].height) == (640, 480)
    assert frames[1].pts > frames[0].pts
