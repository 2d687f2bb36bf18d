"""Per-destination exponential backoff (pure: the caller passes the time)."""

from __future__ import annotations

from federation.transport.backoff import Backoff


def test_waits_double_from_the_minimum_up_to_the_cap() -> None:
    backoff = Backoff(min_s=2, max_s=600)
    waits = [backoff.failed("b.test", now=100.0) for _ in range(12)]
    assert waits[:5] == [2, 4, 8, 16, 32]
    assert waits[-3:] == [600, 600, 600]
    assert backoff.retry_in("b.test", now=100.0) == 600
    assert backoff.retry_in("b.test", now=700.0) == 0
    assert backoff.retry_in("other.test", now=100.0) == 0


def test_success_resets_and_announces_recovery() -> None:
    backoff = Backoff()
    recovered: list[str] = []
    backoff.on_recovered.append(recovered.append)
    backoff.succeeded("b.test")  # never failed: nothing to announce
    backoff.failed("b.test", now=0.0)
    backoff.succeeded("b.test")
    assert recovered == ["b.test"]
    assert backoff.failed("b.test", now=0.0) == 2  # starts over


def test_endless_failures_neither_overflow_nor_grow_memory() -> None:
    backoff = Backoff(min_s=2, max_s=600)
    for _ in range(5000):
        backoff.failed("b.test", now=0.0)
    assert backoff.retry_in("b.test", now=0.0) == 600
    for i in range(Backoff.MAX_TRACKED + 10):
        backoff.failed(f"s{i}.test", now=0.0)
    assert backoff.state("s0.test") is None  # the oldest are forgotten
