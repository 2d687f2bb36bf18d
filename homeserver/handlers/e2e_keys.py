"""End-to-end encryption, server side (spec: client-server API, "End-to-End
Encryption"): storing and relaying device keys, one-time and fallback keys,
and tracking device-list changes on the global stream.

Only local users are served; keys of remote users need federation, so their
servers are reported under `failures`.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from twisted.internet.defer import Deferred, gatherResults

from federation.protocol import identifiers
from federation.protocol.errors import Codes, MatrixError

from ..cache import InvalidatingCache
from ..storage.device_lists import DeviceListStore
from ..storage.e2e_keys import EndToEndKeyStore, OneTimeKeyExists
from ..storage.rooms import RoomStore
from ..storage.stream import StreamIdGenerator
from ..sync.notifier import Notifier
from .auth import Requester

logger = logging.getLogger(__name__)

# Synapse always reports this count, even at zero; clients read it to top up.
ALWAYS_COUNTED = "signed_curve25519"
_FEDERATION_FAILURE = {"status": 503, "message": "Federation is not available"}


def _bad_json(message: str) -> MatrixError:
    return MatrixError(400, Codes.BAD_JSON, message)


def _is_signatures(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, dict) and all(isinstance(s, str) for s in v.values())
        for v in value.values())


def _check_device_keys(keys: Any, who: Requester) -> dict[str, Any]:
    """Spec: `DeviceKeys` (user_id, device_id, algorithms, keys, signatures)."""
    if not isinstance(keys, dict):
        raise _bad_json("device_keys must be an object")
    if not isinstance(keys.get("algorithms"), list) or \
            not all(isinstance(a, str) for a in keys["algorithms"]):
        raise _bad_json("device_keys.algorithms must be a list of strings")
    if not isinstance(keys.get("keys"), dict) or \
            not all(isinstance(k, str) for k in keys["keys"].values()):
        raise _bad_json("device_keys.keys must map key IDs to strings")
    if not _is_signatures(keys.get("signatures")):
        raise _bad_json("device_keys.signatures is invalid")
    if keys.get("user_id") != who.user_id:
        raise _bad_json("Provided `user_id` in `device_keys` does not match that of the "
                        "authenticated user")
    if keys.get("device_id") != who.device_id:
        raise _bad_json("Provided `device_id` in `device_keys` does not match that of the "
                        "authenticated user device")
    return keys


def _check_key_map(name: str, keys: Any) -> dict[str, Any]:
    """`<algorithm>:<key_id>` -> an unpadded-base64 string or a signed key object."""
    if keys is None:
        return {}
    if not isinstance(keys, dict):
        raise _bad_json(f"{name} must be an object")
    for key_id, value in keys.items():
        if len(key_id.split(":")) != 2:
            raise _bad_json(f"Invalid {name} key {key_id!r}. Expected \"<algorithm>:<key_id>\".")
        if isinstance(value, str):
            continue
        if not isinstance(value, dict) or not isinstance(value.get("key"), str) or \
                not _is_signatures(value.get("signatures")):
            raise _bad_json(f"Invalid {name} entry {key_id!r}")
    return keys


def _user_map(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if not isinstance(value, dict):
        raise MatrixError(400, Codes.BAD_JSON if name in body else Codes.MISSING_PARAM,
                          f"{name} must be an object")
    for user_id in value:
        if not identifiers.is_valid_user_id(user_id):
            raise MatrixError(400, Codes.INVALID_PARAM, f"Invalid user ID {user_id!r}")
    return value


class E2eKeysHandler:
    """Key upload/query/claim, device-list tracking; the /sync `DeviceKeysSource`."""

    def __init__(self, keys: EndToEndKeyStore, device_lists: DeviceListStore,
                 rooms: RoomStore, stream: StreamIdGenerator, notifier: Notifier,
                 server_name: str) -> None:
        self._keys = keys
        self._device_lists = device_lists
        self._rooms = rooms
        self._stream = stream
        self._notifier = notifier
        self._server_name = server_name
        # (user, device) -> (one-time key counts, unused fallback key types): /sync
        # asks on every response, the answer changes only on upload, claim, removal.
        self._key_state: InvalidatingCache[tuple[dict[str, int], list[str]]] = \
            InvalidatingCache()
        # Called with (user_id, device_id, stream position, device keys or None when
        # the device was deleted) after a local device's keys change; federation
        # sends these as `m.device_list_update`.
        self.on_device_change: list[Callable[[str, str, int, dict[str, Any] | None], None]] \
            = []
        # Asks other servers for their users' keys (federation.remote_queries.
        # RemoteQueries); set by the composition root when federation is on.
        self.remote: Any = None

    def _is_mine(self, user_id: str) -> bool:
        return identifiers.server_of(user_id) == self._server_name

    # /keys/upload -------------------------------------------------------------------

    async def upload(self, who: Requester, body: dict[str, Any]) -> dict[str, Any]:
        if "device_keys" in body:
            device_keys = _check_device_keys(body["device_keys"], who)
        else:
            device_keys = None
        one_time = _check_key_map("one_time_keys", body.get("one_time_keys"))
        fallback = _check_key_map("fallback_keys", body.get("fallback_keys"))
        try:
            await self._keys.add_one_time_keys(who.user_id, who.device_id, one_time)
        except OneTimeKeyExists as exc:
            raise MatrixError(400, Codes.UNKNOWN,
                              f"One time key {exc.key_id} already exists") from exc
        await self._keys.set_fallback_keys(who.user_id, who.device_id, fallback)
        self._key_state.invalidate((who.user_id, who.device_id))
        if device_keys is not None and \
                await self._keys.set_device_keys(who.user_id, who.device_id, device_keys):
            logger.info("new device keys for %s %s", who.user_id, who.device_id)
            position = await self.device_list_changed(who.user_id)
            self._device_changed(who.user_id, who.device_id, position, device_keys)
        return {"one_time_key_counts": await self.one_time_key_counts(who.user_id,
                                                                      who.device_id)}

    # /keys/query and /keys/claim -------------------------------------------------

    async def query(self, body: dict[str, Any]) -> dict[str, Any]:
        wanted = _user_map(body, "device_keys")
        result: dict[str, Any] = {}
        failures: dict[str, Any] = {}
        remote: dict[str, dict[str, Any]] = {}
        for user_id, device_ids in wanted.items():
            if not isinstance(device_ids, list) or not all(isinstance(d, str)
                                                           for d in device_ids):
                raise _bad_json("device_keys values must be lists of device IDs")
            if not self._is_mine(user_id):
                remote.setdefault(identifiers.server_of(user_id), {})[user_id] = device_ids
                continue
            result[user_id] = {}
            for device in await self._keys.query_devices(user_id, device_ids):
                keys = dict(device.keys)
                if device.display_name is not None:
                    keys["unsigned"] = {"device_display_name": device.display_name}
                result[user_id][device.device_id] = keys
        await self._ask_servers(remote, "device_keys", result, failures)
        return {"device_keys": result, "failures": failures}

    async def claim(self, body: dict[str, Any]) -> dict[str, Any]:
        wanted = _user_map(body, "one_time_keys")
        result: dict[str, Any] = {}
        failures: dict[str, Any] = {}
        remote: dict[str, dict[str, Any]] = {}
        for user_id, devices in wanted.items():
            if not isinstance(devices, dict) or not all(isinstance(a, str)
                                                        for a in devices.values()):
                raise _bad_json("one_time_keys values must map device IDs to algorithms")
            if not self._is_mine(user_id):
                remote.setdefault(identifiers.server_of(user_id), {})[user_id] = devices
                continue
            for device_id, algorithm in devices.items():
                claimed = await self._keys.claim(user_id, device_id, algorithm)
                self._key_state.invalidate((user_id, device_id))
                if claimed is not None:
                    key_id, key = claimed
                    result.setdefault(user_id, {})[device_id] = {key_id: key}
        await self._ask_servers(remote, "claim_keys", result, failures)
        return {"one_time_keys": result, "failures": failures}

    async def _ask_servers(self, wanted: dict[str, dict[str, Any]], method: str,
                           result: dict[str, Any], failures: dict[str, Any]) -> None:
        """Ask each server (concurrently) about its users, through `self.remote`'s
        `method`; a server that cannot answer is reported under `failures`."""
        if wanted and self.remote is None:
            failures.update({server: _FEDERATION_FAILURE for server in wanted})
            return

        async def ask(server: str, part: dict[str, Any]) -> None:
            query: Callable[..., Awaitable[dict[str, Any]]] = getattr(self.remote, method)
            try:
                result.update(await query(server, part))
            except MatrixError as exc:
                failures[server] = {"status": exc.status, "message": exc.message}

        await gatherResults([Deferred.fromCoroutine(ask(s, p)) for s, p in wanted.items()])

    # Device lists -------------------------------------------------------------------

    def _device_changed(self, user_id: str, device_id: str, position: int,
                        keys: dict[str, Any] | None) -> None:
        for callback in self.on_device_change:
            callback(user_id, device_id, position, keys)

    async def device_list_changed(self, user_id: str) -> int:
        """Record a change on the stream and wake everyone who shares a room;
        returns its stream position."""
        watchers = await self._rooms.shared_room_users(user_id) | {user_id}
        position = self._stream.allocate()
        try:
            await self._device_lists.record_change(user_id, position)
            # Marked before the position is finished: no sync may read past it unaware.
            self._notifier.changes.mark("device_lists", position, frozenset(),
                                        frozenset(watchers))
        finally:
            self._stream.finish(position)
        self._notifier.notify(position, users=watchers, kind="device_lists")
        return position

    async def device_removed(self, user_id: str, device_id: str | None) -> None:
        """A device (every device when None) was deleted: its keys go with it."""
        removed = await self._keys.delete_device_keys(user_id, device_id)
        self._key_state.invalidate_where(
            lambda key: isinstance(key, tuple) and key[0] == user_id
            and (device_id is None or key[1] == device_id))
        if removed:
            position = await self.device_list_changed(user_id)
            if device_id is not None:  # (all devices at once: remote servers resync later)
                self._device_changed(user_id, device_id, position, None)

    async def changes(self, user_id: str, since: int, upto: int) -> dict[str, Any]:
        changed, left = await self.device_list_changes(user_id, since, upto)
        return {"changed": changed, "left": left}

    # handlers.sync.DeviceKeysSource -----------------------------------------------------

    async def _device_key_state(self, user_id: str, device_id: str
                                ) -> tuple[dict[str, int], list[str]]:
        async def load() -> tuple[dict[str, int], list[str]]:
            counts = await self._keys.one_time_key_counts(user_id, device_id)
            counts.setdefault(ALWAYS_COUNTED, 0)
            return counts, await self._keys.unused_fallback_algorithms(user_id, device_id)

        return await self._key_state.get_or_load((user_id, device_id), load)

    async def one_time_key_counts(self, user_id: str, device_id: str) -> dict[str, int]:
        return dict((await self._device_key_state(user_id, device_id))[0])

    async def unused_fallback_key_types(self, user_id: str, device_id: str) -> list[str]:
        return list((await self._device_key_state(user_id, device_id))[1])

    async def device_list_changes(self, user_id: str, since: int, upto: int
                                  ) -> tuple[list[str], list[str]]:
        if upto <= since:
            return [], []
        delta = await self._device_lists.changes(user_id, since, upto)
        return sorted(delta.changed), sorted(delta.left)
