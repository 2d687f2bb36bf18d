"""/sync: what changed for a user between two stream positions.

The response always has every container. `state` runs up to the start of the
timeline; incremental state is non-empty only when the timeline is limited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet import defer

from federation.protocol.events import MEMBER

from ..cache import InvalidatingCache, PositionMemo
from ..clock import Clock
from ..rooms.state_reader import StateReader
from ..rooms.visibility import Visibility
from ..rooms.writer import PersistedEvent
from ..storage.account_data import AccountDataStore
from ..storage.events import EventStore
from ..storage.receipts import ReceiptStore
from ..storage.rooms import RoomStore
from ..storage.to_device import ToDeviceStore
from ..sync.change_cache import RecentRoomEvents
from ..sync.filtering import SyncFilter
from ..sync.notifier import ChangeIndex, Notifier
from ..sync.tokens import SyncToken
from .sync_rooms import RoomSections, RoomTimeline, SyncRequest, UnreadCounter
from .typing import TypingHandler

__all__ = ["SyncHandler", "SyncRequest"]

logger = logging.getLogger(__name__)


class PresenceSource(Protocol):
    async def presence_events(self, user_id: str, since: int | None, upto: int
                              ) -> list[dict[str, Any]]: ...
    async def changed_presence_events(self, user_ids: set[str], since: int, upto: int
                                      ) -> list[dict[str, Any]]: ...


class DeviceKeysSource(Protocol):
    async def one_time_key_counts(self, user_id: str, device_id: str) -> dict[str, int]: ...
    async def unused_fallback_key_types(self, user_id: str, device_id: str) -> list[str]: ...
    async def device_list_changes(self, user_id: str, since: int, upto: int
                                  ) -> tuple[list[str], list[str]]: ...


@dataclass(frozen=True)
class _SharedAnswer:
    """An incremental answer for every quiet user of some rooms (_shared_build):
    no unread counts, no transaction IDs, no device keys."""

    body: dict[str, Any]
    news: bool
    lines: dict[str, RoomTimeline]  # each room's timeline, to add transaction IDs
    filter: SyncFilter  # the filter it was built with, kept alive (see its key)


class SyncHandler:
    def __init__(
        self, *, events: EventStore, rooms: RoomStore, state: StateReader,
        account_data: AccountDataStore, receipts: ReceiptStore, to_device: ToDeviceStore,
        typing: TypingHandler, notifier: Notifier, clock: Clock,
        presence: PresenceSource | None = None, unread: UnreadCounter | None = None,
        keys: DeviceKeysSource | None = None, visibility: Visibility | None = None,
        recent: RecentRoomEvents | None = None,
    ) -> None:
        self._sections = RoomSections(
            events=events, rooms=rooms, state=state, account_data=account_data,
            receipts=receipts, typing=typing, notifier=notifier, clock=clock, unread=unread,
            visibility=visibility, recent=recent)
        self._recent = recent
        # Per-user and per-room answers that only a membership change alters.
        self._joined_rooms: InvalidatingCache[frozenset[str]] = InvalidatingCache()
        self._room_members: InvalidatingCache[frozenset[str]] = InvalidatingCache(20_000)
        # (room, since) -> (the members asked about, those whose presence changed).
        self._presence_memo: PositionMemo[tuple[frozenset[str], frozenset[str]]] = \
            PositionMemo()
        self._shared_answers: PositionMemo[_SharedAnswer] = PositionMemo()
        self._rooms = rooms
        self._clock = clock
        self._account_data = account_data
        self._to_device = to_device
        self._typing = typing
        self._notifier = notifier
        self.presence = presence
        self.unread = unread
        self.keys = keys

    def event_persisted(self, persisted: PersistedEvent) -> None:
        """Room writer listener: remember recent events; drop cached memberships."""
        event = persisted.event
        if self._recent is not None:
            self._recent.add(event.room_id, persisted.stream_ordering, event.event_id)
        if event.type == MEMBER and event.state_key:
            self._joined_rooms.invalidate(event.state_key)
            self._sections.membership_changed(event.state_key, event.room_id)
            self._room_members.invalidate(event.room_id)

    async def joined_rooms(self, user_id: str) -> frozenset[str]:
        async def load() -> frozenset[str]:
            return frozenset(await self._rooms.rooms_for_user(user_id, ("join",)))

        return await self._joined_rooms.get_or_load(user_id, load)

    async def sync(self, req: SyncRequest) -> dict[str, Any]:
        if req.since is not None and req.since.to_device:
            await self._to_device.delete_upto(req.user_id, req.device_id, req.since.to_device)
        upto = self._notifier.current
        if req.since is None or req.full_state or (req.timeout_ms is not None
                                                   and req.timeout_ms <= 0):
            return (await self._build(req, upto))[0]
        response: dict[str, Any] | None = None
        if not self._quiet_since(req.since, upto):
            response, has_news = await self._build(req, upto)
            if has_news:
                return response
        # Invites and knocks target the user, so joined rooms and the user suffice.
        waiter = self._notifier.wait(req.user_id, await self.joined_rooms(req.user_id), upto)
        timer = None if req.timeout_ms is None else \
            self._clock.call_later(req.timeout_ms / 1000, waiter.cancel)
        try:
            await waiter
        except defer.CancelledError:
            if timer is None:  # no timeout: the caller gave up
                raise
            return response if response is not None else (await self._build(req, upto))[0]
        finally:
            if timer is not None and timer.active():
                timer.cancel()
        response, _ = await self._build(req, self._notifier.current)
        return response

    @staticmethod
    def _quiet_since(since: SyncToken, upto: int) -> bool:
        """Nothing can be new: every change takes a stream position, and none was
        taken since the token (nor are to-device messages left over from a capped
        response). A stream re-enters here after every frame it sends."""
        return since.position == upto and not since.to_device

    async def _build(self, req: SyncRequest, upto: int) -> tuple[dict[str, Any], bool]:
        since = req.since.position if req.since is not None else None
        if since is not None:
            rooms_key = await self._quiet_user_rooms(req, since)
            if rooms_key is not None:
                return await self._shared_build(req, since, upto, rooms_key)
        return await self._build_for(req, since, upto)

    async def _quiet_user_rooms(self, req: SyncRequest, since: int) -> frozenset[str] | None:
        """The user's rooms if, since `since`, nothing changed about the user
        (memberships, account data, to-device, receipts, presence, devices) nor
        about who is in their rooms: then their incremental answer is the one
        every such user of the same rooms gets, but for a few personal fields."""
        changes = self._notifier.changes
        # A user's own presence is news only to a client that asked for presence.
        ignoring = ("presence",) if req.filter.presence.allows_nothing else ()
        if req.full_state or (req.since is not None and req.since.to_device) or \
                changes.user_changed_at_all(req.user_id, since, ignoring):
            return None
        rooms = await self.joined_rooms(req.user_id)
        if any(changes.room_changed(r, ("members",), since) for r in rooms):
            return None
        return rooms

    async def _shared_build(self, req: SyncRequest, since: int, upto: int,
                            rooms: frozenset[str]) -> tuple[dict[str, Any], bool]:
        """A message to a room with 500 listeners wakes 500 quiet users asking the
        same question: it is answered once (without personal fields), and each
        answer is that one with the user's own fields filled in."""
        # The entry holds its filter, so no other filter can take its id meanwhile.
        key = (since, rooms, id(req.filter))

        async def load() -> _SharedAnswer:
            lines: dict[str, RoomTimeline] = {}
            body, news = await self._build_for(req, since, upto, shared_lines=lines)
            return _SharedAnswer(body, news, lines, req.filter)

        shared = await self._shared_answers.get_or_load(upto, key, load)
        return await self._personalise(shared, req), shared.news

    async def _personalise(self, shared: _SharedAnswer, req: SyncRequest) -> dict[str, Any]:
        body = dict(shared.body)
        join: dict[str, Any] = {}
        for room_id, room in shared.body["rooms"]["join"].items():
            room = dict(room)
            line = shared.lines.get(room_id)
            if line is not None:
                events = line.for_device(req.user_id, req.device_id)
                if events is not line.serialized:
                    room["timeline"] = {**room["timeline"], "events": events}
            if "summary" in room:  # heroes are the members other than the user
                room["summary"] = await self._sections.summary(room_id, req.user_id)
            if self.unread is not None:
                room["unread_notifications"] = await self.unread.unread_counts(req.user_id,
                                                                               room_id)
            join[room_id] = room
        body["rooms"] = {**body["rooms"], "join": join}
        if self.keys is not None:
            body["device_one_time_keys_count"] = await self.keys.one_time_key_counts(
                req.user_id, req.device_id)
            body["device_unused_fallback_key_types"] = \
                await self.keys.unused_fallback_key_types(req.user_id, req.device_id)
        return body

    async def _build_for(self, req: SyncRequest, since: int | None, upto: int,
                         shared_lines: dict[str, RoomTimeline] | None = None
                         ) -> tuple[dict[str, Any], bool]:
        """`shared_lines` set: build the answer of every quiet user like this one
        (_shared_build), leaving out what is personal and noting each room's
        timeline there, for `_personalise`."""
        changes = self._notifier.changes
        user = req.user_id
        if since is None:
            rooms, rooms_news = await self._rooms_section(req, None, upto)
        else:
            rooms, rooms_news = await self._rooms_incremental(req, since, upto, changes,
                                                              shared_lines)
        account: list[dict[str, Any]] = []
        if since is None or changes.user_changed(user, ("account_data",), since):
            account = await self._global_account_data(req, since, upto)
        to_device: list[dict[str, Any]] = []
        last_td = 0
        # Messages left over from a capped response are pending whatever changed.
        if since is None or (req.since is not None and req.since.to_device) or \
                changes.user_changed(user, ("to_device",), since):
            to_device, last_td = await self._to_device_section(req, upto)
        presence = await self._presence_section(req, since, upto, changes)
        device_lists: dict[str, list[str]] = {"changed": [], "left": []}
        otk_counts: dict[str, int] = {}
        fallback_types: list[str] = []
        if self.keys is not None and shared_lines is None:
            otk_counts = await self.keys.one_time_key_counts(user, req.device_id)
            fallback_types = await self.keys.unused_fallback_key_types(user, req.device_id)
            if since is not None and await self._device_lists_may_have_changed(user, since,
                                                                               changes):
                changed, left = await self.keys.device_list_changes(user, since, upto)
                device_lists = {"changed": changed, "left": left}
        token = SyncToken(upto, last_td or (req.since.to_device if req.since else 0))
        response = {
            "next_batch": str(token),
            "rooms": rooms,
            "presence": {"events": presence},
            "account_data": {"events": account},
            "to_device": {"events": to_device},
            "device_lists": device_lists,
            "device_one_time_keys_count": otk_counts,
            "device_unused_fallback_key_types": fallback_types,
        }
        news = rooms_news or bool(account or to_device or presence or device_lists["changed"]
                                  or device_lists["left"])
        return response, news

    async def _device_lists_may_have_changed(self, user: str, since: int,
                                             changes: ChangeIndex) -> bool:
        if changes.user_changed(user, ("device_lists", "events"), since):
            return True
        joined = await self.joined_rooms(user)
        return any(changes.room_changed(r, ("members",), since) for r in joined)

    async def _presence_section(self, req: SyncRequest, since: int | None, upto: int,
                                changes: ChangeIndex) -> list[dict[str, Any]]:
        if self.presence is None or req.filter.presence.allows_nothing:
            return []
        user = req.user_id
        if since is None or changes.user_changed(user, ("events",), since):
            # Initial sync, or new room-mates: everything the handler knows.
            events = await self.presence.presence_events(user, since, upto)
        else:
            changed = await self._presence_changed_users(user, since, changes)
            if not changed:
                return []
            events = await self.presence.changed_presence_events(changed, since, upto)
        return [p for p in events if req.filter.presence.allows(p["type"], p["sender"])]

    async def _presence_changed_users(self, user: str, since: int, changes: ChangeIndex
                                      ) -> set[str]:
        """Room-mates (and the user) whose presence changed since, from memory."""
        changed = {user} if changes.user_changed(user, ("presence",), since) else set()
        for room_id in await self.joined_rooms(user):
            if changes.room_changed(room_id, ("presence",), since):
                changed |= self._room_presence_changes(
                    room_id, await self.room_members(room_id), since, changes)
        return changed

    def _room_presence_changes(self, room_id: str, members: frozenset[str], since: int,
                               changes: ChangeIndex) -> frozenset[str]:
        """The members whose presence changed since `since`. Every member woken by
        one change asks the same question: scanning a 500-member room for each of
        its 500 listeners was quadratic, so the answer is kept until the stream moves."""
        current = self._notifier.current
        found = self._presence_memo.get(current, (room_id, since))
        if found is None or found[0] is not members:  # new members: ask again
            found = (members, frozenset(
                m for m in members if changes.user_changed(m, ("presence",), since)))
            self._presence_memo.put(current, (room_id, since), found)
        return found[1]

    async def room_members(self, room_id: str) -> frozenset[str]:
        async def load() -> frozenset[str]:
            return frozenset(await self._rooms.members(room_id, ("join",)))

        return await self._room_members.get_or_load(room_id, load)

    # Rooms ---------------------------------------------------------------------

    async def _rooms_section(self, req: SyncRequest, since: int | None, upto: int
                             ) -> tuple[dict[str, Any], bool]:
        join: dict[str, Any] = {}
        invite: dict[str, Any] = {}
        leave: dict[str, Any] = {}
        knock: dict[str, Any] = {}
        current = await self._rooms.rooms_for_user(
            req.user_id, ("join", "invite", "leave", "ban", "knock"))
        changes = {}
        if since is not None:
            for change in await self._rooms.membership_changes(req.user_id, since, upto):
                changes[change.room_id] = change
        news = False
        for room_id, membership in current.items():
            if not req.filter.allows_room(room_id):
                continue
            change = changes.get(room_id)
            if membership == "join":
                newly = since is None or (change is not None
                                          and await self._joined_since(req.user_id, room_id, since))
                room = await self._sections.joined_room(req, room_id, since, upto, newly)
                if room is not None and (since is None or newly
                                         or self._sections.has_news(room, since)):
                    join[room_id] = room
                    news = True
            elif membership == "invite" and (since is None or change is not None):
                invite[room_id] = await self._sections.invite_room(room_id, req.user_id)
                news = True
            elif membership == "knock" and (since is None or change is not None):
                knock[room_id] = {"knock_state": {"events": []}}
                news = True
            elif membership in ("leave", "ban") and change is not None:
                if await self._rooms.is_forgotten(req.user_id, room_id):
                    continue
                leave[room_id] = await self._sections.left_room(req, room_id, since,
                                                                change.stream_ordering)
                news = True
            elif membership in ("leave", "ban") and since is None and req.filter.include_leave:
                if not await self._rooms.is_forgotten(req.user_id, room_id):
                    at = await self._rooms.membership_at(req.user_id, room_id, upto)
                    if at is not None:
                        leave[room_id] = await self._sections.left_room(
                            req, room_id, None, at.stream_ordering)
        return {"join": join, "invite": invite, "leave": leave, "knock": knock}, news

    async def _rooms_incremental(self, req: SyncRequest, since: int, upto: int,
                                 changes: ChangeIndex,
                                 shared_lines: dict[str, RoomTimeline] | None = None
                                 ) -> tuple[dict[str, Any], bool]:
        """Only rooms with something new; every answer that the change index says
        cannot have changed is skipped without touching the database."""
        user = req.user_id
        if changes.user_changed(user, ("events",), since):
            return await self._rooms_section(req, since, upto)  # memberships moved
        join: dict[str, Any] = {}
        receipts_for_me = changes.user_changed(user, ("receipts",), since)
        account_rooms: set[str] = set()
        if changes.user_changed(user, ("account_data",), since):
            changed = await self._account_data.changed_since(user, since, upto)
            account_rooms = {r for r, _, _ in changed if r}
        for room_id in await self.joined_rooms(user):
            if not req.filter.allows_room(room_id):
                continue
            if not (receipts_for_me or room_id in account_rooms
                    or changes.room_changed(room_id, ("events", "receipts"), since)
                    or self._typing.changed_since(room_id, since)):
                continue
            room = await self._sections.joined_room(req, room_id, since, upto, False,
                                                    steady=True, shared_lines=shared_lines)
            if room is not None and self._sections.has_news(room, since):
                join[room_id] = room
        return {"join": join, "invite": {}, "leave": {}, "knock": {}}, bool(join)

    async def _joined_since(self, user_id: str, room_id: str, since: int) -> bool:
        """Whether the user was not joined at `since` (a profile change is no new join)."""
        before = await self._rooms.membership_at(user_id, room_id, since)
        return before is None or before.membership != "join"

    async def _global_account_data(self, req: SyncRequest, since: int | None, upto: int
                                   ) -> list[dict[str, Any]]:
        changed = await self._account_data.changed_since(req.user_id, since or 0, upto)
        return [{"type": t, "content": c} for r, t, c in changed
                if r == "" and req.filter.account_data.allows(t, req.user_id)]

    async def _to_device_section(self, req: SyncRequest, upto: int
                                 ) -> tuple[list[dict[str, Any]], int]:
        pending = await self._to_device.pending(req.user_id, req.device_id, upto)
        return [m for _, m in pending], (pending[-1][0] if pending else 0)
