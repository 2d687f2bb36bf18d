"""The key ring's rules: fetching, caching and storing keys, validity periods,
old keys after rotation, notaries, de-duplicated fetches, event signatures.

Other servers are played by `KeyServers`, which answers key requests with
documents signed by real keys (the HTTP path is covered by the client and
multi-server tests); the store is the real SQL store on SQLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from signedjson.sign import sign_json
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock

from federation.key_responses import MAX_KEY_VALIDITY_MS, OldVerifyKey, OwnKeys
from federation.keys import KeyRing, Notary
from federation.protocol.errors import SignatureError
from federation.protocol.room_versions import KNOWN_ROOM_VERSIONS
from federation.protocol.signing import ServerKey, generate_server_key, hash_and_sign_event
from federation.transport.errors import DestinationUnreachable, HttpResponseError
from homeserver.storage.database import Database
from homeserver.storage.migrations import migrate
from homeserver.storage.server_keys import ServerKeyStore
from tests.synchronous import done

NOW_MS = 1_700_000_000_000
HOUR_MS = 3600 * 1000
OURS = generate_server_key("ours.test", "o1")
REMOTE = "remote.test"
NOTARY = "notary.test"


class KeyServers:
    """Servers answering `/_matrix/key/v2/server` and notary queries."""

    def __init__(self) -> None:
        self.keys: dict[str, ServerKey] = {}
        self.old: dict[str, dict[str, Any]] = {}
        self.valid_for_ms: dict[str, int] = {}
        self.down: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.hold: Deferred[None] | None = None  # delays answers while set
        self.tamper: dict[str, Any] = {}  # server -> function changing its document

    def add(self, name: str, version: str = "k1", valid_for_ms: int = 24 * HOUR_MS
            ) -> ServerKey:
        self.keys[name] = generate_server_key(name, version)
        self.valid_for_ms[name] = valid_for_ms
        return self.keys[name]

    def rotate(self, name: str, version: str, expired_ts: int) -> ServerKey:
        old = self.keys[name]
        self.old.setdefault(name, {})[old.key_id] = {"key": old.verify_key_base64,
                                                     "expired_ts": expired_ts}
        return self.add(name, version, self.valid_for_ms[name])

    def document(self, name: str, now_ms: int) -> dict[str, Any]:
        key = self.keys[name]
        document = {"server_name": name, "valid_until_ts": now_ms + self.valid_for_ms[name],
                    "verify_keys": {key.key_id: {"key": key.verify_key_base64}},
                    "old_verify_keys": self.old.get(name, {})}
        signed = sign_json(document, name, key.signing_key)
        return self.tamper.get(name, lambda d: d)(signed)

    async def get_json(self, destination: str, path: str, query: Any = None, *,
                       timeout_s: float = 60.0, ignore_backoff: bool = False) -> Any:
        self.requests.append((destination, path))
        if self.hold is not None:
            await self.hold
        if destination in self.down or destination not in self.keys:
            raise DestinationUnreachable(destination, "connection refused")
        assert path == "/_matrix/key/v2/server"
        return self.document(destination, self.clock_ms())

    async def post_json(self, destination: str, path: str, body: Any, query: Any = None, *,
                        timeout_s: float = 60.0) -> Any:
        self.requests.append((destination, path))
        if destination != NOTARY:
            raise HttpResponseError(404, "M_UNRECOGNIZED", {})
        notary_key = self.keys[NOTARY]
        return {"server_keys": [
            sign_json(self.document(name, self.clock_ms()), NOTARY, notary_key.signing_key)
            for name in body["server_keys"] if name in self.keys]}

    clock_ms = staticmethod(lambda: NOW_MS)


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(NOW_MS / 1000)
    return clock


@pytest.fixture
def store(tmp_path: Path) -> ServerKeyStore:
    db = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    migrate(db)
    db.start(None, inline=True)
    return ServerKeyStore(db)


@pytest.fixture
def servers(clock: Clock) -> KeyServers:
    servers = KeyServers()
    servers.clock_ms = lambda: int(clock.seconds() * 1000)  # type: ignore[method-assign]
    return servers


def ring(clock: Clock, store: ServerKeyStore, servers: KeyServers,
         notaries: list[Notary] | None = None) -> KeyRing:
    own = OwnKeys(OURS, {"ed25519:gone": OldVerifyKey(OURS.verify_key_base64, NOW_MS)},
                  24 * HOUR_MS)
    return KeyRing(clock, store, servers, own, notaries or [])


def test_keys_are_fetched_once_then_cached_and_stored(clock: Clock, store: ServerKeyStore,
                                                      servers: KeyServers) -> None:
    key = servers.add(REMOTE)
    keyring = ring(clock, store, servers)
    found = done(keyring.verify_key(REMOTE, key.key_id, NOW_MS))
    assert found.encode() == key.verify_key.encode()
    done(keyring.verify_key(REMOTE, key.key_id, NOW_MS))
    assert servers.requests == [(REMOTE, "/_matrix/key/v2/server")]
    # A new key ring (a restart) finds them in the store.
    servers.down.add(REMOTE)
    done(ring(clock, store, servers).verify_key(REMOTE, key.key_id, NOW_MS))
    assert len(servers.requests) == 1


def test_our_own_keys_are_answered_without_fetching(clock: Clock, store: ServerKeyStore,
                                                    servers: KeyServers) -> None:
    keyring = ring(clock, store, servers)
    assert done(keyring.verify_key("ours.test", OURS.key_id, NOW_MS + 10 ** 9)).encode() == \
        OURS.verify_key.encode()
    done(keyring.verify_key("ours.test", "ed25519:gone", NOW_MS - 1))
    with pytest.raises(SignatureError):
        done(keyring.verify_key("ours.test", "ed25519:gone", NOW_MS + 1))
    assert servers.requests == []


def test_a_key_past_its_valid_until_ts_is_refetched_and_refused_if_still_stale(
        clock: Clock, store: ServerKeyStore, servers: KeyServers) -> None:
    key = servers.add(REMOTE, valid_for_ms=HOUR_MS)
    keyring = ring(clock, store, servers)
    done(keyring.verify_key(REMOTE, key.key_id, NOW_MS + HOUR_MS))  # the last valid moment
    servers.down.add(REMOTE)
    with pytest.raises(SignatureError):
        done(keyring.verify_key(REMOTE, key.key_id, NOW_MS + HOUR_MS + 1))
    assert len(servers.requests) == 2  # it tried to refresh


def test_validity_is_capped_at_seven_days_after_fetching(
        clock: Clock, store: ServerKeyStore, servers: KeyServers) -> None:
    key = servers.add(REMOTE, valid_for_ms=365 * 24 * HOUR_MS)
    keyring = ring(clock, store, servers)
    done(keyring.verify_key(REMOTE, key.key_id, NOW_MS + MAX_KEY_VALIDITY_MS))
    servers.down.add(REMOTE)
    with pytest.raises(SignatureError):
        done(keyring.verify_key(REMOTE, key.key_id, NOW_MS + MAX_KEY_VALIDITY_MS + 1))


def test_after_rotation_old_keys_verify_only_before_they_expired(
        clock: Clock, store: ServerKeyStore, servers: KeyServers) -> None:
    old = servers.add(REMOTE, "k1")
    keyring = ring(clock, store, servers)
    done(keyring.verify_key(REMOTE, old.key_id, NOW_MS))
    clock.advance(60)
    expired_at = NOW_MS + 30_000
    new = servers.rotate(REMOTE, "k2", expired_at)
    done(keyring.verify_key(REMOTE, new.key_id, NOW_MS + 60_000))  # fetches the new document
    assert done(keyring.verify_key(REMOTE, old.key_id, expired_at - 1)).encode() == \
        old.verify_key.encode()
    with pytest.raises(SignatureError):
        done(keyring.verify_key(REMOTE, old.key_id, expired_at))


def test_documents_that_are_not_self_signed_or_name_another_server_are_refused(
        clock: Clock, store: ServerKeyStore, servers: KeyServers) -> None:
    key = servers.add(REMOTE)
    impostor = generate_server_key(REMOTE, "k1")
    servers.tamper[REMOTE] = lambda d: sign_json(
        {k: v for k, v in d.items() if k != "signatures"}, REMOTE, impostor.signing_key)
    with pytest.raises(SignatureError):
        done(ring(clock, store, servers).verify_key(REMOTE, key.key_id, NOW_MS))
    servers.tamper[REMOTE] = lambda d: {**d, "server_name": "other.test"}
    clock.advance(60)
    with pytest.raises(SignatureError):
        done(ring(clock, store, servers).verify_key(REMOTE, key.key_id, NOW_MS))


def test_a_missing_key_is_not_refetched_at_once(clock: Clock, store: ServerKeyStore,
                                                servers: KeyServers) -> None:
    servers.add(REMOTE)
    keyring = ring(clock, store, servers)
    for _ in range(3):
        with pytest.raises(SignatureError):
            done(keyring.verify_key(REMOTE, "ed25519:nope", NOW_MS))
    assert len(servers.requests) == 1
    clock.advance(60)
    with pytest.raises(SignatureError):
        done(keyring.verify_key(REMOTE, "ed25519:nope", NOW_MS))
    assert len(servers.requests) == 2


def test_an_unreachable_server_s_keys_come_through_a_notary(
        clock: Clock, store: ServerKeyStore, servers: KeyServers) -> None:
    key = servers.add(REMOTE)
    notary_key = servers.add(NOTARY)
    servers.down.add(REMOTE)
    pinned = Notary(NOTARY, {notary_key.key_id: notary_key.verify_key_base64})
    keyring = ring(clock, store, servers, [pinned])
    assert done(keyring.verify_key(REMOTE, key.key_id, NOW_MS)).encode() == \
        key.verify_key.encode()
    assert servers.requests == [(REMOTE, "/_matrix/key/v2/server"),
                                (NOTARY, "/_matrix/key/v2/query")]


def test_a_notary_answer_without_the_notary_s_signature_is_refused(
        clock: Clock, store: ServerKeyStore, servers: KeyServers) -> None:
    key = servers.add(REMOTE)
    servers.add(NOTARY)
    servers.down.add(REMOTE)
    someone_else = generate_server_key(NOTARY, "k1")  # the key we pinned is not the notary's
    pinned = Notary(NOTARY, {someone_else.key_id: someone_else.verify_key_base64})
    with pytest.raises(SignatureError):
        done(ring(clock, store, servers, [pinned]).verify_key(REMOTE, key.key_id, NOW_MS))


def test_a_notary_without_pinned_keys_is_asked_for_its_own_first(
        clock: Clock, store: ServerKeyStore, servers: KeyServers) -> None:
    key = servers.add(REMOTE)
    servers.add(NOTARY)
    servers.down.add(REMOTE)
    keyring = ring(clock, store, servers, [Notary(NOTARY)])
    done(keyring.verify_key(REMOTE, key.key_id, NOW_MS))
    assert (NOTARY, "/_matrix/key/v2/server") in servers.requests


def test_concurrent_lookups_share_one_fetch(clock: Clock, store: ServerKeyStore,
                                            servers: KeyServers) -> None:
    key = servers.add(REMOTE)
    keyring = ring(clock, store, servers)
    servers.hold = Deferred()
    lookups = [ensureDeferred(keyring.verify_key(REMOTE, key.key_id, NOW_MS))
               for _ in range(5)]
    assert not any(d.called for d in lookups)
    hold, servers.hold = servers.hold, None
    hold.callback(None)
    results: list[Any] = []
    for lookup in lookups:
        lookup.addBoth(results.append)
    assert [r.encode() for r in results] == [key.verify_key.encode()] * 5
    assert len(servers.requests) == 1


def test_events_verify_with_a_key_valid_at_their_timestamp(
        clock: Clock, store: ServerKeyStore, servers: KeyServers) -> None:
    key = servers.add(REMOTE)
    version = KNOWN_ROOM_VERSIONS["11"]
    pdu = hash_and_sign_event({
        "type": "m.room.message", "room_id": "!r:remote.test", "sender": "@a:remote.test",
        "content": {"body": "hi"}, "origin_server_ts": NOW_MS, "depth": 3,
        "prev_events": [], "auth_events": [],
    }, key, version)
    keyring = ring(clock, store, servers)
    done(keyring.verify_event(pdu, version))
    with pytest.raises(SignatureError):
        done(keyring.verify_event({**pdu, "depth": 4}, version))  # content: the hash's job
    with pytest.raises(SignatureError):  # long after the key's validity
        done(keyring.verify_event({**pdu, "origin_server_ts": NOW_MS + 30 * 24 * HOUR_MS},
                                  version))
    unsigned = {k: v for k, v in pdu.items() if k != "signatures"}
    for garbage in ({}, {REMOTE: {key.key_id: 42}}, {REMOTE: {key.key_id: "!!"}},
                    {REMOTE: "x"}, {REMOTE: {"rsa:1": "abc"}}):
        with pytest.raises(SignatureError):
            done(keyring.verify_event({**unsigned, "signatures": garbage}, version))
    with pytest.raises(SignatureError):
        done(keyring.verify_event(unsigned, version))


def test_notary_documents_carry_our_signature_too(clock: Clock, store: ServerKeyStore,
                                                  servers: KeyServers) -> None:
    key = servers.add(REMOTE)
    keyring = ring(clock, store, servers)
    documents = done(keyring.notary_documents(REMOTE, NOW_MS))
    assert len(documents) == 1
    assert set(documents[0]["signatures"]) == {REMOTE, "ours.test"}
    assert documents[0]["verify_keys"] == {key.key_id: {"key": key.verify_key_base64}}
    # Our own keys: our self-signed document.
    assert done(keyring.notary_documents("ours.test", NOW_MS))[0]["server_name"] == "ours.test"


def test_notary_queries_for_a_dead_server_do_not_fetch_every_time(
        clock: Clock, store: ServerKeyStore, servers: KeyServers) -> None:
    keyring = ring(clock, store, servers)
    for _ in range(3):
        assert done(keyring.notary_documents("dead.test", NOW_MS)) == []
    assert servers.requests == [("dead.test", "/_matrix/key/v2/server")]
