"""EDUs our users cause, sent to the servers that need them: typing and public
receipts to the room's other servers; presence and device-list changes to every
server sharing a room with the user; to-device messages to the recipients'
servers. Fed by callbacks on the typing, receipt, presence, to-device and
end-to-end key handlers; remote users' changes are never sent back out.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Iterable
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from federation import edus as formats
from federation.protocol import identifiers

from ..clock import Clock
from ..storage.presence import UserPresence
from ..storage.receipts import Receipt
from ..storage.rooms import RoomStore

logger = logging.getLogger(__name__)


class EduSender(Protocol):
    """`federation.sender.FederationSender`, as far as EDUs go."""

    async def joined_hosts(self, room_id: str) -> frozenset[str]: ...

    async def send_edu(self, destinations: Iterable[str], edu: dict[str, Any]) -> None: ...

    def send_ephemeral_edu(self, destinations: Iterable[str], edu: dict[str, Any],
                           key: tuple[str, ...]) -> None: ...


class DeviceListHistory(Protocol):
    async def previous_device_list_change(self, user_id: str, before: int) -> int | None:
        """The stream position of the user's device-list change before `before`."""


class EduPublisher:
    def __init__(self, server_name: str, sender: EduSender, rooms: RoomStore,
                 device_lists: DeviceListHistory, clock: Clock) -> None:
        self._server_name = server_name
        self._sender = sender
        self._rooms = rooms
        self._device_lists = device_lists
        self._clock = clock

    def _is_mine(self, user_id: str) -> bool:
        return identifiers.server_of(user_id) == self._server_name

    # Handler callbacks (synchronous: the work runs in the background) ----------------

    def typing_changed(self, room_id: str, user_id: str, typing: bool) -> None:
        if self._is_mine(user_id):
            self._spawn(self._send_typing(room_id, user_id, typing))

    def public_receipt(self, receipt: Receipt) -> None:
        if self._is_mine(receipt.user_id):
            self._spawn(self._send_receipt(receipt))

    def presence_changed(self, state: UserPresence) -> None:
        if self._is_mine(state.user_id):
            self._spawn(self._send_presence(state))

    def device_changed(self, user_id: str, device_id: str, position: int,
                       keys: dict[str, Any] | None) -> None:
        if self._is_mine(user_id):
            self._spawn(self._send_device_change(user_id, device_id, position, keys))

    async def send_to_device(self, sender: str, event_type: str, message_id: str,
                             messages: dict[str, dict[str, dict[str, Any]]]) -> None:
        """`ToDeviceHandler.remote_delivery`: one EDU per recipient server, queued
        before the client's request is answered."""
        by_server: dict[str, dict[str, dict[str, Any]]] = {}
        for user_id, by_device in messages.items():
            by_server.setdefault(identifiers.server_of(user_id), {})[user_id] = by_device
        for server, server_messages in sorted(by_server.items()):
            await self._sender.send_edu([server], formats.to_device_edu(
                formats.ToDeviceMessages(sender, event_type, message_id, server_messages)))

    # The work ------------------------------------------------------------------------

    async def _send_typing(self, room_id: str, user_id: str, typing: bool) -> None:
        hosts = await self._sender.joined_hosts(room_id)
        self._sender.send_ephemeral_edu(hosts, formats.typing_edu(room_id, user_id, typing),
                                        (formats.TYPING, room_id, user_id))

    async def _send_receipt(self, receipt: Receipt) -> None:
        hosts = await self._sender.joined_hosts(receipt.room_id)
        await self._sender.send_edu(hosts, formats.receipt_edu(formats.ReceiptUpdate(
            receipt.room_id, receipt.receipt_type, receipt.user_id, receipt.event_id,
            receipt.ts, receipt.thread_id)))

    async def _send_presence(self, state: UserPresence) -> None:
        hosts = await self._servers_sharing_rooms(state.user_id)
        now = self._clock.time_ms()
        ago = max(0, now - state.last_active_ts) if state.last_active_ts else None
        update = formats.PresenceUpdate(state.user_id, state.state, ago, state.status_msg,
                                        state.currently_active)
        self._sender.send_ephemeral_edu(hosts, formats.presence_edu([update]),
                                        (formats.PRESENCE, state.user_id))

    async def _send_device_change(self, user_id: str, device_id: str, position: int,
                                  keys: dict[str, Any] | None) -> None:
        hosts = await self._servers_sharing_rooms(user_id)
        if not hosts:
            return
        previous = await self._device_lists.previous_device_list_change(user_id, position)
        update = formats.DeviceListUpdate(user_id, device_id, position,
                                          [previous] if previous is not None else [],
                                          keys is None)
        await self._sender.send_edu(hosts, formats.device_list_edu(update, keys))

    async def _servers_sharing_rooms(self, user_id: str) -> set[str]:
        users = await self._rooms.shared_room_users(user_id)
        return {identifiers.server_of(u) for u in users} - {self._server_name}

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        Deferred.fromCoroutine(work).addErrback(
            lambda failure: logger.error("queueing an EDU failed: %s", failure.getTraceback()))
