"""Presence (spec: presence).

A local user's presence is derived, at any moment, from two things:

- the devices connected now. A device is connected while it has a /sync in
  progress and for GRACE_MS after its last one ended (or after it set its
  presence), and asks for a mode: `set_presence` on /sync or PUT
  /presence/{userId}/status (online, unavailable or offline);
- the time of the user's last activity: sending events, typing, receipts,
  setting their presence, and a device coming online.

    no connected device asks for online or unavailable   -> offline
    a device asks for online, and active within IDLE_MS   -> online
    otherwise                                              -> unavailable

`currently_active` is true while online and active within ACTIVE_MS. Timers on
the injected clock re-derive a user's presence when it can next change. A change
of state, status message or `currently_active` is stored at a new stream
position and wakes the /sync of the user and of everyone sharing a room with
them. Only users with a connected device, or not yet stored as offline, are
kept in memory.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Coroutine

from twisted.internet.defer import Deferred, DeferredLock

from federation.protocol.errors import Codes, MatrixError
from federation.protocol.events import MEMBER

from ..clock import Clock
from ..rooms.writer import PersistedEvent
from ..storage.presence import PresenceRow, PresenceStore, UserPresence
from ..storage.rooms import RoomStore
from ..storage.stream import StreamIdGenerator
from ..sync.notifier import Notifier

logger = logging.getLogger(__name__)

ONLINE, UNAVAILABLE, OFFLINE = "online", "unavailable", "offline"
PRESENCE_STATES = (ONLINE, UNAVAILABLE, OFFLINE)

GRACE_MS = 30_000  # a device stays connected this long after its last /sync
IDLE_MS = 5 * 60_000  # online turns unavailable after this long without activity
ACTIVE_MS = 60_000  # currently_active lasts this long after an activity
NOTIFY_BATCH_MS = 50  # presence changes within this window wake syncs once


# The state machine (pure) -------------------------------------------------------


@dataclass
class _Device:
    mode: str  # what the device last asked for
    syncs: int = 0  # /sync requests in progress
    last_seen_ts: int = 0

    def connected(self, now: int) -> bool:
        return self.syncs > 0 or now - self.last_seen_ts < GRACE_MS


@dataclass
class _User:
    user_id: str
    published: UserPresence  # what is stored, and what others have seen
    last_active_ts: int
    status_msg: str | None
    devices: dict[str, _Device] = field(default_factory=dict)
    timer: Any = None


def derive(user: _User, now: int) -> UserPresence:
    """The user's presence at `now`, from their connected devices and last activity."""
    modes = {d.mode for d in user.devices.values() if d.connected(now)}
    idle = now - user.last_active_ts >= IDLE_MS
    if ONLINE in modes and not idle:
        state = ONLINE
    elif ONLINE in modes or UNAVAILABLE in modes:
        state = UNAVAILABLE
    else:
        state = OFFLINE
    active = state == ONLINE and now - user.last_active_ts < ACTIVE_MS
    return UserPresence(user.user_id, state, user.status_msg, user.last_active_ts, active)


def next_change(user: _User, now: int) -> int | None:
    """The next moment derive() can answer differently without anything happening."""
    times = [d.last_seen_ts + GRACE_MS for d in user.devices.values() if d.syncs == 0]
    times += [user.last_active_ts + IDLE_MS, user.last_active_ts + ACTIVE_MS]
    future = [t for t in times if t > now]
    return min(future) if future else None


def differs(old: UserPresence, new: UserPresence) -> bool:
    """Whether others need to hear of the change (a later last_active_ts alone
    is not news: it shows in last_active_ago once something else changes)."""
    return (old.state, old.status_msg, old.currently_active) != \
        (new.state, new.status_msg, new.currently_active)


def presence_content(state: UserPresence, now: int) -> dict[str, Any]:
    """GET /presence/{userId}/status, and the content of `m.presence`."""
    content: dict[str, Any] = {"presence": state.state,
                               "currently_active": state.currently_active}
    if state.last_active_ts:
        content["last_active_ago"] = max(0, now - state.last_active_ts)
    if state.status_msg is not None:
        content["status_msg"] = state.status_msg
    return content


def presence_event(row: PresenceRow, now: int) -> dict[str, Any]:
    content = presence_content(row.presence, now)
    if row.displayname is not None:
        content["displayname"] = row.displayname
    if row.avatar_url is not None:
        content["avatar_url"] = row.avatar_url
    return {"type": "m.presence", "sender": row.presence.user_id, "content": content}


class _KeyedLock:
    """One DeferredLock per key, dropped once nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, DeferredLock] = {}

    @asynccontextmanager
    async def __call__(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, DeferredLock())
        await lock.acquire()
        try:
            yield
        finally:
            lock.release()
            if self._locks.get(key) is lock and not lock.locked and not lock.waiting:
                del self._locks[key]


# The handler ----------------------------------------------------------------------


class PresenceHandler:
    def __init__(self, store: PresenceStore, rooms: RoomStore, stream: StreamIdGenerator,
                 notifier: Notifier, clock: Clock) -> None:
        self._store = store
        self._rooms = rooms
        self._stream = stream
        self._notifier = notifier
        self._clock = clock
        self._users: dict[str, _User] = {}
        self._locks = _KeyedLock()
        # No presence row was written after this position before we started.
        self._latest = stream.current
        self._pending_rooms: set[str] = set()
        self._pending_users: set[str] = set()
        self._pending_position = 0
        self._flush_timer: Any = None
        # Called with each presence change that is stored (federation forwards
        # those of our users to the servers sharing a room with them).
        self.on_presence: list[Callable[[UserPresence], None]] = []

    def start(self) -> None:
        """Presence stored as online before a restart times out, unless its user
        reconnects within the grace period."""
        self._clock.call_later(GRACE_MS / 1000, lambda: self._spawn(self._expire_stored()))

    # /sync (the Protocol rest/client/sync.py and handlers/sync.py use) ---------------

    def user_syncing(self, user_id: str, device_id: str, set_presence: str) -> Deferred[None]:
        """A /sync (or stream) starts: await it to have the result in the response."""
        return Deferred.fromCoroutine(self._syncing(user_id, device_id, set_presence))

    async def _syncing(self, user_id: str, device_id: str, set_presence: str) -> None:
        async with self._locks(user_id):
            user = await self._load(user_id)
            now = self._clock.time_ms()
            device = user.devices.get(device_id)
            if set_presence == ONLINE and (device is None or not device.connected(now)
                                           or device.mode != ONLINE):
                user.last_active_ts = now  # a device coming online is activity
            if device is None:
                device = user.devices[device_id] = _Device(set_presence)
            device.mode = set_presence
            device.syncs += 1
            device.last_seen_ts = now
            await self._settle(user, now)

    def user_stopped_syncing(self, user_id: str, device_id: str) -> None:
        # Queued on the user's lock behind the user_syncing() it ends, even if
        # that one is still loading the user.
        self._spawn(self._stopped_syncing(user_id, device_id))

    async def _stopped_syncing(self, user_id: str, device_id: str) -> None:
        async with self._locks(user_id):
            user = self._users.get(user_id)
            device = user.devices.get(device_id) if user is not None else None
            if user is None or device is None or device.syncs == 0:
                return
            device.syncs -= 1
            device.last_seen_ts = self._clock.time_ms()
            if device.syncs == 0:
                self._schedule(user, device.last_seen_ts)

    async def presence_events(self, user_id: str, since: int | None, upto: int
                              ) -> list[dict[str, Any]]:
        """`m.presence` of the user and everyone sharing a room with them: changes
        in (since, upto], or everyone not offline on an initial sync. Members of
        rooms the user joined in between are new to them: they get those too."""
        rows: dict[str, PresenceRow] = {}
        if since is None:
            rows = await self._not_offline(await self._watched(user_id))
        else:
            if since < self._latest:
                rows = await self._store.changed(await self._watched(user_id), since, upto)
            newly = await self._newly_shared(user_id, since, upto)
            rows.update(await self._not_offline(newly - rows.keys()))
        now = self._clock.time_ms()
        return [presence_event(r, now) for r in sorted(rows.values(), key=lambda r: r.stream_id)]

    async def changed_presence_events(self, user_ids: set[str], since: int, upto: int
                                      ) -> list[dict[str, Any]]:
        """`m.presence` of these users, for those whose presence changed in (since, upto]."""
        if not user_ids or since >= self._latest:
            return []
        rows = await self._store.changed(user_ids, since, upto)
        now = self._clock.time_ms()
        return [presence_event(r, now) for r in sorted(rows.values(), key=lambda r: r.stream_id)]

    # Activity -------------------------------------------------------------------------

    def bump_active(self, user_id: str) -> None:
        """The user did something (typed, read, sent): they are not idle."""
        if user_id in self._users:  # untracked: no device connected, offline either way
            self._spawn(self._touch(user_id, republish=False))

    def event_persisted(self, persisted: PersistedEvent) -> None:
        """Room writer listener: sending is activity, and a join shows the joiner's
        presence to the room's members, who have not seen it yet."""
        event = persisted.event
        if event.sender in self._users:
            joined = event.type == MEMBER and event.membership == "join"
            self._spawn(self._touch(event.sender, republish=joined))

    async def _touch(self, user_id: str, republish: bool) -> None:
        async with self._locks(user_id):
            user = self._users.get(user_id)
            if user is not None:
                now = self._clock.time_ms()
                user.last_active_ts = now
                await self._settle(user, now, republish)

    # /presence/{userId}/status ---------------------------------------------------------

    async def set_presence(self, requester_id: str, device_id: str, user_id: str,
                           presence: str, status_msg: str | None) -> None:
        if requester_id != user_id:
            raise MatrixError(403, Codes.FORBIDDEN, "Cannot set another user's presence")
        if presence not in PRESENCE_STATES:
            raise MatrixError(400, Codes.INVALID_PARAM,
                              f"presence must be one of {', '.join(PRESENCE_STATES)}")
        async with self._locks(user_id):
            user = await self._load(user_id)
            now = self._clock.time_ms()
            device = user.devices.setdefault(device_id, _Device(presence))
            device.mode = presence
            device.last_seen_ts = now
            user.last_active_ts = now  # spec: setting the status updates the activity time
            user.status_msg = status_msg
            await self._settle(user, now)

    async def get_presence(self, requester_id: str, user_id: str) -> dict[str, Any]:
        if requester_id != user_id and \
                user_id not in await self._rooms.shared_room_users(requester_id):
            raise MatrixError(403, Codes.FORBIDDEN, "You are not allowed to see their presence")
        now = self._clock.time_ms()
        user = self._users.get(user_id)
        if user is not None:
            return presence_content(derive(user, now), now)
        row = (await self._store.get_many([user_id])).get(user_id)
        return presence_content(row.presence if row else _offline(user_id), now)

    # Internals -------------------------------------------------------------------------

    async def _load(self, user_id: str) -> _User:
        """The tracked user, starting from what is stored (call under the user's lock)."""
        user = self._users.get(user_id)
        if user is None:
            row = (await self._store.get_many([user_id])).get(user_id)
            stored = row.presence if row else _offline(user_id)
            user = _User(user_id, stored, stored.last_active_ts, stored.status_msg)
            self._users[user_id] = user
        return user

    async def _settle(self, user: _User, now: int, republish: bool = False) -> None:
        """Re-derive after a change: publish what others must hear, set the next
        timer, and forget users with nothing left to track."""
        user.devices = {k: d for k, d in user.devices.items() if d.connected(now)}
        new = derive(user, now)
        if new.state == OFFLINE and not user.devices:
            self._forget(user)
        else:
            self._schedule(user, now)
        if differs(user.published, new) or (republish and new.state != OFFLINE):
            await self._publish(new)
            user.published = new

    def _schedule(self, user: _User, now: int) -> None:
        if user.timer is not None and user.timer.active():
            user.timer.cancel()
        at = next_change(user, now)
        user.timer = None if at is None else self._clock.call_later(
            (at - now) / 1000, self._on_timer, user.user_id)

    def _forget(self, user: _User) -> None:
        if user.timer is not None and user.timer.active():
            user.timer.cancel()
        if self._users.get(user.user_id) is user:
            del self._users[user.user_id]

    def _on_timer(self, user_id: str) -> None:
        self._spawn(self._reevaluate(user_id))

    async def _reevaluate(self, user_id: str) -> None:
        async with self._locks(user_id):
            user = self._users.get(user_id)
            if user is not None:
                await self._settle(user, self._clock.time_ms())

    async def set_remote_presence(self, state: UserPresence) -> None:
        """Another server's user (an `m.presence` EDU): stored and shown like ours."""
        async with self._locks(state.user_id):
            if state.user_id not in self._users:
                await self._publish(state)

    async def _publish(self, state: UserPresence) -> None:
        rooms = await self._rooms.rooms_for_user(state.user_id, ("join",))
        with self._stream.reserve() as (position,):
            await self._store.put(state, position)
            self._latest = max(self._latest, position)
            # Recorded before the position is finished (a sync reading past it
            # must find the change); only waking the syncs waits for a batch.
            self._notifier.changes.mark("presence", position, frozenset(rooms),
                                        frozenset([state.user_id]))
        self._queue_notification(position, rooms.keys(), state.user_id)
        for callback in self.on_presence:
            callback(state)
        logger.debug("presence of %s: %s", state.user_id, state.state)

    def _queue_notification(self, position: int, rooms: Any, user_id: str) -> None:
        """Presence changes come in bursts (a room's worth of timers at once): wake
        the room's syncs once per burst, not once per change."""
        self._pending_rooms.update(rooms)
        self._pending_users.add(user_id)
        self._pending_position = max(self._pending_position, position)
        if self._flush_timer is None:
            self._flush_timer = self._clock.call_later(NOTIFY_BATCH_MS / 1000,
                                                       self._flush_notifications)

    def _flush_notifications(self) -> None:
        rooms, users = self._pending_rooms, self._pending_users
        self._pending_rooms, self._pending_users, self._flush_timer = set(), set(), None
        self._notifier.notify(self._pending_position, rooms=rooms, users=users,
                              kind="presence")

    async def _expire_stored(self) -> None:
        for user_id in await self._store.not_offline():
            async with self._locks(user_id):
                await self._settle(await self._load(user_id), self._clock.time_ms())

    async def _watched(self, user_id: str) -> set[str]:
        return await self._rooms.shared_room_users(user_id) | {user_id}

    async def _newly_shared(self, user_id: str, since: int, upto: int) -> set[str]:
        joined = {c.room_id for c in await self._rooms.membership_changes(user_id, since, upto)
                  if c.membership == "join"}
        members: set[str] = set()
        for room_id in joined:
            members.update(await self._rooms.members(room_id))
        return members

    async def _not_offline(self, user_ids: set[str]) -> dict[str, PresenceRow]:
        rows = await self._store.get_many(user_ids)
        return {u: r for u, r in rows.items() if r.presence.state != OFFLINE}

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        Deferred.fromCoroutine(work).addErrback(
            lambda failure: logger.error("presence update failed: %s", failure.getTraceback()))


def _offline(user_id: str) -> UserPresence:
    return UserPresence(user_id, OFFLINE, None, 0, False)
