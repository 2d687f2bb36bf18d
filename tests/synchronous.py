"""Running Twisted coroutines to completion in unit tests, without a reactor.

In-process tests use SQLite on the calling thread and a fake clock, so a
coroutine's Deferred fires before `ensureDeferred` returns."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.python.failure import Failure


def done(work: Any) -> Any:
    """The result of `work` (a coroutine or Deferred), which must complete at once."""
    results: list[Any] = []
    ensureDeferred(work).addBoth(results.append)
    assert results, "did not complete synchronously"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]
