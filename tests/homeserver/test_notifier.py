"""The notifier wakes waiters in batches across reactor turns, losing none; its
change index answers what changed about a user, minus what a filter ignores."""

from __future__ import annotations

from twisted.internet.task import Clock as ReactorClock

from homeserver.clock import Clock
from homeserver.storage.stream import StreamIdGenerator
from homeserver.sync.filtering import EventFilter
from homeserver.sync.notifier import WAKE_BATCH, ChangeIndex, Notifier


def _advance(stream: StreamIdGenerator) -> int:
    position = stream.allocate()
    stream.finish(position)
    return position


def test_a_big_room_is_woken_one_batch_per_reactor_turn() -> None:
    reactor = ReactorClock()
    stream = StreamIdGenerator(0)
    notifier = Notifier(stream, Clock(reactor))
    woken: list[int] = []
    waiters = [notifier.wait(f"@u{i}:hs", ["!room:hs"], 0) for i in range(WAKE_BATCH * 2 + 1)]
    for waiter in waiters:
        waiter.addCallback(woken.append)
    position = _advance(stream)
    notifier.notify(position, rooms=["!room:hs"])
    assert len(woken) == WAKE_BATCH  # the rest wait for the reactor's next turn
    assert len(reactor.getDelayedCalls()) == 1
    reactor.advance(0)  # the test clock runs the batches it schedules at once
    assert woken == [position] * len(waiters)
    assert not reactor.getDelayedCalls()


def test_a_waiter_cancelled_while_queued_is_skipped_and_later_changes_still_wake() -> None:
    reactor = ReactorClock()
    stream = StreamIdGenerator(0)
    notifier = Notifier(stream, Clock(reactor))
    waiters = [notifier.wait(f"@u{i}:hs", ["!room:hs"], 0) for i in range(WAKE_BATCH + 2)]
    fired: list[int] = []
    for waiter in waiters:
        waiter.addCallbacks(fired.append, lambda failure: None)
    notifier.notify(_advance(stream), rooms=["!room:hs"])
    queued = [w for w in waiters if not w.called]
    assert len(queued) == 2
    queued[0].cancel()  # e.g. its long-poll timed out before its turn
    # A waiter that came back after its wake-up sees the next change.
    again = notifier.wait("@u0:hs", ["!room:hs"], stream.current)
    second = _advance(stream)
    notifier.notify(second, rooms=["!room:hs"])
    reactor.advance(0)
    assert again.called and queued[1].called
    assert len(fired) == WAKE_BATCH + 1


def test_without_a_clock_everyone_is_woken_at_once() -> None:
    stream = StreamIdGenerator(0)
    notifier = Notifier(stream)
    waiters = [notifier.wait(f"@u{i}:hs", ["!room:hs"], 0) for i in range(WAKE_BATCH * 3)]
    notifier.notify(_advance(stream), rooms=["!room:hs"])
    assert all(w.called for w in waiters)


def test_a_users_own_presence_can_be_ignored_but_no_other_change() -> None:
    # A client that filters presence out is quiet after its own presence moved
    # (handlers/sync.py `_quiet_user_rooms`); anything else about it still counts.
    changes = ChangeIndex(0)
    changes.mark("presence", 5, frozenset(["!r"]), frozenset(["@a:x"]))
    assert changes.user_changed_at_all("@a:x", 4)
    assert not changes.user_changed_at_all("@a:x", 4, ignoring=("presence",))
    assert not changes.user_changed_at_all("@a:x", 5)
    changes.mark("account_data", 6, frozenset(), frozenset(["@a:x"]))
    assert changes.user_changed_at_all("@a:x", 4, ignoring=("presence",))
    changes.mark("other", 8, frozenset(), frozenset(["@b:x"]))
    assert changes.user_changed_at_all("@b:x", 7, ignoring=("other", "presence"))


def test_a_filter_that_allows_nothing_is_recognised() -> None:
    assert EventFilter.parse({"types": []}).allows_nothing
    assert EventFilter.parse({"senders": []}).allows_nothing
    assert EventFilter.parse({"not_types": ["*"]}).allows_nothing
    for open_filter in ({}, {"types": ["m.presence"]}, {"not_types": ["m.typing"]}):
        parsed = EventFilter.parse(open_filter)
        assert not parsed.allows_nothing and parsed.allows("m.presence", "@a:x")
