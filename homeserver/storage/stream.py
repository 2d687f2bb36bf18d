"""The global stream counter.

Positions are handed out on the reactor thread and may finish out of order;
`current` only advances past positions whose writes have finished, so a sync
token never skips a row that commits later.
"""

from __future__ import annotations

import heapq
from contextlib import contextmanager
from typing import Iterator


class StreamIdGenerator:
    def __init__(self, current: int) -> None:
        self._next = current + 1
        self._current = current
        self._in_flight: set[int] = set()
        self._finished: list[int] = []

    def allocate(self) -> int:
        position = self._next
        self._next += 1
        self._in_flight.add(position)
        return position

    def finish(self, position: int) -> None:
        """Mark a position's write finished (committed or abandoned)."""
        self._in_flight.discard(position)
        heapq.heappush(self._finished, position)
        while self._finished and not any(p < self._finished[0] for p in self._in_flight):
            self._current = max(self._current, heapq.heappop(self._finished))

    @contextmanager
    def reserve(self, count: int = 1) -> Iterator[list[int]]:
        """Allocate `count` positions for one write, finishing them however it ends:

            with stream.reserve() as (position,):
                await store.put(..., position)
        """
        positions = [self.allocate() for _ in range(count)]
        try:
            yield positions
        finally:
            for position in positions:
                self.finish(position)

    @property
    def current(self) -> int:
        """Every position up to this one is finished."""
        return self._current
