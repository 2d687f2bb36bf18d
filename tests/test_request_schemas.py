"""Request-body schemas (schemas/requests/): each accepts the spec's samples and
refuses wrong types with the errcode the server answers; every route that reads
a JSON body has one; the SDK's bodies match them; validation stays cheap."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, ClassVar

import pytest

import schemas
from homeserver.handlers.receipts import RECEIPT_TYPES
from homeserver.rest.federation.transaction import MAX_EDUS, MAX_PDUS
from homeserver.rest.http import JsonRouter, Route
from homeserver.ws.requests import ENVELOPE_SCHEMA, RequestDispatcher

USER = "@alice:example.org"
ROOM = "!room:example.org"
EVENT = "$" + "a" * 43
DEVICE_KEYS = {"user_id": USER, "device_id": "DEV", "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
               "keys": {"curve25519:DEV": "key"}, "signatures": {USER: {"ed25519:DEV": "sig"}}}
PDU = {"type": "m.room.member", "sender": USER, "room_id": ROOM, "state_key": USER,
       "origin_server_ts": 1, "content": {"membership": "join"}, "depth": 3,
       "prev_events": [EVENT], "auth_events": [EVENT], "hashes": {"sha256": "h"},
       "signatures": {"example.org": {"ed25519:a": "s"}}}

BAD = "M_BAD_JSON"
INVALID = "M_INVALID_PARAM"
MISSING = "M_MISSING_PARAM"

# name -> (valid bodies, [(invalid body, errcode)]). Valid bodies follow the
# spec's examples; the errcodes are those the server answered before schemas.
CASES: dict[str, tuple[list[Any], list[tuple[Any, str]]]] = {
    "client/register": (
        [{}, {"username": "cheeky_monkey", "password": "ilovebananas", "device_id": "GHTYAJCE",
              "initial_device_display_name": "Jungle Phone", "inhibit_login": False,
              "auth": {"type": "m.login.dummy", "session": "xxxxx"}, "refresh_token": True}],
        [({"username": 5}, INVALID), ({"inhibit_login": "yes"}, INVALID),
         ({"auth": "x"}, INVALID), ({"auth": {"session": 5}}, INVALID)]),
    "client/login": (
        [{"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "cheeky"},
          "password": "ilovebananas", "initial_device_display_name": "Jungle Phone"},
         {"type": "m.login.token", "token": "t", "device_id": "D", "refresh_token": False}],
        [({}, MISSING), ({"type": 5}, INVALID),
         ({"type": "m.login.password", "identifier": {"user": "x"}}, MISSING),
         ({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": 5}},
          INVALID)]),
    "client/createRoom": (
        [{}, {"preset": "public_chat", "room_alias_name": "thepub", "name": "The Grand Duke Pub",
              "topic": "All about happy hour", "creation_content": {"m.federate": False},
              "visibility": "public", "invite": [USER], "is_direct": False,
              "room_version": "11", "power_level_content_override": {"ban": 60},
              "initial_state": [{"type": "m.room.guest_access", "state_key": "",
                                 "content": {"guest_access": "can_join"}}]}],
        [({"visibility": "secret"}, INVALID), ({"invite": ["bob"]}, INVALID),
         ({"is_direct": "yes"}, INVALID), ({"preset": "party"}, INVALID),
         ({"creation_content": []}, BAD), ({"power_level_content_override": 5}, BAD),
         ({"invite_3pid": [{"medium": "email"}]}, BAD),
         ({"initial_state": [{"type": "m.room.name"}]}, "M_INVALID_ROOM_STATE"),
         ({"initial_state": ["x"]}, "M_INVALID_ROOM_STATE")]),
    "client/joinRoom": (
        [{}, {"reason": "Looking for support"},
         {"third_party_signed": {"sender": USER, "mxid": USER, "token": "random8nonce",
                                 "signatures": {"example.org": {"ed25519:0": "some9sig"}}}}],
        [({"reason": 5}, INVALID), ({"third_party_signed": {"sender": USER}}, MISSING)]),
    "client/joinRoomById": ([{"reason": "r"}], [({"reason": []}, INVALID)]),
    "client/knockRoom": ([{}, {"reason": "Looking for support"}], [({"reason": 1}, INVALID)]),
    "client/leaveRoom": ([{}, {"reason": "Saying farewell"}], [({"reason": True}, INVALID)]),
    "client/forgetRoom": ([{}], [([], BAD)]),
    "client/inviteUser": ([{"user_id": USER, "reason": "Welcome"}],
                          [({}, MISSING), ({"user_id": 5}, INVALID),
                           ({"user_id": "bob"}, INVALID)]),
    "client/kick": ([{"user_id": USER, "reason": "Telling unfunny jokes"}],
                    [({"reason": "r"}, MISSING)]),
    "client/ban": ([{"user_id": USER}], [({"user_id": USER, "reason": 1}, INVALID)]),
    "client/unban": ([{"user_id": USER}], [({"user_id": None}, INVALID)]),
    "client/sendMessage": ([{"msgtype": "m.text", "body": "hello"}, {}], [([1], BAD)]),
    "client/setRoomStateWithKey": ([{"membership": "join"}], [("x", BAD)]),
    "client/redactEvent": ([{"reason": "Indecent material"}], [({"reason": {}}, INVALID)]),
    "client/setTyping": ([{"typing": True, "timeout": 30000}, {"typing": False}],
                         [({"timeout": 5}, MISSING), ({"typing": "true"}, INVALID),
                          ({"typing": True, "timeout": "1"}, INVALID)]),
    "client/postReceipt": ([{}, {"thread_id": "main"}], [({"thread_id": 1}, INVALID)]),
    "client/setReadMarker": ([{"m.fully_read": EVENT, "m.read": EVENT,
                               "m.read.private": EVENT}],
                             [({"m.read": 5}, INVALID)]),
    "client/setPresence": ([{"presence": "online", "status_msg": "I am here."}],
                           [({}, MISSING), ({"presence": "away"}, INVALID),
                            ({"presence": "online", "status_msg": 1}, INVALID)]),
    "client/setDisplayName": ([{"displayname": "Alice Margatroid"}, {"displayname": None}],
                              [({"displayname": 5}, INVALID)]),
    "client/setAvatarUrl": ([{"avatar_url": "mxc://matrix.org/wefh34uihSDRGhw34"}],
                            [({"avatar_url": ["mxc://x/y"]}, INVALID)]),
    "client/setProfileField": ([{"m.tz": "Europe/London"}], [(5, BAD)]),
    "client/setAccountData": ([{"custom_account_data_key": "custom_config_value"}],
                              [("x", BAD)]),
    "client/setAccountDataPerRoom": ([{"custom_account_data_key": "custom_account_data_value"}],
                                     [([], BAD)]),
    "client/defineFilter": (
        [{"room": {"state": {"types": ["m.room.*"], "not_rooms": ["!726s6s6q:example.com"]},
                   "timeline": {"limit": 10, "types": ["m.room.message"],
                                "not_rooms": ["!726s6s6q:example.com"],
                                "not_senders": ["@spam:example.com"]},
                   "ephemeral": {"types": ["m.receipt", "m.typing"],
                                 "not_rooms": ["!726s6s6q:example.com"],
                                 "not_senders": ["@spam:example.com"]}},
          "presence": {"types": ["m.presence"], "not_senders": ["@alice:example.com"]},
          "event_format": "client", "event_fields": ["type", "content", "sender"]}],
        [({"room": {"timeline": {"limit": "x"}}}, BAD), ({"room": {"rooms": "x"}}, BAD),
         ({"room": {"timeline": {"types": [1]}}}, BAD), ({"event_format": "xml"}, BAD),
         ({"room": {"include_leave": "yes"}}, BAD),
         ({"room": {"state": {"lazy_load_members": "yes"}}}, BAD)]),
    "client/setPushRule": (
        [{"pattern": "cake*lie", "actions": ["notify"]},
         {"conditions": [{"kind": "event_match", "key": "content.body", "pattern": "cake*"}],
          "actions": ["notify", {"set_tweak": "sound", "value": "default"}]}],
        [({}, MISSING), ({"actions": [5]}, INVALID), ({"actions": "notify"}, INVALID),
         ({"actions": [], "conditions": [{"key": "x"}]}, INVALID),
         ({"actions": [], "pattern": 5}, INVALID)]),
    "client/setPushRuleEnabled": ([{"enabled": True}],
                                  [({}, MISSING), ({"enabled": "true"}, INVALID)]),
    "client/setPushRuleActions": ([{"actions": ["notify", {"set_tweak": "highlight"}]}],
                                  [({}, MISSING), ({"actions": [None]}, INVALID)]),
    "client/sendToDevice": (
        [{"messages": {USER: {"TLLBEANAAG": {"example_content_key": "value"}}}},
         {"messages": {USER: {"*": {"a": 1}}}}],
        [({}, MISSING), ({"messages": "x"}, INVALID), ({"messages": {USER: "x"}}, BAD),
         ({"messages": {USER: {"DEV": 5}}}, BAD)]),
    "client/uploadKeys": (
        [{}, {"device_keys": DEVICE_KEYS,
              "one_time_keys": {"curve25519:AAAAAQ": "/qyvZvwjiTxGdGU0RCguDCLeR+nmsb3FfNG3/Ve4vU8",
                                "signed_curve25519:AAAAHg": {
                                    "key": "zKbLg+NrIjpnagy+pIY6uPL4ZwEG2v+8F9lmgsnlZzs",
                                    "signatures": {USER: {"ed25519:JLAFKJWSCS": "FLWxX"}}}},
              "fallback_keys": {"signed_curve25519:AAAAGj": {
                  "key": "zKbLg", "fallback": True,
                  "signatures": {USER: {"ed25519:JLAFKJWSCS": "FLWxX"}}}}}],
        [({"one_time_keys": {"signed_curve25519:A": 5}}, BAD),
         ({"device_keys": {"user_id": 5}}, BAD), ({"one_time_keys": []}, BAD)]),
    "client/queryKeys": ([{"timeout": 10000, "device_keys": {USER: []}}],
                         [({}, MISSING), ({"device_keys": []}, BAD),
                          ({"device_keys": {USER: "x"}}, BAD), ({"device_keys": {USER: [5]}}, BAD),
                          ({"device_keys": {}, "timeout": "1"}, INVALID)]),
    "client/claimKeys": ([{"timeout": 10000,
                           "one_time_keys": {USER: {"JLAFKJWSCS": "signed_curve25519"}}}],
                         [({}, MISSING), ({"one_time_keys": {USER: "x"}}, BAD),
                          ({"one_time_keys": {USER: {"DEV": 5}}}, BAD)]),
    "client/setRoomAlias": ([{"room_id": "!abnjk1jdasj98:capuchins.com"}],
                            [({}, MISSING), ({"room_id": 5}, INVALID),
                             ({"room_id": "nope"}, INVALID)]),
    "client/setRoomVisibilityOnDirectory": ([{"visibility": "public"}, {}],
                                            [({"visibility": "secret"}, INVALID)]),
    "client/queryPublicRooms": (
        [{}, {"limit": 10, "filter": {"generic_search_term": "foo", "room_types": [None, "m.space"]},
              "include_all_networks": False, "third_party_instance_id": "irc-freenode",
              "since": "t"}],
        [({"limit": "10"}, INVALID), ({"filter": {"room_types": "x"}}, INVALID),
         ({"filter": {"generic_search_term": 5}}, INVALID)]),
    "client/updateDevice": ([{"display_name": "My other phone"}],
                            [({"display_name": 5}, INVALID)]),
    "client/deleteDevice": ([{}, {"auth": {"type": "example.type.foo", "session": "xxxxx",
                                           "example_credential": "verypoorsharedsecret"}}],
                            [({"auth": "x"}, INVALID)]),
    "client/deleteDevices": ([{"devices": ["QBUAZIFURK", "AUIECTSRND"],
                               "auth": {"type": "example.type.foo", "session": "xxxxx"}}],
                             [({"auth": {}}, MISSING), ({"devices": [1]}, INVALID)]),
    "client/searchUserDirectory": ([{"search_term": "foo", "limit": 10}],
                                   [({}, MISSING), ({"search_term": 5}, INVALID)]),
    "federation/sendTransaction": (
        [{"origin": "matrix.org", "origin_server_ts": 1234567890, "pdus": [PDU],
          "edus": [{"edu_type": "m.typing", "content": {}}]},
         {"origin": "x", "pdus": [{"room_id": 5}, "text", None]}],
        [({"pdus": "nope"}, BAD), ({"pdus": [{}] * (MAX_PDUS + 1)}, BAD),
         ({"edus": [{}] * (MAX_EDUS + 1)}, BAD), ({"origin_server_ts": "now"}, BAD)]),
    "federation/sendInviteV2": (
        [{"room_version": "11", "event": PDU, "invite_room_state": [
            {"type": "m.room.name", "sender": USER, "state_key": "", "content": {"name": "n"}}]},
         {"room_version": "99", "event": {}}],
        [({"event": PDU}, BAD), ({"room_version": "11", "event": "x"}, BAD),
         ({"room_version": "11", "event": PDU, "invite_room_state": ["x"]}, BAD)]),
    "federation/sendInviteV1": ([PDU, {"unsigned": {"invite_room_state": []}}],
                                [({"unsigned": {"invite_room_state": "x"}}, BAD)]),
    "federation/sendJoin": ([PDU], [({}, BAD), ({"type": "m.room.member"}, BAD),
                                    ({"content": "x", "sender": 5}, BAD),
                                    ({**PDU, "type": "m.room.message"}, BAD),
                                    ({**PDU, "content": {}}, BAD)]),
    "federation/sendLeave": ([{**PDU, "content": {"membership": "leave"}}],
                             [({k: v for k, v in PDU.items() if k != "state_key"}, BAD)]),
    "federation/sendKnock": ([{**PDU, "content": {"membership": "knock"}}],
                             [({**PDU, "depth": -1}, BAD)]),
    "federation/getMissingPreviousEvents": (
        [{"limit": 10, "min_depth": 0, "earliest_events": [EVENT], "latest_events": [EVENT]}],
        [({"latest_events": []}, MISSING),
         ({"earliest_events": "x", "latest_events": []}, INVALID),
         ({"earliest_events": [], "latest_events": [], "limit": "10"}, INVALID),
         ({"earliest_events": [], "latest_events": [5]}, INVALID)]),
    "federation/queryUserEncryptionKeys": ([{"device_keys": {USER: []}}],
                                           [({}, MISSING), ({"device_keys": []}, BAD)]),
    "federation/claimUserEncryptionKeys": (
        [{"one_time_keys": {USER: {"JLAFKJWSCS": "signed_curve25519"}}}],
        [({}, MISSING), ({"one_time_keys": {USER: {"D": 1}}}, BAD)]),
    "federation/bulkPerspectivesKeyQuery": (
        [{"server_keys": {"example.org": {"ed25519:abc123": {"minimum_valid_until_ts": 1234567890}},
                          "other.example": {}}}],
        [({}, BAD), ({"server_keys": []}, BAD), ({"server_keys": {"x.test": "no"}}, BAD),
         ({"server_keys": {"x": {"k": {"minimum_valid_until_ts": "1"}}}}, BAD)]),
    "federation/queryPublicRooms": ([{"limit": 10, "filter": {"generic_search_term": "foo"}}],
                                    [({"since": 5}, INVALID)]),
    # The stream's requests: errcodes as their REST twins' (tests/integration/test_stream_schemas.py
    # compares them on a live server); a path parameter left out is M_MISSING_PARAM.
    "stream/request": ([{"id": "1", "method": "send", "params": {}}, {"id": "", "method": "typing"}],
                       [({"id": 5, "method": "send"}, BAD), ({"method": "send"}, BAD),
                        ({"id": "1"}, BAD), ({"id": "1", "method": "teleport"}, "M_UNRECOGNIZED"),
                        ({"id": "1", "method": "send", "params": []}, BAD)]),
    "stream/send": ([{"room_id": ROOM, "event_type": "m.room.message", "txn_id": "t1",
                      "content": {"msgtype": "m.text", "body": "hello"}}],
                    [({"room_id": ROOM}, MISSING), ({"room_id": ROOM, "event_type": "m.x",
                                                     "txn_id": "t", "content": [1]}, BAD),
                     ({"room_id": 5, "event_type": "m.x", "txn_id": "t", "content": {}}, INVALID),
                     ({"room_id": ROOM, "event_type": "m.x", "txn_id": 1, "content": {}},
                      INVALID)]),
    "stream/state": ([{"room_id": ROOM, "event_type": "m.room.topic", "content": {"topic": "t"}},
                      {"room_id": ROOM, "event_type": "m.room.member", "state_key": USER,
                       "content": {"membership": "join"}}],
                     [({"room_id": ROOM, "event_type": "m.room.topic"}, MISSING),
                      ({"room_id": ROOM, "event_type": "m.room.topic", "content": "x"}, BAD),
                      ({"room_id": ROOM, "event_type": "m.x", "state_key": 1, "content": {}},
                       INVALID)]),
    "stream/typing": ([{"room_id": ROOM, "typing": True, "timeout": 30000},
                       {"room_id": ROOM, "user_id": USER, "typing": False}],
                      [({"room_id": ROOM, "timeout": 5}, MISSING), ({"typing": True}, MISSING),
                       ({"room_id": ROOM, "typing": "true"}, INVALID),
                       ({"room_id": ROOM, "typing": True, "timeout": "1"}, INVALID),
                       ({"room_id": ROOM, "typing": True, "user_id": 5}, INVALID)]),
    "stream/receipt": ([{"room_id": ROOM, "event_id": EVENT},
                        {"room_id": ROOM, "event_id": EVENT, "receipt_type": "m.read.private",
                         "thread_id": "main"}],
                       [({"room_id": ROOM}, MISSING), ({"event_id": EVENT}, MISSING),
                        ({"room_id": ROOM, "event_id": EVENT, "thread_id": 1}, INVALID),
                        ({"room_id": ROOM, "event_id": EVENT, "receipt_type": "m.seen"},
                         INVALID)]),
    "stream/presence": ([{"presence": "online", "status_msg": "I am here."}],
                        [({}, MISSING), ({"presence": "away"}, INVALID),
                         ({"presence": "online", "status_msg": 1}, INVALID)]),
    "stream/to_device": (
        [{"event_type": "m.new_device", "txn_id": "t1",
          "messages": {USER: {"TLLBEANAAG": {"example_content_key": "value"}}}}],
        [({"event_type": "m.x", "txn_id": "t"}, MISSING),
         ({"txn_id": "t", "messages": {}}, MISSING),
         ({"event_type": "m.x", "txn_id": "t", "messages": "x"}, INVALID),
         ({"event_type": "m.x", "txn_id": "t", "messages": {USER: {"DEV": 5}}}, BAD)]),
}


def test_every_request_schema_has_cases() -> None:
    assert sorted(CASES) == schemas.available("requests")


@pytest.mark.parametrize("name", schemas.available("requests"))
def test_request_schema_is_valid_and_titled(name: str) -> None:
    schemas._validator("requests", name)  # raises if the schema itself is invalid
    document = schemas.load("requests", name)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    endpoint = r"(GET|PUT|POST|DELETE) /_(matrix|guildhall)/"
    if name.startswith("stream/"):  # a stream request names the REST endpoint it twins
        endpoint = rf"Stream request( {name[len('stream/'):]})?: .*{endpoint}"
    assert re.match(endpoint, document["title"]), document["title"]
    for key in (schemas.ERRCODE, schemas.MISSING_ERRCODE):
        assert re.fullmatch(r"M_[A-Z_]+", document.get(key, "M_X")), key


@pytest.mark.parametrize("name", sorted(CASES))
def test_spec_samples_pass_and_wrong_types_fail(name: str) -> None:
    valid, invalid = CASES[name]
    for body in valid:
        schemas.validate_request(name, body)
    for body, errcode in invalid:
        with pytest.raises(schemas.SchemaError) as info:
            schemas.validate_request(name, body)
        assert (info.value.errcode, info.value.status) == (errcode, 400), (body, str(info.value))


@pytest.mark.parametrize("name", sorted(CASES))
def test_inlined_refs_decide_like_the_files_as_written(name: str) -> None:
    """The compiled validator has other files' `$ref`s inlined; the schema as
    written (refs resolved while validating) agrees on every case: validity,
    and the failing field and keyword the errcode is read from."""
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    written = schemas.load("requests", name)
    as_written = validator_for(written)({**written, "$id": f"{schemas.BASE_URI}requests/{name}.json"},
                                        registry=schemas._REGISTRY)
    compiled = schemas._validator("requests", name)
    valid, invalid = CASES[name]
    for body in [*valid, *(body for body, _ in invalid)]:
        assert as_written.is_valid(body) == compiled.is_valid(body), body
        if not compiled.is_valid(body):
            errors = [best_match(v.iter_errors(body)) for v in (as_written, compiled)]
            assert len({(tuple(e.absolute_path), tuple(e.absolute_schema_path), e.validator)
                        for e in errors}) == 1, body


def test_schema_error_names_the_failing_field() -> None:
    with pytest.raises(schemas.SchemaError) as info:
        schemas.validate_request("client/createRoom", {"invite": [USER, 5]})
    assert info.value.path == "$['invite'][1]"
    assert info.value.schema == "requests/client/createRoom"


def test_errcode_annotations_are_found_through_refs() -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    schema = {"x-errcode": "M_BAD_JSON", "type": "object",
              "$defs": {"n": {"x-errcode": "M_INVALID_PARAM", "type": "integer"},
                        "o": {"x-missing-errcode": "M_MISSING_PARAM", "required": ["k"]}},
              "properties": {"a": {"$ref": "#/$defs/n"}, "b": {"$ref": "#/$defs/o"},
                             "c": {"type": "string"}}}
    expected = [({"a": "x"}, INVALID), ({"b": {}}, MISSING), ({"c": 1}, BAD)]
    for document, errcode in expected:
        error = best_match(Draft202012Validator(schema).iter_errors(document))
        assert schemas._errcode(schema, error) == errcode, document


def test_transaction_limits_match_the_resource() -> None:
    properties = schemas.load("requests", "federation/sendTransaction")["properties"]
    assert (properties["pdus"]["maxItems"], properties["edus"]["maxItems"]) == (MAX_PDUS,
                                                                                MAX_EDUS)


# Every route that reads a JSON body has a schema --------------------------------------

# Routes taking PUT/POST/DELETE that read no JSON body, and why.
SCHEMALESS: dict[str, str] = {
    "POST /_matrix/client/(v3|r0)/logout": "reads no body",
    "POST /_matrix/client/(v3|r0)/logout/all": "reads no body",
    "DELETE /_matrix/client/(v3|r0)/directory/room/{alias}": "reads no body",
    "DELETE /_matrix/client/(v3|r0)/pushrules/global/{kind}/{rule_id}": "reads no body",
    "POST /_matrix/media/(v3|r0)/upload": "the body is the raw file, not JSON",
}


def _routes(router: JsonRouter) -> list[Route]:
    return router.routes


def _built_server() -> tuple[tuple[JsonRouter, JsonRouter], RequestDispatcher]:
    """The client and federation routers and the stream's request dispatcher of a
    server built in this process."""
    from twisted.internet.testing import MemoryReactorClock

    from homeserver import config as config_module
    from homeserver.app import build

    data_dir = Path(tempfile.mkdtemp(prefix="guildhall-schemas-"))
    config = config_module.load(config_module.generate(
        server_name="localhost", data_dir=data_dir, federation_listen="127.0.0.1:0"))
    hs = build(config, MemoryReactorClock())
    hs.db.stop()  # the routes are all we need; its threads would outlive the test
    assert hs.federation_site is not None
    routers = (_find_router(hs.site.root), _find_router(hs.federation_site.root))
    return routers, _find_dispatcher(hs.site.root)


def _find_router(resource: Any) -> JsonRouter:
    if isinstance(resource, JsonRouter):
        return resource
    for value in vars(resource).values():
        for child in (value.values() if isinstance(value, dict) else [value]):
            if callable(getattr(child, "render", None)) and child is not resource:
                try:
                    return _find_router(child)
                except LookupError:
                    continue
    raise LookupError("no JsonRouter")


def _find_dispatcher(root: Any, max_depth: int = 5) -> RequestDispatcher:
    """The stream's request dispatcher, wherever the site's tree keeps it (on a
    factory, or in the closure that makes one when the first stream opens):
    a breadth-first walk of attributes, containers and closures."""
    level, seen = [root], set()
    for _ in range(max_depth + 1):
        following: list[Any] = []
        for item in level:
            if isinstance(item, RequestDispatcher):
                return item
            if id(item) not in seen:
                seen.add(id(item))
                following.extend(_children(item))
        level = following
    raise LookupError("no stream RequestDispatcher")


def _cell_contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a closure variable not bound yet
        return None


def _children(item: Any) -> list[Any]:
    if isinstance(item, dict):
        return list(item.values())
    if isinstance(item, (list, tuple)):
        return list(item)
    if isinstance(item, FunctionType):
        return [_cell_contents(cell) for cell in item.__closure__ or ()]
    if isinstance(item, (type, ModuleType)) or not hasattr(item, "__dict__"):
        return []
    return list(vars(item).values())


@pytest.fixture(scope="module")
def built_server() -> tuple[tuple[JsonRouter, JsonRouter], RequestDispatcher]:
    return _built_server()


@pytest.fixture(scope="module")
def routers(built_server: tuple[tuple[JsonRouter, JsonRouter], RequestDispatcher]
            ) -> tuple[JsonRouter, JsonRouter]:
    return built_server[0]


@pytest.fixture(scope="module")
def dispatcher(built_server: tuple[tuple[JsonRouter, JsonRouter], RequestDispatcher]
               ) -> RequestDispatcher:
    return built_server[1]


def _template(route: Route) -> str:
    """`^/_matrix/client/v3/rooms/(?P<room_id>[^/]*)/send$` -> `/.../rooms/{room_id}/send`."""
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route.pattern.pattern)
    return text.strip("^$").replace("\\", "")


def _schemaless_reason(route: Route) -> str | None:
    name = f"{route.method} {_template(route)}"
    for pattern, reason in SCHEMALESS.items():
        if re.fullmatch(pattern.replace("{", r"\{").replace("}", r"\}"), name):
            return reason
    return None


def test_every_route_with_a_json_body_has_a_schema(
        routers: tuple[JsonRouter, JsonRouter]) -> None:
    missing = []
    for router in routers:
        for route in _routes(router):
            if route.method == "GET" or route.body is not None:
                continue
            if _schemaless_reason(route) is None:
                missing.append(f"{route.method} {_template(route)}")
    assert not missing, "routes without a request schema:\n" + "\n".join(missing)


def test_schemaless_routes_exist_and_have_no_schema(
        routers: tuple[JsonRouter, JsonRouter]) -> None:
    """The exemptions stay honest: each names a real route that declares no schema."""
    all_routes = [r for router in routers for r in _routes(router)]
    for pattern in SCHEMALESS:
        matching = [r for r in all_routes if re.fullmatch(
            pattern.replace("{", r"\{").replace("}", r"\}"), f"{r.method} {_template(r)}")]
        assert matching, f"no route for exemption {pattern}"
        assert all(r.body is None for r in matching), pattern


def test_every_request_schema_is_used_by_a_route_or_the_stream(
        routers: tuple[JsonRouter, JsonRouter], dispatcher: RequestDispatcher) -> None:
    used = {r.body for router in routers for r in _routes(router)}
    used |= {ENVELOPE_SCHEMA, *dispatcher.params_schemas.values()}
    assert set(schemas.available("requests")) <= used


def test_every_stream_method_has_its_schema_and_the_envelope_names_it(
        dispatcher: RequestDispatcher) -> None:
    assert dispatcher.params_schemas == {name: f"stream/{name}" for name in dispatcher.methods}
    envelope = schemas.load("requests", ENVELOPE_SCHEMA)
    assert sorted(envelope["properties"]["method"]["enum"]) == dispatcher.methods


def test_stream_receipt_types_are_the_handlers() -> None:
    receipt = schemas.load("requests", "stream/receipt")
    assert receipt["properties"]["receipt_type"]["enum"] == list(RECEIPT_TYPES)


def test_stream_methods_without_a_schema_are_refused_at_registration() -> None:
    async def method(who: Any, params: dict[str, Any]) -> dict[str, Any]:
        return {}

    with pytest.raises(ValueError, match="stream/nope"):
        RequestDispatcher().add("nope", method, params="stream/nope")


def test_unknown_schema_names_are_refused_at_registration() -> None:
    async def handler(request: Any) -> tuple[int, Any]:
        return 200, {}

    with pytest.raises(ValueError, match="client/nope"):
        JsonRouter().add("POST", "/x", handler, body="client/nope")


# Validation is cheap on the hot paths ------------------------------------------------------


def _per_call_us(name: str, body: Any, rounds: int = 2000) -> float:
    schemas.validate_request(name, body)  # compiled and cached before timing
    start = time.perf_counter()
    for _ in range(rounds):
        schemas.validate_request(name, body)
    return (time.perf_counter() - start) / rounds * 1e6


def test_validation_is_cheap_on_hot_paths() -> None:
    """Loose bounds (shared CI cores): a message send and a full federation
    transaction are checked in well under a millisecond."""
    message = _per_call_us("client/sendMessage", {"msgtype": "m.text", "body": "hello"})
    transaction = _per_call_us("federation/sendTransaction", {
        "origin": "example.org", "origin_server_ts": 1, "pdus": [PDU] * MAX_PDUS,
        "edus": [{"edu_type": "m.typing", "content": {}}] * 10}, rounds=500)
    assert message < 200 and transaction < 1000, (message, transaction)


# The SDK's request bodies match the schemas the server applies ------------------------------


class RecordingHttpApi:
    """Stands in for the network step of the SDK's HttpApi only: the SDK builds
    each request as for real; this records it and answers like a homeserver."""

    calls: ClassVar[list[tuple[str, str, Any]]] = []

    def __init__(self, homeserver_url: str, access_token: str | None = None) -> None:
        self.homeserver_url = homeserver_url
        self.access_token = access_token

    async def request(self, method: str, path: str, body: Any = None,
                      params: dict[str, str] | None = None, **_: Any) -> Any:
        from client.sdk.errors import MatrixClientError

        self.calls.append((method, path, body))
        if path.endswith("/register") and "auth" not in body:
            raise MatrixClientError("UIA", 401, body={"session": "s1", "flows": [
                {"stages": ["m.login.dummy"]}]})
        if path.endswith(("/login", "/register")):
            return {"user_id": USER, "device_id": "DEV", "access_token": "t"}
        if "/account_data/" in path and method == "GET":
            raise MatrixClientError("none", 404, errcode="M_NOT_FOUND")
        if path.endswith("/joined_rooms"):
            return {"joined_rooms": []}
        return {"room_id": ROOM, "event_id": EVENT}

    async def close(self) -> None:
        pass


def _sdk_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Any]]:
    """The requests the SDK's main calls make."""
    import asyncio

    from client.sdk import client as sdk_client

    monkeypatch.setattr(sdk_client, "HttpApi", RecordingHttpApi)
    RecordingHttpApi.calls = []

    async def scenario() -> None:
        await sdk_client.MatrixClient.register("http://hs.test", "alice", "pw", "Laptop")
        me = await sdk_client.MatrixClient.login("http://hs.test", "alice", "pw", "Laptop")
        await me.create_room(name="Lobby", invite=["@bob:example.org"], alias="lobby",
                             topic="chat")
        await me.direct_room_with("@bob:example.org")
        await me.join("#lobby:example.org")
        await me.invite(ROOM, "@carol:example.org")
        await me.send_text(ROOM, "hello")
        await me.send_event(ROOM, "m.reaction", {"m.relates_to": {
            "rel_type": "m.annotation", "event_id": EVENT, "key": "+1"}})
        await me.send_state(ROOM, "m.room.topic", {"topic": "news"})
        await me.send_typing(ROOM, True)
        await me.send_typing(ROOM, False)
        await me.send_receipt(ROOM, EVENT)
        await me.set_presence("unavailable", "away")
        await me.send_to_device("m.call.invite", {"@bob:example.org": {"DEV": {"a": 1}}})
        await me.leave(ROOM)
        await me.logout()

    asyncio.run(scenario())
    return RecordingHttpApi.calls


def _route_for(router: JsonRouter, method: str, path: str) -> Route:
    from urllib.parse import urlsplit

    raw = urlsplit(path).path
    return next(r for r in router.routes if r.method == method and r.pattern.match(raw))


def test_sdk_bodies_match_the_request_schemas(monkeypatch: pytest.MonkeyPatch,
                                              routers: tuple[JsonRouter, JsonRouter]) -> None:
    calls = _sdk_calls(monkeypatch)
    checked = set()
    for method, path, body in calls:
        if method == "GET":
            continue
        route = _route_for(routers[0], method, path)
        if route.body is None:
            assert _schemaless_reason(route), (method, path)
            continue
        schemas.validate_request(route.body, body)
        checked.add(route.body)
        if route.body == "client/sendMessage":  # and the content, by its event type
            event_type = route.pattern.match(path).group("event_type")  # type: ignore[union-attr]
            schemas.validate_event_content(event_type, body)
    assert {"client/register", "client/login", "client/createRoom", "client/joinRoom",
            "client/inviteUser", "client/sendMessage", "client/setRoomStateWithKey",
            "client/setTyping", "client/postReceipt", "client/setPresence",
            "client/sendToDevice", "client/leaveRoom", "client/setAccountData"} <= checked
