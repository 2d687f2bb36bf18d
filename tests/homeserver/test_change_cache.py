"""The in-memory change caches /sync relies on to skip database queries."""

from __future__ import annotations

from homeserver.sync.change_cache import RecentRoomEvents, StreamChangeCache


def test_unknown_before_floor_and_exact_after() -> None:
    cache = StreamChangeCache(floor=10)
    assert cache.changed_since("a", 5)  # before the floor: must ask the database
    assert not cache.changed_since("a", 10)
    cache.mark("a", 12)
    assert cache.changed_since("a", 11)
    assert not cache.changed_since("a", 12)
    assert not cache.changed_since("b", 11)


def test_eviction_raises_the_floor() -> None:
    cache = StreamChangeCache(floor=0, max_entities=2)
    cache.mark("a", 1)
    cache.mark("b", 2)
    cache.mark("c", 3)  # evicts "a"
    assert cache.changed_since("a", 0)  # unknown again: floor is now 1
    assert not cache.changed_since("a", 1)
    assert not cache.changed_since("b", 2) and cache.changed_since("b", 1)


def test_recent_events_newest_first_with_limit() -> None:
    recent = RecentRoomEvents(floor=0, per_room=10)
    for pos in range(1, 6):
        recent.add("!r", pos, f"$e{pos}")
    assert recent.between("!r", 2, 5, limit=10) == ["$e5", "$e4", "$e3"]
    assert recent.between("!r", 0, 3, limit=10) == ["$e3", "$e2", "$e1"]
    assert recent.between("!r", 0, 5, limit=1) == ["$e5", "$e4"]  # limit + 1 shows "limited"
    assert recent.between("!other", 0, 5, limit=3) == []


def test_recent_events_unknown_beyond_memory() -> None:
    recent = RecentRoomEvents(floor=0, per_room=3)
    for pos in range(1, 6):
        recent.add("!r", pos, f"$e{pos}")
    assert recent.between("!r", 1, 5, limit=10) is None  # $e2 was dropped from memory
    assert recent.between("!r", 2, 5, limit=10) == ["$e5", "$e4", "$e3"]


def test_evicted_room_is_unknown_not_empty() -> None:
    recent = RecentRoomEvents(floor=0, per_room=5, max_rooms=1)
    recent.add("!a", 1, "$a1")
    recent.add("!b", 2, "$b2")  # evicts "!a"
    assert recent.between("!a", 0, 2, limit=5) is None
    assert recent.between("!a", 1, 2, limit=5) == []
