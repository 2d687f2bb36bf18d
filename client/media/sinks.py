"""Sinks for received tracks: a WAV recorder, video frame statistics, a drain."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np

from client.media.base import Sink
from client.media.synthetic import analyse_pattern_frame


class NullSink(Sink):
    """Reads and drops frames (an unread remote track would queue them without bound)."""

    def __init__(self, kind: str = "audio") -> None:
        super().__init__()
        self.kind = kind


class WavRecorder(Sink):
    """Writes received audio as mono 16-bit PCM at the track's sample rate."""

    kind = "audio"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._wav: wave.Wave_write | None = None

    def on_frame(self, frame: Any) -> None:
        if self._wav is None:
            self._wav = wave.open(str(self.path), "wb")
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(frame.sample_rate)
        self._wav.writeframes(mono_s16(frame).tobytes())

    async def close(self) -> None:
        await super().close()
        if self._wav is None:  # nothing arrived: still leave a valid, empty file
            self._wav = wave.open(str(self.path), "wb")
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(48_000)
        self._wav.close()


def mono_s16(frame: Any) -> np.ndarray:
    """The first channel of a decoded frame as int16 (Opus decodes to packed stereo s16)."""
    samples: np.ndarray = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        return np.asarray(samples[0], dtype=np.int16)
    return samples.reshape(-1)[0::channels].astype(np.int16)


class VideoStats(Sink):
    """Counts frames and analyses every `every`-th one against the synthetic pattern."""

    kind = "video"

    def __init__(self, every: int = 10) -> None:
        super().__init__()
        self.every = every
        self.samples: list[dict[str, Any]] = []

    def on_frame(self, frame: Any) -> None:
        if self.frames % self.every == 1:
            self.samples.append(analyse_pattern_frame(frame))

    def summary(self) -> dict[str, Any]:
        return {"frames": self.frames, "samples": self.samples}
