"""The key ring: other servers' signing keys, fetched, checked, cached, stored.

A key is looked up in memory, then in the store, then fetched from the server
itself (`GET /_matrix/key/v2/server`), then through the configured notaries
(`POST /_matrix/key/v2/query`). Every document must be self-signed by the
server it names (and, from a notary, signed by the notary). A key verifies
something signed at `ts` only while it is valid then (`ServerKeyRecord.usable_at`).
Our own keys are answered locally. Concurrent fetches for one server share
one fetch.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from federation.protocol import identifiers
from federation.protocol.errors import SignatureError
from federation.protocol.room_versions import RoomVersion
from federation.protocol.signing import (
    VerifyKey,
    servers_that_must_sign,
    verify_event_signatures,
    verify_json,
    verify_key_from_base64,
)

from .key_responses import OwnKeys, ServerKeyRecord, load_key_json, parse_key_document

logger = logging.getLogger(__name__)

KEY_FETCH_TIMEOUT_S = 30.0
# A key that could not be found is not looked for again this soon (a forger
# naming random key ids must not make us fetch on every request).
REFETCH_AFTER_MISS_S = 10.0
CACHE_SERVERS = 5_000


class KeyStore(Protocol):
    """Persistent storage of fetched keys (the homeserver's `server_keys` table)."""

    async def get_server_keys(self, server_name: str) -> list[ServerKeyRecord]: ...

    async def store_server_keys(self, records: Sequence[ServerKeyRecord]) -> None: ...


class KeyFetchClient(Protocol):
    """The federation client, as far as fetching keys needs it."""

    async def get_json(self, destination: str, path: str, query: Any = None, *,
                       timeout_s: float = 60.0, ignore_backoff: bool = False) -> Any: ...

    async def post_json(self, destination: str, path: str, body: Any, query: Any = None, *,
                        timeout_s: float = 60.0) -> Any: ...


@dataclass(frozen=True)
class Notary:
    """A trusted key server; `verify_keys` pins its keys (key id -> base64)."""

    server_name: str
    verify_keys: Mapping[str, str] = field(default_factory=dict)


class KeyRing:
    def __init__(self, reactor: Any, store: KeyStore, client: KeyFetchClient, own: OwnKeys,
                 notaries: Sequence[Notary] = ()) -> None:
        self._reactor = reactor
        self._store = store
        self._client = client
        self.own = own
        self._notaries = list(notaries)
        self._cache: OrderedDict[str, dict[str, ServerKeyRecord]] = OrderedDict()
        self._inflight: dict[str, list[Deferred[None]]] = {}
        self._misses: OrderedDict[tuple[str, str], float] = OrderedDict()

    def now_ms(self) -> int:
        return int(self._reactor.seconds() * 1000)

    # Verifying ------------------------------------------------------------

    async def verify_key(self, server_name: str, key_id: str, valid_at_ts: int) -> VerifyKey:
        """`server_name`'s key `key_id`, valid at `valid_at_ts`; SignatureError if unobtainable."""
        if server_name == self.own.server_name:
            own = self.own.verify_key(key_id, valid_at_ts)
            if own is None:
                raise SignatureError(f"we have no key {key_id} valid at {valid_at_ts}")
            return own
        record = await self._usable_key(server_name, key_id, valid_at_ts)
        if record is None and self._may_fetch(server_name, key_id):
            await self._fetch_once(server_name)
            record = await self._usable_key(server_name, key_id, valid_at_ts)
            if record is None:
                self._note_miss((server_name, key_id))
        if record is None:
            raise SignatureError(f"no key {key_id} of {server_name} valid at {valid_at_ts}")
        return record.decoded()

    async def verify_event(self, pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
        """SignatureError unless every server that must sign `pdu` did, with a
        key valid at its `origin_server_ts`."""
        ts = pdu.get("origin_server_ts")
        signatures = pdu.get("signatures")
        if not isinstance(ts, int) or not isinstance(signatures, dict):
            raise SignatureError("event lacks origin_server_ts or signatures")
        try:
            servers = servers_that_must_sign(pdu, room_version)
        except (KeyError, TypeError, ValueError) as exc:
            raise SignatureError(f"cannot tell who must sign the event: {exc}") from exc
        keys: dict[str, dict[str, VerifyKey]] = {}
        for server in servers:
            server_sigs = signatures.get(server)
            for key_id in server_sigs if isinstance(server_sigs, dict) else ():
                if not isinstance(key_id, str) or not key_id.startswith("ed25519:"):
                    continue  # an algorithm we do not know: ignored, as the spec says
                try:
                    keys.setdefault(server, {})[key_id] = await self.verify_key(
                        server, key_id, ts)
                except SignatureError as exc:
                    logger.info("event %s: %s", pdu.get("event_id", "?"), exc.message)
        try:
            verify_event_signatures(pdu, room_version, keys)
        except (KeyError, TypeError, ValueError) as exc:  # malformed signatures
            raise SignatureError(f"unverifiable signatures: {exc}") from exc

    # Serving as a notary --------------------------------------------------

    async def notary_documents(self, server_name: str, minimum_valid_until_ts: int
                               ) -> list[dict[str, Any]]:
        """`server_name`'s key documents as we know them (refreshed when none is
        valid until `minimum_valid_until_ts`), each with our signature added."""
        if server_name == self.own.server_name:
            return [self.own.document(self.now_ms())]
        records = await self._records(server_name)
        # Anyone may ask: misses are rate-limited like those of verify_key.
        if (not _valid_until(records, minimum_valid_until_ts)
                and self._may_fetch(server_name, "")):
            await self._fetch_once(server_name)
            records = await self._records(server_name)
            if not _valid_until(records, minimum_valid_until_ts):
                self._note_miss((server_name, ""))
        unique = {r.key_json: r for r in records.values()}
        return [self.own.sign(load_key_json(r)) for r in unique.values()]

    # Cache, store and fetching -------------------------------------------

    async def _usable_key(self, server_name: str, key_id: str, ts: int
                          ) -> ServerKeyRecord | None:
        record = (await self._records(server_name)).get(key_id)
        return record if record is not None and record.usable_at(ts) else None

    async def _records(self, server_name: str) -> dict[str, ServerKeyRecord]:
        cached = self._cache.get(server_name)
        if cached is None:
            cached = {r.key_id: r for r in await self._store.get_server_keys(server_name)}
            self._cache_put(server_name, cached)
        else:
            self._cache.move_to_end(server_name)
        return cached

    def _cache_put(self, server_name: str, records: dict[str, ServerKeyRecord]) -> None:
        self._cache[server_name] = records
        self._cache.move_to_end(server_name)
        while len(self._cache) > CACHE_SERVERS:
            self._cache.popitem(last=False)

    def _may_fetch(self, server_name: str, key_id: str) -> bool:
        last_miss = self._misses.get((server_name, key_id))
        return last_miss is None or self._reactor.seconds() - last_miss >= REFETCH_AFTER_MISS_S

    def _note_miss(self, miss: tuple[str, str]) -> None:
        self._misses[miss] = self._reactor.seconds()
        self._misses.move_to_end(miss)
        while len(self._misses) > CACHE_SERVERS:
            self._misses.popitem(last=False)

    async def _fetch_once(self, server_name: str) -> None:
        """Fetch `server_name`'s keys, sharing a fetch already under way."""
        waiters = self._inflight.get(server_name)
        if waiters is not None:
            waiter: Deferred[None] = Deferred()
            waiters.append(waiter)
            await waiter
            return
        self._inflight[server_name] = []
        try:
            await self._fetch(server_name)
        finally:
            for waiter in self._inflight.pop(server_name):
                waiter.callback(None)

    async def _fetch(self, server_name: str) -> None:
        if not identifiers.is_valid_server_name(server_name):
            return
        try:
            # Past any backoff: a server whose request we are checking is up
            # (misses are rate-limited above instead).
            document = await self._client.get_json(server_name, "/_matrix/key/v2/server",
                                                   timeout_s=KEY_FETCH_TIMEOUT_S,
                                                   ignore_backoff=True)
            await self._remember(parse_key_document(document, server_name, self.now_ms()))
            return
        except Exception as exc:  # unreachable or bad document: try the notaries
            logger.info("fetching the keys of %s directly failed: %s", server_name, exc)
        for notary in self._notaries:
            if notary.server_name == server_name:
                continue
            try:
                await self._fetch_through(notary, server_name)
                return
            except Exception as exc:
                logger.info("notary %s had no keys of %s: %s", notary.server_name,
                            server_name, exc)

    async def _fetch_through(self, notary: Notary, server_name: str) -> None:
        answer = await self._client.post_json(
            notary.server_name, "/_matrix/key/v2/query",
            {"server_keys": {server_name: {}}}, timeout_s=KEY_FETCH_TIMEOUT_S)
        documents = answer.get("server_keys") if isinstance(answer, dict) else None
        if not isinstance(documents, list):
            raise SignatureError("malformed notary answer")
        records: list[ServerKeyRecord] = []
        for document in documents:
            if isinstance(document, dict) and document.get("server_name") == server_name:
                await self._check_notary_signature(notary, document)
                records += parse_key_document(document, server_name, self.now_ms())
        if not records:
            raise SignatureError("notary answered no keys")
        await self._remember(records)

    async def _check_notary_signature(self, notary: Notary, document: dict[str, Any]) -> None:
        signatures = document.get("signatures")
        by_notary = signatures.get(notary.server_name) if isinstance(signatures, dict) else None
        for key_id in by_notary if isinstance(by_notary, dict) else ():
            key = await self._notary_key(notary, key_id)
            if key is not None:
                verify_json(document, notary.server_name, key)
                return
        raise SignatureError(f"document not signed by notary {notary.server_name}")

    async def _notary_key(self, notary: Notary, key_id: str) -> VerifyKey | None:
        if notary.verify_keys:
            pinned = notary.verify_keys.get(key_id)
            return verify_key_from_base64(key_id, pinned) if pinned else None
        try:
            return await self.verify_key(notary.server_name, key_id, self.now_ms())
        except SignatureError:
            return None

    async def _remember(self, records: Sequence[ServerKeyRecord]) -> None:
        """Cache and store fetched keys, never trading a key for a staler copy."""
        if not records:
            return
        server_name = records[0].server_name
        known = dict(await self._records(server_name))
        fresh = [r for r in records if not _staler(r, known.get(r.key_id))]
        if not fresh:
            return
        await self._store.store_server_keys(fresh)
        known.update({r.key_id: r for r in fresh})
        self._cache_put(server_name, known)


def _valid_until(records: Mapping[str, ServerKeyRecord], ts: int) -> bool:
    """Whether a current key among `records` is announced valid until `ts`."""
    return any(r.valid_until_ts is not None and r.valid_until_ts >= ts for r in records.values())


def _staler(new: ServerKeyRecord, old: ServerKeyRecord | None) -> bool:
    """A current key's document older (valid for less) than the one we hold."""
    return (old is not None and old.valid_until_ts is not None
            and new.valid_until_ts is not None and new.valid_until_ts < old.valid_until_ts)
