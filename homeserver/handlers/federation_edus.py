"""EDUs received over federation (the `edus` of `PUT /send/{txnId}`): checked,
then applied to the same handlers our own users' requests go through.

Every user an EDU names must belong to the server that sent it; typing needs
the user joined to the room, and typing and receipts need the room's
`m.room.server_acl` to allow the origin. Unknown EDU types are ignored, and a
malformed or refused EDU is logged and skipped: nothing raises out of
`handle_edus`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from federation import edus as formats
from federation.acl import SERVER_ACL, server_allowed

from ..clock import Clock
from ..rooms.writer import RoomWriter
from ..storage.events import EventStore
from ..storage.presence import UserPresence
from ..storage.rooms import RoomStore
from .e2e_keys import E2eKeysHandler
from .presence import PresenceHandler
from .receipts import ReceiptHandler
from .to_device import ToDeviceHandler
from .typing import TypingHandler

logger = logging.getLogger(__name__)

# Remote typing ends this long after the last EDU saying it started (the EDU
# carries no timeout; servers re-send while their user keeps typing).
REMOTE_TYPING_TIMEOUT_MS = 30_000


class FederationEduHandler:
    def __init__(self, rooms: RoomStore, writer: RoomWriter,
                 events: EventStore, clock: Clock, typing: TypingHandler,
                 receipts: ReceiptHandler, presence: PresenceHandler,
                 to_device: ToDeviceHandler, e2e_keys: E2eKeysHandler) -> None:
        self._rooms = rooms
        self._writer = writer
        self._events = events
        self._clock = clock
        self._typing = typing
        self._receipts = receipts
        self._presence = presence
        self._to_device = to_device
        self._e2e_keys = e2e_keys
        self._apply: dict[str, Callable[[str, Any], Awaitable[None]]] = {
            formats.TYPING: self._typing_edu, formats.RECEIPT: self._receipt_edu,
            formats.PRESENCE: self._presence_edu, formats.DIRECT_TO_DEVICE: self._to_device_edu,
            formats.DEVICE_LIST_UPDATE: self._device_list_edu,
        }

    async def handle_edus(self, origin: str, edus: Any) -> None:
        """Apply each EDU of a transaction from `origin`, in order."""
        if not isinstance(edus, list):
            return
        for edu in edus:
            edu_type = edu.get("edu_type") if isinstance(edu, dict) else None
            apply = self._apply.get(edu_type) if isinstance(edu_type, str) else None
            if apply is None:
                continue  # spec: unknown EDU types are ignored
            try:
                await apply(origin, edu.get("content"))
            except formats.MalformedEdu as exc:
                logger.info("ignoring %s EDU from %s: %s", edu_type, origin, exc)
            except Exception:
                logger.exception("failed to apply %s EDU from %s", edu_type, origin)

    async def _typing_edu(self, origin: str, content: Any) -> None:
        update = formats.parse_typing(origin, content)
        if not await self._acl_allows(update.room_id, origin):
            raise formats.MalformedEdu(f"the ACL of {update.room_id} denies {origin}")
        if await self._rooms.membership(update.room_id, update.user_id) != "join":
            raise formats.MalformedEdu(f"{update.user_id} is not in {update.room_id}")
        self._typing.set_typing(update.room_id, update.user_id, update.typing,
                                REMOTE_TYPING_TIMEOUT_MS)

    async def _receipt_edu(self, origin: str, content: Any) -> None:
        for receipt in formats.parse_receipts(origin, content):
            if not await self._acl_allows(receipt.room_id, origin):
                logger.info("ignoring receipt in %s: its ACL denies %s", receipt.room_id, origin)
            elif await self._rooms.membership(receipt.room_id, receipt.user_id) != "join":
                logger.info("ignoring receipt of %s: not in %s", receipt.user_id, receipt.room_id)
            else:
                await self._receipts.store_remote_receipt(
                    receipt.room_id, receipt.user_id, receipt.event_id, receipt.thread_id,
                    receipt.ts or self._clock.time_ms())

    async def _presence_edu(self, origin: str, content: Any) -> None:
        now = self._clock.time_ms()
        for update in formats.parse_presence(origin, content):
            if not await self._rooms.rooms_for_user(update.user_id, ("join",)):
                continue  # nobody here shares a room with them
            ago = update.last_active_ago
            await self._presence.set_remote_presence(UserPresence(
                update.user_id, update.presence, update.status_msg,
                now - ago if ago is not None else 0,
                update.currently_active and update.presence == "online"))

    async def _to_device_edu(self, origin: str, content: Any) -> None:
        messages = formats.parse_to_device(origin, content)
        await self._to_device.deliver_remote(origin, messages.sender, messages.event_type,
                                             messages.message_id, messages.messages)

    async def _device_list_edu(self, origin: str, content: Any) -> None:
        update = formats.parse_device_list_update(origin, content)
        if not await self._rooms.rooms_for_user(update.user_id, ("join",)):
            return  # not tracked here: nobody shares a room with them
        await self._e2e_keys.device_list_changed(update.user_id)

    async def _acl_allows(self, room_id: str, origin: str) -> bool:
        snapshot = await self._writer.snapshot(room_id)
        if snapshot is None:
            return False  # a room we are not in
        acl_id = snapshot.state.get((SERVER_ACL, ""))
        if acl_id is None:
            return True
        stored = await self._events.get_event(acl_id)
        return server_allowed(stored.event.content if stored else None, origin)
