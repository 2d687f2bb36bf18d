"""Helpers for the call tests: an in-memory room for two engines, and media checks."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np

from client.calls.engine import CallEngine
from client.media.synthetic import BAR_COLOURS_YUV


class MemoryRoom:
    """Delivers each sent event to every engine in the room, in order, as a timeline would
    (our own events included)."""

    def __init__(self, room_id: str = "!room:test") -> None:
        self.room_id = room_id
        self.queues: list[tuple[CallEngine, asyncio.Queue[dict[str, Any]]]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.sent: list[dict[str, Any]] = []
        self.blocked: set[str] = set()  # users whose events no longer reach anyone
        self.offline: set[str] = set()  # users whose sends fail

    def signalling(self, user_id: str) -> MemorySignalling:
        return MemorySignalling(self, user_id)

    def join(self, engine: CallEngine) -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.queues.append((engine, queue))
        self.tasks.append(asyncio.ensure_future(self._pump(engine, queue)))

    async def _pump(self, engine: CallEngine, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            event = await queue.get()
            await engine.handle_event(self.room_id, event)

    def deliver(self, sender: str, event_type: str, content: dict[str, Any]) -> None:
        event = {"type": event_type, "sender": sender, "content": content,
                 "unsigned": {"age": 0}, "event_id": f"$e{len(self.sent)}"}
        self.sent.append(event)
        if sender in self.blocked:
            return
        for _, queue in self.queues:
            queue.put_nowait(event)

    def types_sent_by(self, sender: str) -> list[str]:
        return [e["type"] for e in self.sent if e["sender"] == sender]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class MemorySignalling:
    def __init__(self, room: MemoryRoom, user_id: str) -> None:
        self.room, self.user_id = room, user_id

    async def send(self, room_id: str, event_type: str, content: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # as a network send would, yield first
        if self.user_id in self.room.offline:
            raise ConnectionError("homeserver unreachable")
        self.room.deliver(self.user_id, event_type, content)


def wav_samples(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return data, rate


def dominant_frequency(path: Path, skip_s: float = 0.3) -> tuple[float, float]:
    """(peak frequency in Hz, seconds of audio analysed), skipping the start (jitter buffer)."""
    data, rate = wav_samples(path)
    data = data[int(skip_s * rate):].astype(np.float64)
    assert data.size > rate // 4, f"only {data.size} samples recorded"
    spectrum = np.abs(np.fft.rfft(data * np.hanning(data.size)))
    frequencies = np.fft.rfftfreq(data.size, 1 / rate)
    return float(frequencies[int(np.argmax(spectrum))]), data.size / rate


def rms(path: Path, start_s: float, end_s: float) -> float:
    data, rate = wav_samples(path)
    window = data[int(start_s * rate):int(end_s * rate)].astype(np.float64)
    return float(np.sqrt(np.mean(window ** 2))) if window.size else 0.0


def assert_pattern(samples: list[dict[str, Any]], width: int = 640, height: int = 480) -> None:
    """The received frames show the four bars in order and a square that moves."""
    assert samples, "no video frame analysed"
    expected = [y for y, _, _ in BAR_COLOURS_YUV]
    for sample in samples:
        assert (sample["width"], sample["height"]) == (width, height)
        for got, want in zip(sample["bar_luma"], expected):
            assert abs(got - want) < 20, (sample["bar_luma"], expected)
    positions = {s["square_x"] for s in samples if s["square_x"] is not None}
    assert len(positions) >= 2, f"the square did not move: {samples}"
