"""Twisted's global reactor running in a background thread, for in-process
tests of code that does real network I/O on loopback (TLS servers, DNS).

`run_in_reactor(factory)` calls `factory()` (which returns a coroutine) on
the reactor thread and waits for its result in the test's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred

T = TypeVar("T")

_started = threading.Lock()
_thread: threading.Thread | None = None


def _ensure_running() -> None:
    global _thread
    with _started:
        if _thread is None:
            _thread = threading.Thread(
                target=reactor.run, kwargs={"installSignalHandlers": False},  # type: ignore[attr-defined]
                name="reactor", daemon=True)
            _thread.start()


def run_in_reactor(factory: Callable[[], Awaitable[T]], timeout_s: float = 30.0) -> T:
    """Run the coroutine `factory()` on the reactor thread; its result or exception."""
    _ensure_running()

    def start() -> Deferred[T]:
        result: Deferred[T] = Deferred.fromCoroutine(factory())  # type: ignore[arg-type]
        return result.addTimeout(timeout_s, reactor)

    return threads.blockingCallFromThread(reactor, start)  # type: ignore[no-any-return]


def call_in_reactor(fn: Callable[..., T], *args: Any) -> T:
    """Call a plain function on the reactor thread (e.g. to listen on a port)."""
    _ensure_running()
    return threads.blockingCallFromThread(reactor, fn, *args)  # type: ignore[no-any-return]
