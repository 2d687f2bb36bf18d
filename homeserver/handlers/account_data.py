"""Client config: global and per-room account data (spec: client config).

Each write takes a new stream position and wakes the owner's /sync.
"""

from __future__ import annotations

from typing import Any

from federation.protocol.errors import Codes, MatrixError

from ..storage.account_data import AccountDataStore
from ..storage.stream import StreamIdGenerator
from ..sync.notifier import Notifier
from .room_events import _check_type as check_type

FULLY_READ = "m.fully_read"
PUSH_RULES = "m.push_rules"
# Account data the server maintains itself (spec: 405 "controlled by the server").
SERVER_MANAGED = (FULLY_READ, PUSH_RULES)


def _check_access(requester_id: str, user_id: str) -> None:
    if requester_id != user_id:
        raise MatrixError(403, Codes.FORBIDDEN, "Cannot access account data of other users")


class AccountDataHandler:
    def __init__(self, store: AccountDataStore, stream: StreamIdGenerator,
                 notifier: Notifier) -> None:
        self._store = store
        self._stream = stream
        self._notifier = notifier

    async def set_account_data(self, requester_id: str, user_id: str, room_id: str,
                               data_type: str, content: dict[str, Any]) -> None:
        """A client's PUT; room_id "" for global account data."""
        _check_access(requester_id, user_id)
        check_type(data_type)
        if data_type in SERVER_MANAGED:
            hint = " Use /rooms/{roomId}/read_markers." if data_type == FULLY_READ else ""
            raise MatrixError(405, Codes.BAD_JSON,
                              f"Cannot set {data_type} through this API.{hint}")
        await self.store_account_data(user_id, room_id, data_type, content)

    async def get_account_data(self, requester_id: str, user_id: str, room_id: str,
                               data_type: str) -> dict[str, Any]:
        _check_access(requester_id, user_id)
        check_type(data_type)
        content = await self.read_account_data(user_id, room_id, data_type)
        if content is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Account data not found")
        return content

    async def read_account_data(self, user_id: str, room_id: str, data_type: str
                                ) -> dict[str, Any] | None:
        """Read without the client checks."""
        return await self._store.get(user_id, room_id, data_type)

    async def store_account_data(self, user_id: str, room_id: str, data_type: str,
                                 content: dict[str, Any]) -> None:
        """Write without the client checks (read markers use this)."""
        with self._stream.reserve() as (position,):
            await self._store.put(user_id, room_id, data_type, content, position)
        self._notifier.notify(position, users=[user_id], kind="account_data")
