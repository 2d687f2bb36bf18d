"""Send-to-device messaging (spec: send-to-device messaging).

Messages for local devices are queued, each at its own stream position, in the
same transaction that records the client's txnId, so a retried request is never
delivered twice. `"*"` means every device of the user. Messages for remote users
go to `remote_delivery` (federation's `m.direct_to_device` EDUs), once per txnId;
without federation they are dropped.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Awaitable, Callable

from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError

from ..storage.stream import StreamIdGenerator
from ..storage.to_device import ToDeviceStore
from ..storage.users import UserStore
from ..sync.notifier import Notifier
from .room_events import _check_txn_id as check_txn_id
from .room_events import _check_type as check_event_type

logger = logging.getLogger(__name__)

ALL_DEVICES = "*"

# (user, device, content)
Message = tuple[str, str, dict[str, Any]]
# (sender, event type, message ID, {user: {device or "*": content}}) for other servers
RemoteDelivery = Callable[[str, str, str, dict[str, dict[str, dict[str, Any]]]],
                          Awaitable[None]]


def parse_messages(messages: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """`{user_id: {device_id or "*": content}}`, checked; M_BAD_JSON otherwise."""
    if not isinstance(messages, dict):
        raise MatrixError(400, Codes.BAD_JSON, "messages must be an object")
    for user_id, by_device in messages.items():
        if not identifiers.is_valid_user_id(user_id):
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid user ID {user_id!r}")
        if not isinstance(by_device, dict) or not all(
                isinstance(d, str) and d and isinstance(c, dict) for d, c in by_device.items()):
            raise MatrixError(400, Codes.BAD_JSON,
                              "messages must map device IDs to content objects")
    return messages


class ToDeviceHandler:
    def __init__(self, store: ToDeviceStore, users: UserStore, stream: StreamIdGenerator,
                 notifier: Notifier, server_name: str) -> None:
        self._store = store
        self._users = users
        self._stream = stream
        self._notifier = notifier
        self._server_name = server_name
        self.remote_delivery: RemoteDelivery | None = None

    async def send(self, sender: str, sender_device: str, event_type: str, txn_id: str,
                   messages: Any) -> None:
        """PUT /sendToDevice/{eventType}/{txnId}."""
        check_event_type(event_type)
        check_txn_id(txn_id)
        parsed = parse_messages(messages)
        local = await self._local_messages(parsed)
        txn = (sender, sender_device, f"sendToDevice/{event_type}/{txn_id}")
        with self._stream.reserve(len(local)) as positions:
            queued = await self._store.enqueue(
                sender, event_type,
                [(user, device, content, position)
                 for (user, device, content), position in zip(local, positions)], txn)
        if not queued:
            logger.info("sendToDevice %s from %s/%s: retransmission, not re-sent",
                        txn_id, sender, sender_device)
            return
        if positions:
            self._notifier.notify(max(positions), users={user for user, _, _ in local},
                                  kind="to_device")
        remote = {user: by_device for user, by_device in parsed.items()
                  if identifiers.server_of(user) != self._server_name}
        if remote and self.remote_delivery is not None:
            await self.remote_delivery(sender, event_type, secrets.token_urlsafe(16), remote)

    async def deliver_remote(self, origin: str, sender: str, event_type: str,
                             message_id: str, messages: dict[str, dict[str, dict[str, Any]]]
                             ) -> None:
        """Messages another server sent (`m.direct_to_device`) for our users' devices,
        delivered once per (origin, message_id)."""
        local = await self._local_messages(
            {u: d for u, d in messages.items() if identifiers.server_of(u) == self._server_name})
        txn = (sender, "", f"m.direct_to_device/{origin}/{message_id}")
        with self._stream.reserve(len(local)) as positions:
            queued = await self._store.enqueue(
                sender, event_type,
                [(user, device, content, position)
                 for (user, device, content), position in zip(local, positions)], txn)
        if queued and positions:
            self._notifier.notify(max(positions), users={user for user, _, _ in local},
                                  kind="to_device")

    async def _local_messages(self, messages: dict[str, dict[str, dict[str, Any]]]
                              ) -> list[Message]:
        """One message per existing local device addressed (`*` expanded)."""
        out: list[Message] = []
        for user_id, by_device in messages.items():
            if identifiers.server_of(user_id) != self._server_name:
                logger.debug("dropping to-device messages for remote user %s", user_id)
                continue
            devices = sorted(d.device_id for d in await self._users.get_devices(user_id))
            for device_id, content in by_device.items():
                targets = devices if device_id == ALL_DEVICES else (
                    [device_id] if device_id in devices else [])
                out += [(user_id, target, content) for target in targets]
        return out
