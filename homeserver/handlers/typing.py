"""Typing notifications: in memory, expiring after the client's timeout."""

from __future__ import annotations

from typing import Any, Callable

from federation.protocol.errors import Codes, MatrixError
from federation.protocol.events import MEMBER

from ..clock import Clock
from ..rooms.writer import PersistedEvent
from ..storage.rooms import RoomStore
from ..storage.stream import StreamIdGenerator
from ..sync.notifier import Notifier

MAX_TIMEOUT_MS = 120_000
DEFAULT_TIMEOUT_MS = 30_000


class TypingHandler:
    def __init__(self, stream: StreamIdGenerator, notifier: Notifier, clock: Clock,
                 rooms: RoomStore, user_active: Callable[[str], None] | None = None) -> None:
        self._stream = stream
        self._notifier = notifier
        self._clock = clock
        self._rooms = rooms
        self._user_active = user_active
        self._typing: dict[str, dict[str, Any]] = {}  # room -> user -> expiry timer
        # Called with (room_id, user_id, typing) when a user asks or a timeout ends it
        # (federation forwards our users' typing to the room's other servers).
        self.on_typing: list[Callable[[str, str, bool], None]] = []
        self._positions: dict[str, int] = {}  # room -> position of the last change

    async def user_typing(self, requester_id: str, room_id: str, user_id: str, typing: bool,
                          timeout_ms: int | None) -> None:
        """PUT /rooms/{roomId}/typing/{userId}: for yourself, in a room you are joined to."""
        if requester_id != user_id:
            raise MatrixError(403, Codes.FORBIDDEN, "Cannot set another user's typing state")
        if await self._rooms.membership(room_id, user_id) != "join":
            raise MatrixError(403, Codes.FORBIDDEN, "You are not joined to this room")
        self.set_typing(room_id, user_id, typing,
                        DEFAULT_TIMEOUT_MS if timeout_ms is None else timeout_ms)
        self._announce(room_id, user_id, typing)
        if typing and self._user_active is not None:
            self._user_active(user_id)

    def event_persisted(self, persisted: PersistedEvent) -> None:
        """Room writer listener: whoever leaves a room stops typing in it."""
        event = persisted.event
        if event.type == MEMBER and event.membership != "join" and \
                event.state_key in self._typing.get(event.room_id, {}):
            self.set_typing(event.room_id, event.state_key, False, 0)

    def set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        users = self._typing.setdefault(room_id, {})
        old_timer = users.pop(user_id, None)
        was_typing = old_timer is not None
        if old_timer is not None and old_timer.active():
            old_timer.cancel()
        if typing:
            timeout = max(0, min(timeout_ms, MAX_TIMEOUT_MS)) / 1000
            users[user_id] = self._clock.call_later(timeout, self._expire, room_id, user_id)
        if typing != was_typing:
            self._changed(room_id)
        elif not users:
            del self._typing[room_id]

    def _expire(self, room_id: str, user_id: str) -> None:
        users = self._typing.get(room_id, {})
        if users.pop(user_id, None) is not None:
            self._changed(room_id)
            self._announce(room_id, user_id, False)

    def _announce(self, room_id: str, user_id: str, typing: bool) -> None:
        for callback in self.on_typing:
            callback(room_id, user_id, typing)

    def _changed(self, room_id: str) -> None:
        position = self._stream.allocate()
        self._stream.finish(position)
        self._positions[room_id] = position
        if not self._typing.get(room_id):
            self._typing.pop(room_id, None)
        self._notifier.notify(position, rooms=[room_id], kind="typing")

    def typing_users(self, room_id: str) -> list[str]:
        return sorted(self._typing.get(room_id, {}))

    def changed_since(self, room_id: str, since: int | None) -> bool:
        position = self._positions.get(room_id)
        if position is None:
            return False
        return since is None or position > since
