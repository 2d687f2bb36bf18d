"""Wakes /sync long-polls (and later WebSocket streams) when something they
care about reaches the stream.

Writers call `notify(position, rooms=..., users=...)`. A notification is
delivered only once the stream's `current` position has passed it, so a woken
sync never reads a token whose rows are still being written.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from twisted.internet.defer import Deferred

from ..clock import Clock
from ..storage.stream import StreamIdGenerator
from .change_cache import StreamChangeCache

# How many delivered notifications to remember for waiters that arrive late.
_HISTORY = 20000
# Waiters woken per reactor turn. Between batches the reactor writes out what
# the woken ones sent, so in a big room the first listeners have a message
# (and the client parses it) while the rest are still being woken, and one
# fan-out does not hold up every other request until it is done.
WAKE_BATCH = 50


@dataclass
class _Notification:
    position: int
    rooms: frozenset[str]
    users: frozenset[str]


# What a notification is about. "other" means "could be anything" and answers
# every question, so a writer that names no kind is never skipped.
KINDS = ("events", "members", "receipts", "typing", "presence", "account_data",
         "to_device", "device_lists", "other")


class ChangeIndex:
    """Which rooms and users changed, by kind, since a position (from memory).

    Users are marked for `events` when a member event targets them, so
    `user_changed(u, ("events",))` means "u's memberships may have changed".
    """

    def __init__(self, floor: int) -> None:
        self._rooms = {kind: StreamChangeCache(floor) for kind in KINDS}
        self._users = {kind: StreamChangeCache(floor) for kind in KINDS}
        # Any kind at all: most questions are about rooms and users that did
        # not change, and one lookup answers them instead of one per kind.
        self._any_room = StreamChangeCache(floor)
        self._any_user = StreamChangeCache(floor)

    def mark(self, kind: str, position: int, rooms: frozenset[str], users: frozenset[str]
             ) -> None:
        kind = kind if kind in self._rooms else "other"
        for room in rooms:
            self._rooms[kind].mark(room, position)
            self._any_room.mark(room, position)
        for user in users:
            self._users[kind].mark(user, position)
            self._any_user.mark(user, position)

    def room_changed(self, room_id: str, kinds: tuple[str, ...], since: int) -> bool:
        if not self._any_room.changed_since(room_id, since):
            return False
        return any(self._rooms[k].changed_since(room_id, since) for k in (*kinds, "other"))

    def user_changed_at_all(self, user_id: str, since: int, ignoring: tuple[str, ...] = ()
                            ) -> bool:
        """Any change about the user, but for the kinds `ignoring` names ("other"
        is never ignored: it could be anything)."""
        if not self._any_user.changed_since(user_id, since):
            return False
        if not ignoring:
            return True
        return any(cache.changed_since(user_id, since) for kind, cache in self._users.items()
                   if kind not in ignoring or kind == "other")

    def user_changed(self, user_id: str, kinds: tuple[str, ...], since: int) -> bool:
        if not self._any_user.changed_since(user_id, since):
            return False
        return any(self._users[k].changed_since(user_id, since) for k in (*kinds, "other"))


@dataclass(eq=False)
class _Waiter:
    user_id: str
    rooms: frozenset[str]
    deferred: Deferred = field(default_factory=Deferred)


class Notifier:
    def __init__(self, stream: StreamIdGenerator, clock: Clock | None = None) -> None:
        """Without a clock every waiter is woken at once (in-memory tests)."""
        self._stream = stream
        self._clock = clock
        self._to_wake: deque[tuple[_Waiter, int]] = deque()
        self._wake_scheduled = False
        self._pending: list[_Notification] = []
        self._history: deque[_Notification] = deque(maxlen=_HISTORY)
        self._by_user: dict[str, set[_Waiter]] = {}
        self._by_room: dict[str, set[_Waiter]] = {}
        self.changes = ChangeIndex(stream.current)

    @property
    def current(self) -> int:
        return self._stream.current

    def notify(self, position: int, rooms: Iterable[str] = (), users: Iterable[str] = (),
               kind: str = "other") -> None:
        note = _Notification(position, frozenset(rooms), frozenset(users))
        # Recorded at once (before delivery): a sync reading up to `current`
        # must never skip a change that is already visible.
        self.changes.mark(kind, position, note.rooms, note.users)
        self._pending.append(note)
        self.flush()

    def flush(self) -> None:
        """Deliver every pending notification the stream has caught up with."""
        current = self._stream.current
        ready = [n for n in self._pending if n.position <= current]
        if not ready:
            return
        self._pending = [n for n in self._pending if n.position > current]
        woken: set[_Waiter] = set()
        for note in ready:
            self._history.append(note)
            woken |= self._waiters_for(note)
        for waiter in woken:
            # Out of the index at once: a later notification cannot wake it
            # twice, and it is queued already, so it cannot miss one either.
            self._remove(waiter)
            self._to_wake.append((waiter, current))
        self._wake_some()

    def _wake_some(self) -> None:
        count = 0
        while self._to_wake and (self._clock is None or count < WAKE_BATCH):
            waiter, position = self._to_wake.popleft()
            if not waiter.deferred.called:  # not timed out or cancelled meanwhile
                waiter.deferred.callback(position)
                count += 1
        if self._to_wake and self._clock is not None and not self._wake_scheduled:
            self._wake_scheduled = True
            self._clock.call_later(0, self._wake_later)

    def _wake_later(self) -> None:
        self._wake_scheduled = False
        self._wake_some()

    def _waiters_for(self, note: _Notification) -> set[_Waiter]:
        found: set[_Waiter] = set()
        for user in note.users:
            found |= self._by_user.get(user, set())
        for room in note.rooms:
            found |= self._by_room.get(room, set())
        return found

    def _seen_since(self, since: int, user_id: str, rooms: frozenset[str]) -> bool:
        for note in reversed(self._history):
            if note.position <= since:
                break
            if user_id in note.users or note.rooms & rooms:
                return True
        return False

    def wait(self, user_id: str, rooms: Iterable[str], since: int) -> Deferred:
        """A Deferred firing with the new position once something relevant after
        `since` is delivered. Cancel it (or let it time out) to stop waiting."""
        room_set = frozenset(rooms)
        if self.current > since and self._seen_since(since, user_id, room_set):
            return _fired(self.current)
        waiter = _Waiter(user_id, room_set)
        waiter.deferred = Deferred(lambda _d: self._remove(waiter))
        self._by_user.setdefault(user_id, set()).add(waiter)
        for room in room_set:
            self._by_room.setdefault(room, set()).add(waiter)
        return waiter.deferred

    def _remove(self, waiter: _Waiter) -> None:
        users = self._by_user.get(waiter.user_id)
        if users is not None:
            users.discard(waiter)
            if not users:
                del self._by_user[waiter.user_id]
        for room in waiter.rooms:
            members = self._by_room.get(room)
            if members is not None:
                members.discard(waiter)
                if not members:
                    del self._by_room[room]


def _fired(value: int) -> Deferred:
    d: Deferred = Deferred()
    d.callback(value)
    return d
