"""Receipts and read markers (spec: receipts, fully read markers).

`m.read` receipts are shown to the room, `m.read.private` ones only to their
owner; `m.fully_read` is no receipt but the room account data `{"event_id"}`,
which only moves forward. Every target must be an event of the room that the
user may see.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import DeferredLock

from federation.protocol.errors import Codes, MatrixError

from ..clock import Clock
from ..rooms.threads import MAIN, thread_of
from ..storage.events import EventStore, StoredEvent
from ..storage.receipts import Receipt, ReceiptStore
from ..storage.stream import StreamIdGenerator
from ..sync.notifier import Notifier
from .account_data import FULLY_READ, AccountDataHandler
from .room_reads import RoomReadHandler

READ = "m.read"
READ_PRIVATE = "m.read.private"
RECEIPT_TYPES = (READ, READ_PRIVATE, FULLY_READ)


class ReceiptHandler:
    def __init__(self, receipts: ReceiptStore, account_data: AccountDataHandler,
                 reads: RoomReadHandler, events: EventStore, stream: StreamIdGenerator,
                 notifier: Notifier, clock: Clock,
                 user_active: Callable[[str], None] | None = None) -> None:
        self._receipts = receipts
        # Called with (user_id, room_id, thread_id, the stream position of the
        # event read) after a local user's read receipt is stored.
        self.on_receipt: list[Callable[[str, str, str, int], None]] = []
        # Called with each public (m.read) receipt of a local user, once stored.
        self.on_public_receipt: list[Callable[[Receipt], None]] = []
        self._account_data = account_data
        self._reads = reads
        self._events = events
        self._stream = stream
        self._notifier = notifier
        self._clock = clock
        self._user_active = user_active
        # A read marker is read-compare-write: one change at a time.
        self._marker_lock = DeferredLock()

    async def send_receipt(self, user_id: str, room_id: str, receipt_type: str, event_id: str,
                           thread_id: str | None) -> None:
        """POST /receipt/{receiptType}/{eventId}; thread_id None = unthreaded."""
        if receipt_type not in RECEIPT_TYPES:
            raise MatrixError(400, Codes.INVALID_PARAM,
                              f"Receipt type must be one of {', '.join(RECEIPT_TYPES)}")
        if thread_id is not None:
            if not thread_id:
                raise MatrixError(400, Codes.INVALID_PARAM, "thread_id must be non-empty")
            if receipt_type == FULLY_READ:
                raise MatrixError(400, Codes.INVALID_PARAM,
                                  f"thread_id is not compatible with {FULLY_READ}")
        stored = await self._reads.visible_event(user_id, room_id, event_id)
        if thread_id is not None and not await self._in_thread(stored, thread_id):
            raise MatrixError(400, Codes.INVALID_PARAM,
                              f"{event_id} is not related to thread {thread_id}")
        if receipt_type == FULLY_READ:
            await self._move_read_marker(user_id, room_id, stored)
        else:
            await self._put_receipt(user_id, room_id, receipt_type, stored, thread_id or "")
        self._active(user_id)

    async def set_read_markers(self, user_id: str, room_id: str, markers: dict[str, str]
                               ) -> None:
        """POST /read_markers: `m.fully_read`, `m.read`, `m.read.private` (each optional).
        Every target is checked before anything is written."""
        targets = {kind: await self._reads.visible_event(user_id, room_id, event_id)
                   for kind, event_id in markers.items() if kind in RECEIPT_TYPES}
        for kind, stored in targets.items():
            if kind == FULLY_READ:
                await self._move_read_marker(user_id, room_id, stored)
            else:
                await self._put_receipt(user_id, room_id, kind, stored, "")
        if targets:
            self._active(user_id)

    async def _in_thread(self, stored: StoredEvent, thread_id: str) -> bool:
        """Spec: a receipt's event must belong to its thread (a root belongs to
        both the main timeline and its own thread)."""
        thread = await thread_of(self._events, stored.event)
        return thread == thread_id or (thread == MAIN and stored.event.event_id == thread_id)

    async def _put_receipt(self, user_id: str, room_id: str, receipt_type: str,
                           stored: StoredEvent, thread_id: str) -> None:
        with self._stream.reserve() as (position,):
            receipt = Receipt(room_id, receipt_type, user_id, thread_id, stored.event.event_id,
                              self._clock.time_ms(), position)
            await self._receipts.put(receipt)
        for callback in self.on_receipt:
            callback(user_id, room_id, thread_id, stored.stream_ordering)
        if receipt_type == READ:
            for public in self.on_public_receipt:
                public(receipt)
        if receipt_type == READ_PRIVATE:
            self._notifier.notify(position, users=[user_id], kind="receipts")  # only its owner
        else:
            self._notifier.notify(position, rooms=[room_id], kind="receipts")

    async def store_remote_receipt(self, room_id: str, user_id: str, event_id: str,
                                   thread_id: str, ts: int) -> None:
        """A public receipt another server sent (`m.receipt` EDU), shown to the room."""
        with self._stream.reserve() as (position,):
            await self._receipts.put(Receipt(room_id, READ, user_id, thread_id, event_id, ts,
                                             position))
        self._notifier.notify(position, rooms=[room_id], kind="receipts")

    async def _move_read_marker(self, user_id: str, room_id: str, stored: StoredEvent) -> None:
        """The fully-read marker moves forward only (as Synapse's does)."""
        async with self._marker_lock:
            if await self._marker_ahead_of(user_id, room_id, stored):
                return
            await self._account_data.store_account_data(
                user_id, room_id, FULLY_READ, {"event_id": stored.event.event_id})

    async def _marker_ahead_of(self, user_id: str, room_id: str, stored: StoredEvent) -> bool:
        current = await self._account_data.read_account_data(user_id, room_id, FULLY_READ)
        current_id = current.get("event_id") if current else None
        marked = await self._events.get_event(current_id) if isinstance(current_id, str) else None
        if marked is None or marked.event.room_id != room_id:
            return False
        return (marked.event.depth, marked.stream_ordering) >= \
            (stored.event.depth, stored.stream_ordering)

    def _active(self, user_id: str) -> None:
        if self._user_active is not None:
            self._user_active(user_id)
