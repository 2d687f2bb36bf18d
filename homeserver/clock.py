"""An injectable clock: tests drive time, the server reads the reactor's."""

from __future__ import annotations

from typing import Any, Callable


class Clock:
    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def time_ms(self) -> int:
        return int(self._reactor.seconds() * 1000)

    def time(self) -> float:
        return float(self._reactor.seconds())

    def call_later(self, seconds: float, fn: Callable[..., Any], *args: Any) -> Any:
        return self._reactor.callLater(seconds, fn, *args)
