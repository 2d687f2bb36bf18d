"""Synthetic sources: a sine tone and a moving test pattern, paced in real time.

The pattern is four vertical colour bars (red, green, blue, white) with a black square
sliding left to right, so a receiver can check both colour and motion after VP8.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

SAMPLE_RATE = 48_000
AUDIO_PTIME = 0.020
VIDEO_CLOCK = 90_000

# BT.601 limited-range YUV of the four bars.
BAR_COLOURS_YUV = [(81, 90, 240), (145, 54, 34), (41, 240, 110), (235, 128, 128)]
SQUARE_SIZE = 64
SQUARE_STEP = 8  # pixels per frame


class _Pacer:
    """Real-time pacing of frames from a start instant, as a live source would."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.start: float | None = None
        self.count = 0

    async def wait(self) -> int:
        if self.start is None:
            self.start = time.monotonic()
        else:
            self.count += 1
            delay = self.start + self.count * self.period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return self.count


class ToneTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency, self.amplitude = frequency, amplitude
        self.samples = int(SAMPLE_RATE * AUDIO_PTIME)
        self._pacer = _Pacer(AUDIO_PTIME)

    async def recv(self) -> av.AudioFrame:
        index = await self._pacer.wait()
        start = index * self.samples
        t = (np.arange(start, start + self.samples) / SAMPLE_RATE)
        wave = np.sin(2 * np.pi * self.frequency * t) * self.amplitude * 32767
        frame = av.AudioFrame.from_ndarray(wave.astype(np.int16).reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = start
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


def pattern_planes(width: int, height: int) -> np.ndarray:
    """The still background as one yuv420p buffer (height * 3 / 2 rows)."""
    buffer = np.empty((height * 3 // 2, width), dtype=np.uint8)
    luma = buffer[:height]
    chroma = buffer[height:].reshape(2, height // 2, width // 2)  # U then V, each w/2 x h/2
    bar = width // len(BAR_COLOURS_YUV)
    for index, (y, u, v) in enumerate(BAR_COLOURS_YUV):
        luma[:, index * bar:(index + 1) * bar] = y
        chroma[0, :, index * bar // 2:(index + 1) * bar // 2] = u
        chroma[1, :, index * bar // 2:(index + 1) * bar // 2] = v
    return buffer


def square_x(frame_index: int, width: int) -> int:
    return (frame_index * SQUARE_STEP) % (width - SQUARE_SIZE)


class PatternTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._background = pattern_planes(width, height)
        self._pacer = _Pacer(1 / fps)

    async def recv(self) -> av.VideoFrame:
        index = await self._pacer.wait()
        buffer = self._background.copy()
        x, top = square_x(index, self.width), (self.height - SQUARE_SIZE) // 2
        buffer[top:top + SQUARE_SIZE, x:x + SQUARE_SIZE] = 16  # black luma
        chroma = buffer[self.height:].reshape(2, self.height // 2, self.width // 2)
        chroma[:, top // 2:(top + SQUARE_SIZE) // 2, x // 2:(x + SQUARE_SIZE) // 2] = 128
        frame = av.VideoFrame.from_ndarray(buffer, format="yuv420p")
        frame.pts = int(index * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


def analyse_pattern_frame(frame: Any) -> dict[str, Any]:
    """Bar colours (mean luma per bar, above and below the square's rows) and the square's
    x position, read from a received frame."""
    image = frame.to_ndarray(format="yuv420p")
    height, width = frame.height, frame.width
    luma = image[:height].astype(np.int32)
    bar = width // len(BAR_COLOURS_YUV)
    top_band = luma[: height // 8]
    bars = [int(top_band[:, i * bar + 4:(i + 1) * bar - 4].mean())
            for i in range(len(BAR_COLOURS_YUV))]
    middle = luma[(height - SQUARE_SIZE) // 2 + 8:(height + SQUARE_SIZE) // 2 - 8]
    dark_columns = np.nonzero(middle.mean(axis=0) < 28)[0]
    x = int(dark_columns[0]) if dark_columns.size else None
    return {"width": width, "height": height, "bar_luma": bars, "square_x": x}
