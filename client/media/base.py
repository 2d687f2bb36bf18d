"""The one small media interface: a `Source` gives a track to send, a `Sink` consumes a
received track. Real devices, synthetic generators and files all sit behind it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)


class MediaUnavailable(RuntimeError):
    """A device or backend this source needs is missing; the message says which and why."""


class Source(Protocol):
    kind: str  # "audio" or "video"
    purpose: str  # "m.usermedia" or "m.screenshare"

    def track(self) -> MediaStreamTrack: ...

    def close(self) -> None: ...


class TrackSource:
    """A source around one already-built track, muteable."""

    def __init__(self, kind: str, track: MediaStreamTrack, purpose: str = "m.usermedia",
                 owner: Any = None) -> None:
        self.kind, self.purpose = kind, purpose
        self._track = MuteableTrack(track)
        self._owner = owner  # e.g. a MediaPlayer that must outlive the track

    @property
    def muted(self) -> bool:
        return self._track.muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self._track.muted = value

    def track(self) -> MediaStreamTrack:
        return self._track

    def close(self) -> None:
        self._track.stop()


class MuteableTrack(MediaStreamTrack):
    """Relays an inner track; while muted it sends silence or black with the same timing."""

    def __init__(self, inner: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = inner.kind
        self.inner = inner
        self.muted = False

    async def recv(self) -> Any:
        frame = await self.inner.recv()
        if self.muted:
            _blank(frame, self.kind)
        return frame

    def stop(self) -> None:
        super().stop()
        self.inner.stop()


def _blank(frame: Any, kind: str) -> None:
    """Silence, or black: zero samples and luma, neutral (128) chroma for YUV frames."""
    yuv = kind == "video" and frame.format.name.startswith("yuv")
    for index, plane in enumerate(frame.planes):
        fill = 0x80 if yuv and index > 0 else 0
        plane.update(bytes([fill]) * plane.buffer_size)


class Sink:
    """Consumes a received track in a task; subclasses look at each frame."""

    kind = "audio"

    def __init__(self) -> None:
        self.frames = 0
        self.first_frame_at: float | None = None  # time.monotonic()
        self.last_frame_at: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.first_frame = asyncio.Event()

    def consume(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.ensure_future(self._drain(track)))

    async def _drain(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            if self.first_frame_at is None:
                self.first_frame_at = now
                self.first_frame.set()
            self.last_frame_at = now
            self.frames += 1
            try:
                self.on_frame(frame)
            except Exception:  # a broken sink must not kill the call
                logger.exception("media sink failed on a frame")

    def on_frame(self, frame: Any) -> None:
        """Look at one frame; the default drops it."""

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
