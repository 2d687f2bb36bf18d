"""Per-destination exponential backoff, sans I/O: the caller passes the time.

After a failure a destination is not tried for `min_s`, doubling with each
further failure up to `max_s`; any success (or any authenticated request
from it) clears it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class DestinationState:
    failures: int
    retry_at: float  # seconds, on the caller's clock


class Backoff:
    # Bounded: a server that keeps failing for ever must not grow memory.
    MAX_TRACKED = 10_000

    def __init__(self, min_s: float = 2.0, max_s: float = 600.0, multiplier: float = 2.0
                 ) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.multiplier = multiplier
        self._states: OrderedDict[str, DestinationState] = OrderedDict()
        # Called with a destination when it stops being backed off.
        self.on_recovered: list[Callable[[str], None]] = []

    def retry_in(self, destination: str, now: float) -> float:
        """Seconds until `destination` may be tried; 0 when it may be now."""
        state = self._states.get(destination)
        return max(0.0, state.retry_at - now) if state else 0.0

    def state(self, destination: str) -> DestinationState | None:
        return self._states.get(destination)

    def failed(self, destination: str, now: float) -> float:
        """Record a failure; returns the wait before the next try."""
        state = self._states.pop(destination, None)
        failures = state.failures + 1 if state else 1
        # The exponent is capped: floats overflow long before failures stop.
        wait = min(self.max_s, self.min_s * self.multiplier ** min(failures - 1, 64))
        self._states[destination] = DestinationState(failures, now + wait)
        while len(self._states) > self.MAX_TRACKED:
            self._states.popitem(last=False)
        return wait

    def succeeded(self, destination: str) -> None:
        if self._states.pop(destination, None) is not None:
            for listener in self.on_recovered:
                listener(destination)
