"""Real devices: microphone and speakers (miniaudio), webcam (aiortc's platform players),
screen (mss), and media files. Backends are imported lazily, and a missing device fails
with `MediaUnavailable` naming what is missing."""

from __future__ import annotations

import asyncio
import fractions
import os
import sys
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from client.media.base import MediaUnavailable, Sink
from client.media.sinks import mono_s16
from client.media.synthetic import SAMPLE_RATE, VIDEO_CLOCK, _Pacer

FRAME_SAMPLES = SAMPLE_RATE // 50  # 20 ms
_NULL_DEVICE_PREFIX = "Discard all samples"  # miniaudio's ALSA "null" device is not a device


def _miniaudio() -> Any:
    try:
        import miniaudio
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise MediaUnavailable("audio devices need the 'miniaudio' package") from exc
    return miniaudio


def _require_device(kind: str) -> None:
    miniaudio = _miniaudio()
    try:
        devices = miniaudio.Devices()
        found = devices.get_captures() if kind == "capture" else devices.get_playbacks()
    except Exception as exc:
        raise MediaUnavailable(f"no audio backend for {kind}: {exc}") from exc
    if not [d for d in found if not str(d.get("name", "")).startswith(_NULL_DEVICE_PREFIX)]:
        what = "microphone" if kind == "capture" else "speakers"
        raise MediaUnavailable(f"no {what} found (miniaudio backend {devices.backend})")


class MicrophoneTrack(MediaStreamTrack):
    """The default capture device, mono s16 48 kHz, in 20 ms frames."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        _require_device("capture")
        miniaudio = _miniaudio()
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=50)
        self._event_loop = asyncio.get_event_loop()
        self._pending = b""
        self._pts = 0
        try:
            self._device = miniaudio.CaptureDevice(
                input_format=miniaudio.SampleFormat.SIGNED16, nchannels=1,
                sample_rate=SAMPLE_RATE, buffersize_msec=20)
            collector = self._collect()
            next(collector)
            self._device.start(collector)
        except miniaudio.MiniaudioError as exc:
            raise MediaUnavailable(f"cannot open the microphone: {exc}") from exc

    def _collect(self) -> Generator[None, Any, None]:
        """miniaudio's capture callback (its thread): hand each chunk to the event loop."""
        while True:
            data = yield
            self._event_loop.call_soon_threadsafe(self._offer, bytes(data))

    def _offer(self, data: bytes) -> None:
        if not self._chunks.full():  # a stalled consumer drops audio rather than lag
            self._chunks.put_nowait(data)

    async def recv(self) -> av.AudioFrame:
        need = FRAME_SAMPLES * 2
        while len(self._pending) < need:
            self._pending += await self._chunks.get()
        data, self._pending = self._pending[:need], self._pending[need:]
        frame = av.AudioFrame.from_ndarray(np.frombuffer(data, np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, self._pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._pts += FRAME_SAMPLES
        return frame

    def stop(self) -> None:
        super().stop()
        self._device.close()


class SpeakerSink(Sink):
    """Plays received audio on the default playback device."""

    kind = "audio"
    MAX_BUFFERED = SAMPLE_RATE // 2 * 2  # half a second of s16 mono; older audio is dropped

    def __init__(self) -> None:
        super().__init__()
        _require_device("playback")
        miniaudio = _miniaudio()
        self._buffer = bytearray()
        self._lock = threading.Lock()
        try:
            self._device = miniaudio.PlaybackDevice(
                output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1,
                sample_rate=SAMPLE_RATE, buffersize_msec=40)
            feeder = self._feed()
            next(feeder)
            self._device.start(feeder)
        except miniaudio.MiniaudioError as exc:
            raise MediaUnavailable(f"cannot open the speakers: {exc}") from exc

    def on_frame(self, frame: Any) -> None:
        with self._lock:
            self._buffer += mono_s16(frame).tobytes()
            if len(self._buffer) > self.MAX_BUFFERED:  # keep latency bounded
                del self._buffer[:len(self._buffer) - self.MAX_BUFFERED]

    def _feed(self) -> Generator[bytes, int, None]:
        """miniaudio's playback callback (its thread): exactly the frames it asks for,
        padded with silence when the network is late."""
        wanted = yield b""
        while True:
            size = wanted * 2
            with self._lock:
                chunk = bytes(self._buffer[:size])
                del self._buffer[:size]
            wanted = yield chunk + bytes(size - len(chunk))

    async def close(self) -> None:
        await super().close()
        self._device.close()


def webcam_player(device: str | None = None) -> Any:
    """The platform's camera through aiortc's MediaPlayer (v4l2, avfoundation, dshow)."""
    options = {"framerate": "30", "video_size": "640x480"}
    if sys.platform == "darwin":
        return _open_player(device or "default:none", "avfoundation", options)
    if sys.platform == "win32":
        return _open_player(device or "video=Integrated Camera", "dshow", options)
    path = device or "/dev/video0"
    if not os.path.exists(path):
        raise MediaUnavailable(f"no webcam: {path} does not exist")
    return _open_player(path, "v4l2", options)


def _open_player(target: str, fmt: str | None, options: dict[str, str] | None = None) -> Any:
    from aiortc.contrib.media import MediaPlayer

    try:
        return MediaPlayer(target, format=fmt, options=options or {})
    except (av.FFmpegError, OSError) as exc:
        raise MediaUnavailable(f"cannot open {target!r}: {exc}") from exc


def file_player(path: str) -> Any:
    """A media file, looped, as a live source."""
    if not Path(path).is_file():
        raise MediaUnavailable(f"no such media file: {path}")
    from aiortc.contrib.media import MediaPlayer

    try:
        return MediaPlayer(path, loop=True)
    except (av.FFmpegError, OSError) as exc:
        raise MediaUnavailable(f"cannot read media file {path!r}: {exc}") from exc


class ScreenTrack(MediaStreamTrack):
    """The primary monitor (or a region of it) captured with mss."""

    kind = "video"

    def __init__(self, fps: int = 15, monitor: int = 1) -> None:
        super().__init__()
        try:
            import mss
        except ImportError as exc:  # pragma: no cover - declared dependency
            raise MediaUnavailable("screen capture needs the 'mss' package") from exc
        try:
            self._grabber = (getattr(mss, "MSS", None) or mss.mss)()
            self._monitor = self._grabber.monitors[monitor]
        except Exception as exc:  # mss raises its own error when there is no display
            raise MediaUnavailable(f"no screen to capture: {exc}") from exc
        self.fps = fps
        self._pacer = _Pacer(1 / fps)

    async def recv(self) -> av.VideoFrame:
        index = await self._pacer.wait()
        shot = self._grabber.grab(self._monitor)
        pixels = np.asarray(shot, dtype=np.uint8)[:, :, :4]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="bgra")
        frame.pts = int(index * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame

    def stop(self) -> None:
        super().stop()
        self._grabber.close()
