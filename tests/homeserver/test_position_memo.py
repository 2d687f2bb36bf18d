"""PositionMemo: one load per key and position, however many ask at once."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred

from homeserver.cache import PositionMemo


class Loads:
    """A load that finishes when the test says so, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.pending: list[Deferred[str]] = []

    async def __call__(self) -> str:
        self.calls += 1
        d: Deferred[str] = Deferred()
        self.pending.append(d)
        return await d


def test_callers_at_one_position_share_one_load() -> None:
    memo: PositionMemo[str] = PositionMemo()
    load = Loads()
    first = ensureDeferred(memo.get_or_load(5, "k", load))
    second = ensureDeferred(memo.get_or_load(5, "k", load))
    assert load.calls == 1
    load.pending[0].callback("answer")
    assert (first.result, second.result) == ("answer", "answer")
    third = ensureDeferred(memo.get_or_load(5, "k", load))
    assert third.result == "answer" and load.calls == 1


def test_another_position_forgets_everything() -> None:
    memo: PositionMemo[str] = PositionMemo()
    memo.put(5, "k", "old")
    assert memo.get(5, "k") == "old"
    assert memo.get(6, "k") is None
    load = Loads()
    later = ensureDeferred(memo.get_or_load(6, "k", load))
    load.pending[0].callback("new")
    assert later.result == "new" and memo.get(5, "k") is None


def test_a_failed_load_fails_its_waiters_and_is_not_kept() -> None:
    memo: PositionMemo[str] = PositionMemo()
    load = Loads()
    first = ensureDeferred(memo.get_or_load(5, "k", load))
    second = ensureDeferred(memo.get_or_load(5, "k", load))
    load.pending[0].errback(RuntimeError("database gone"))
    failures: list[Any] = []
    for d in (first, second):
        d.addErrback(failures.append)
    assert [f.check(RuntimeError) for f in failures] == [RuntimeError, RuntimeError]
    retry = ensureDeferred(memo.get_or_load(5, "k", load))
    assert load.calls == 2
    load.pending[1].callback("fine")
    assert retry.result == "fine"


def test_a_load_finishing_after_the_position_moved_is_not_kept() -> None:
    memo: PositionMemo[str] = PositionMemo()
    load = Loads()
    stale = ensureDeferred(memo.get_or_load(5, "k", load))
    memo.put(6, "other", "x")  # the stream moved on meanwhile
    load.pending[0].callback("late")
    assert stale.result == "late"
    assert memo.get(5, "k") is None and memo.get(6, "other") == "x"
