"""FederationQueryHandler: directory, profile, devices and keys for other servers,
in-process on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homeserver.handlers.auth import Requester
from homeserver.handlers.e2e_keys import E2eKeysHandler
from homeserver.handlers.federation_queries import FederationQueryHandler
from homeserver.handlers.profiles import ProfileHandler
from homeserver.handlers.room_aliases import RoomAliasHandler
from homeserver.storage.device_lists import DeviceListStore
from homeserver.storage.e2e_keys import EndToEndKeyStore
from homeserver.storage.positions import max_stream_position
from homeserver.storage.stream import StreamIdGenerator
from homeserver.sync.notifier import Notifier

from .inprocess import ALICE, BOB, HS, Env, build_env, done, refused


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from build_env(tmp_path)


@pytest.fixture
def keys(env: Env) -> E2eKeysHandler:
    stream = StreamIdGenerator(max_stream_position(env.db) + 1000)
    return E2eKeysHandler(EndToEndKeyStore(env.db), DeviceListStore(env.db), env.rooms, stream,
                          Notifier(stream), HS)


@pytest.fixture
def queries(env: Env, keys: E2eKeysHandler) -> FederationQueryHandler:
    done(env.users.create_account(ALICE, None, 0, displayname="Alice"))
    return FederationQueryHandler(
        RoomAliasHandler(env.writer, env.rooms, HS), ProfileHandler(env.users, env.rooms, HS),
        env.users, keys, EndToEndKeyStore(env.db), DeviceListStore(env.db), HS)


def device_keys(device_id: str) -> dict[str, Any]:
    return {"user_id": ALICE, "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
            "keys": {f"curve25519:{device_id}": "key", f"ed25519:{device_id}": "key"},
            "signatures": {ALICE: {f"ed25519:{device_id}": "sig"}}}


def test_directory_answers_our_aliases_with_our_server_first(
        env: Env, queries: FederationQueryHandler) -> None:
    room = env.room(preset="public_chat", room_alias_name="lobby")
    env.join(room)
    assert done(queries.directory("#lobby:hs.example")) == \
        {"room_id": room, "servers": [HS, "remote.example"]}
    for alias in ("#nothing:hs.example", "#lobby:remote.example"):
        error = refused(queries.directory(alias))
        assert (error.status, error.errcode) == (404, "M_NOT_FOUND")
    assert refused(queries.directory("not an alias")).status == 400


def test_profile_whole_or_one_field(queries: FederationQueryHandler) -> None:
    assert done(queries.profile(ALICE, None)) == {"displayname": "Alice"}
    assert done(queries.profile(ALICE, "displayname")) == {"displayname": "Alice"}
    assert done(queries.profile(ALICE, "avatar_url")) == {}
    assert refused(queries.profile(ALICE, "shoe_size")).errcode == "M_INVALID_PARAM"


def test_profile_of_unknown_and_remote_users(queries: FederationQueryHandler) -> None:
    error = refused(queries.profile("@nobody:hs.example", None))
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")
    for user_id in (BOB, "garbage"):
        error = refused(queries.profile(user_id, None))
        assert (error.status, error.errcode) == (400, "M_INVALID_PARAM")


def test_user_devices_lists_every_device_with_keys_where_uploaded(
        env: Env, queries: FederationQueryHandler, keys: E2eKeysHandler) -> None:
    done(env.users.create_device_and_token(ALICE, "PHONE", "Alice's phone", "t1", 0))
    done(env.users.create_device_and_token(ALICE, "LAPTOP", None, "t2", 0))
    assert done(queries.user_devices(ALICE))["stream_id"] == 0
    done(keys.upload(Requester(ALICE, "PHONE"), {"device_keys": device_keys("PHONE")}))
    answer = done(queries.user_devices(ALICE))
    assert answer["user_id"] == ALICE and answer["stream_id"] > 0
    assert sorted(answer["devices"], key=lambda d: d["device_id"]) == [
        {"device_id": "LAPTOP"},
        {"device_id": "PHONE", "device_display_name": "Alice's phone",
         "keys": device_keys("PHONE")}]
    assert done(queries.user_devices("@nobody:hs.example"))["devices"] == []
    assert refused(queries.user_devices(BOB)).status == 400


def test_keys_query_and_claim_answer_only_for_our_users(
        env: Env, queries: FederationQueryHandler, keys: E2eKeysHandler) -> None:
    done(env.users.create_device_and_token(ALICE, "PHONE", None, "t1", 0))
    done(keys.upload(Requester(ALICE, "PHONE"), {
        "device_keys": device_keys("PHONE"),
        "one_time_keys": {"signed_curve25519:AAA": {"key": "k", "signatures": {}}}}))
    queried = done(queries.query_keys({"device_keys": {ALICE: [], BOB: []}}))
    assert queried == {"device_keys": {ALICE: {"PHONE": device_keys("PHONE")}}}
    claimed = done(queries.claim_keys({"one_time_keys": {
        ALICE: {"PHONE": "signed_curve25519"}, BOB: {"X": "signed_curve25519"}}}))
    assert claimed == {"one_time_keys": {ALICE: {"PHONE": {
        "signed_curve25519:AAA": {"key": "k", "signatures": {}}}}}}
    # The key is gone once claimed.
    again = done(queries.claim_keys({"one_time_keys": {ALICE: {"PHONE": "signed_curve25519"}}}))
    assert again == {"one_time_keys": {}}
    for body, code in (({}, "M_MISSING_PARAM"), ({"device_keys": []}, "M_BAD_JSON")):
        assert refused(queries.query_keys(body)).errcode == code
