"""Every Client-Server endpoint the server routes, with a valid sample request
and the documented type of each body field and query parameter: the table the
bad-input suite (test_bad_input.py) throws garbage at.

Paths and bodies use `{placeholders}` filled from a context (the room, the
user, an event...); a context value may be a function, called at every fill
(fresh names). `test_every_route_is_in_the_table` fails when a route is added
without a row here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

C = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"

# Wrong values for a documented type; each must be refused with a 4xx.
WRONG: dict[str, list[Any]] = {
    "str": [1, 1.5, 2**53, True, [], {}, ["a"], "a\u0000b"],
    "int": ["1", 1.5, 2**53, -(2**53), True, [], {}],
    "bool": ["true", 1, 0, [], {}],
    "obj": ["x", 1, [], True],
    "list": ["x", 1, {}, True],
    "strlist": ["x", 1, {}, [1], [None], [[]]],
    "userid": [1, [], "", "nobody", "@", "@x", "@x:", "@" + "a" * 300 + ":localhost"],
    "userlist": ["@a:localhost", 1, {}, [1], ["nobody"], ["@" + "a" * 300 + ":localhost"]],
    "enum": [1, "", "nonsense", [], True],
}

# Wrong query parameter values (already percent-encoded), per type.
WRONG_QUERY: dict[str, list[str]] = {
    "int": ["abc", "1.5", "1e3", "+1", "%201", "1_0", "%C2%B2", "%D9%A3",
            "99999999999999999999999", "-99999999999999999999999", "9007199254740993",
            "%FF", "a%00"],
    "token": ["garbage", "s", "s99999999999999999999999_0", "t99999999999999999999999_1",
              "t1_99999999999999999999999", "s-1_0", "s%C2%B2", "%FF", "s1%00"],
    # Wrong for a sync filter and for a room event filter alike.
    "json": ["%7B", "%5B1%5D", "1.5", "%C2%B2", "%FF", "%7B%00", "99999999999999999999999",
             "%7B%22room%22%3A5%2C%22types%22%3A5%7D",
             "%7B%22limit%22%3A%22x%22%2C%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22"
             "%3A%22x%22%7D%7D%7D",
             "[" * 5000 + "]" * 5000],
    "bool": ["yes", "2", "TRUE", "%FF"],
    "enum": ["nonsense", "B", "%FF", "%00"],
    "str": ["%FF", "a%00b"],
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: Any = None  # a valid sample body; None: the endpoint reads no body
    fields: dict[str, str] = field(default_factory=dict)  # body field -> type in WRONG
    query: dict[str, str] = field(default_factory=dict)  # query parameter -> type
    sample_query: dict[str, str] = field(default_factory=dict)
    bad_bodies: tuple[Any, ...] = ()  # more wrong bodies (well-typed at the top)
    auth: bool = True
    # Path placeholders that name something (a wrong one is a 4xx, never a 2xx).
    ids: tuple[str, ...] = ()
    # Free-form path placeholders (odd but valid values may succeed).
    free: tuple[str, ...] = ()
    member: bool = False  # reads or writes a room: a non-member gets 403/404
    public: bool = False  # answers non-members too (public data)
    uia: bool = False  # may answer a user-interactive-auth 401 (flows, no errcode)
    extra: frozenset[str] = frozenset()  # more errcodes its wrong types may answer
    sample_status: int = 200
    destructive: bool = False  # its sample changes the world (run once, last)

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


ROOM = C + "/rooms/{room}"
RULE = C + "/pushrules/global/{kind}/{rule_id}"
STATE_KEY_SAMPLE = {"value": "x"}

ENDPOINTS: list[Endpoint] = [
    # Session ------------------------------------------------------------------------
    Endpoint("GET", "/_matrix/client/versions", auth=False),
    Endpoint("GET", C + "/capabilities"),
    Endpoint("GET", C + "/login", auth=False),
    Endpoint("POST", C + "/login", auth=False, sample_status=403,
             body={"type": "m.login.password", "password": "wrong password",
                   "identifier": {"type": "m.id.user", "user": "{user}"}},
             fields={"type": "str", "identifier": "obj", "password": "str", "device_id": "str",
                     "initial_device_display_name": "str", "refresh_token": "bool"},
             bad_bodies=({"type": "m.login.password", "password": "x",
                          "identifier": {"type": "m.id.user", "user": 5}},
                         {"type": "m.login.password", "password": "x", "user": ["@a:b"]}),
             extra=frozenset({"M_UNKNOWN"})),
    Endpoint("POST", C + "/register", auth=False,
             body={"username": "{fresh}", "password": "pw", "inhibit_login": True,
                   "auth": {"type": "m.login.dummy"}},
             fields={"username": "str", "password": "str", "device_id": "str",
                     "initial_device_display_name": "str", "inhibit_login": "bool",
                     "auth": "obj", "refresh_token": "bool"},
             query={"kind": "enum"}, extra=frozenset({"M_INVALID_USERNAME"})),
    Endpoint("GET", C + "/register/available", auth=False, query={"username": "str"},
             sample_query={"username": "{fresh}"}),
    Endpoint("GET", C + "/account/whoami"),
    Endpoint("GET", C + "/joined_rooms"),
    Endpoint("GET", C + "/voip/turnServer"),
    # Media (the content repository); uploads are raw bytes, not JSON ------------------
    Endpoint("POST", "/_matrix/media/v3/upload", query={"filename": "str"},
             sample_query={"filename": "a.txt"}),
    Endpoint("GET", V1 + "/media/config"),
    Endpoint("GET", "/_matrix/media/v3/config"),
    Endpoint("GET", V1 + "/media/download/localhost/{field}", free=("field",),
             sample_status=404),
    Endpoint("GET", V1 + "/media/download/localhost/{field}/{state_key}",
             free=("field", "state_key"), sample_status=404),
    Endpoint("GET", "/_matrix/media/v3/download/localhost/{field}", auth=False,
             free=("field",), sample_status=404),
    Endpoint("GET", "/_matrix/media/v3/download/localhost/{field}/{state_key}", auth=False,
             free=("field", "state_key"), sample_status=404),
    # Devices ------------------------------------------------------------------------
    Endpoint("GET", C + "/devices"),
    Endpoint("GET", C + "/devices/{device}", ids=("device",)),
    Endpoint("PUT", C + "/devices/{device}", ids=("device",), body={"display_name": "phone"},
             fields={"display_name": "str"}),
    Endpoint("POST", C + "/delete_devices", uia=True, destructive=True,
             body={"devices": ["{spare_device}"], "auth": "{password_auth}"},
             fields={"devices": "strlist", "auth": "obj"}),
    # Deleting an unknown device is no error (spec): its ID is free-form here.
    Endpoint("DELETE", C + "/devices/{spare_device2}", free=("spare_device2",), uia=True,
             destructive=True, body={"auth": "{password_auth}"}, fields={"auth": "obj"}),
    # Profiles -----------------------------------------------------------------------
    Endpoint("GET", C + "/profile/{user}", auth=False, ids=("user",)),
    Endpoint("GET", C + "/profile/{user}/{field}", auth=False, ids=("user",),
             free=("field",)),
    Endpoint("PUT", C + "/profile/{user}/displayname", ids=("user",),
             body={"displayname": "Attacker"}, fields={"displayname": "str"}),
    Endpoint("PUT", C + "/profile/{user}/avatar_url", ids=("user",),
             body={"avatar_url": "mxc://localhost/abc"}, fields={"avatar_url": "str"}),
    # Rooms: creating and membership ---------------------------------------------------
    Endpoint("POST", C + "/createRoom",
             body={"name": "n", "topic": "t", "preset": "private_chat", "visibility": "private",
                   "invite": [], "is_direct": False, "room_version": "11",
                   "creation_content": {}, "initial_state": [],
                   "power_level_content_override": {}},
             fields={"visibility": "enum", "room_alias_name": "str", "name": "str",
                     "topic": "str", "invite": "userlist", "invite_3pid": "list",
                     "room_version": "str", "creation_content": "obj", "initial_state": "list",
                     "preset": "enum", "is_direct": "bool",
                     "power_level_content_override": "obj"},
             bad_bodies=({"power_level_content_override": {"users": 5}},
                         {"power_level_content_override": {"ban": "x"}},
                         {"power_level_content_override": {"users": {"@a:localhost": "x"}}},
                         {"power_level_content_override": {"events": []}},
                         {"creation_content": {"m.federate": "yes"}},
                         {"creation_content": {"type": 5}},
                         {"initial_state": [{"type": "m.room.join_rules",
                                             "content": {"join_rule": 5}}]},
                         {"initial_state": [{"type": 5, "content": {}}]},
                         {"initial_state": [{"type": "m.room.name", "content": {"name": 5}}]},
                         {"initial_state": ["x"]},
                         {"room_alias_name": "a:b"}, {"room_alias_name": ""}),
             extra=frozenset({"M_UNSUPPORTED_ROOM_VERSION", "M_INVALID_ROOM_STATE"})),
    Endpoint("POST", C + "/join/{room}", ids=("room",), member=True, body={"reason": "r"},
             fields={"reason": "str"}),
    Endpoint("POST", ROOM + "/join", ids=("room",), member=True, body={"reason": "r"},
             fields={"reason": "str"}),
    Endpoint("POST", C + "/knock/{room}", ids=("room",), member=True, body={"reason": "r"},
             fields={"reason": "str"}, sample_status=403),
    Endpoint("POST", ROOM + "/kick", ids=("room",), member=True,
             body={"user_id": "{helper}", "reason": "r"},
             fields={"user_id": "userid", "reason": "str"}),
    Endpoint("POST", ROOM + "/ban", ids=("room",), member=True,
             body={"user_id": "{helper}", "reason": "r"},
             fields={"user_id": "userid", "reason": "str"}),
    Endpoint("POST", ROOM + "/unban", ids=("room",), member=True,
             body={"user_id": "{helper}", "reason": "r"},
             fields={"user_id": "userid", "reason": "str"}),
    Endpoint("POST", ROOM + "/invite", ids=("room",), member=True,
             body={"user_id": "{helper}", "reason": "r"},
             fields={"user_id": "userid", "reason": "str"}),
    # Rooms: events ------------------------------------------------------------------
    Endpoint("PUT", ROOM + "/send/m.room.message/{txn}", ids=("room",), free=("txn",),
             member=True, body={"msgtype": "m.text", "body": "hello"},
             fields={"msgtype": "str", "body": "str"},
             bad_bodies=({"msgtype": "m.text"}, {"body": "no msgtype"})),
    Endpoint("PUT", ROOM + "/send/{event_type}/{txn}", ids=("room",),
             free=("event_type", "txn"), member=True, body={"any": "thing"}),
    Endpoint("PUT", ROOM + "/state/m.room.topic/", ids=("room",), member=True,
             body={"topic": "t"}, fields={"topic": "str"}),
    Endpoint("PUT", ROOM + "/state/m.room.name", ids=("room",), member=True,
             body={"name": "n"}, fields={"name": "str"}),
    Endpoint("PUT", ROOM + "/state/{event_type}/{state_key}", ids=("room",),
             free=("event_type", "state_key"), member=True, body=STATE_KEY_SAMPLE),
    Endpoint("PUT", ROOM + "/state/m.room.power_levels/", ids=("room",), member=True,
             body="{power_levels}",
             bad_bodies=({"users": 5}, {"ban": "x"}, {"users": {"@a:localhost": "x"}},
                         {"events": []}, {"users_default": 1.5})),
    Endpoint("PUT", ROOM + "/state/m.room.join_rules/", ids=("room",), member=True,
             body={"join_rule": "invite"}, fields={"join_rule": "enum"},
             bad_bodies=({"join_rule": "restricted", "allow": "x"},
                         {"join_rule": "restricted", "allow": [5]})),
    Endpoint("PUT", ROOM + "/redact/{event}/{txn}", ids=("room", "event"), free=("txn",),
             member=True, body={"reason": "r"}, fields={"reason": "str"}),
    # Rooms: reading -----------------------------------------------------------------
    Endpoint("GET", ROOM + "/state", ids=("room",), member=True),
    Endpoint("GET", ROOM + "/state/m.room.topic/", ids=("room",), member=True),
    Endpoint("GET", ROOM + "/state/m.room.name", ids=("room",), member=True),
    Endpoint("GET", ROOM + "/state/{event_type}/{state_key}", ids=("room",),
             free=("event_type", "state_key"), member=True),
    Endpoint("GET", ROOM + "/messages", ids=("room",), member=True,
             query={"dir": "enum", "limit": "int", "from": "token", "to": "token",
                    "filter": "json"}, sample_query={"dir": "b"}),
    Endpoint("GET", ROOM + "/context/{event}", ids=("room", "event"), member=True,
             query={"limit": "int", "filter": "json"}),
    Endpoint("GET", ROOM + "/event/{event}", ids=("room", "event"), member=True),
    Endpoint("GET", ROOM + "/members", ids=("room",), member=True,
             query={"membership": "enum", "not_membership": "enum", "at": "token"}),
    Endpoint("GET", ROOM + "/joined_members", ids=("room",), member=True),
    Endpoint("GET", V1 + "/rooms/{room}/hierarchy", ids=("room",), member=True, public=True,
             query={"limit": "int", "max_depth": "int", "from": "token",
                    "suggested_only": "bool"}),
    Endpoint("GET", V1 + "/rooms/{room}/relations/{event}", ids=("room", "event"),
             member=True, query={"limit": "int", "from": "token", "to": "token",
                                 "dir": "enum"}),
    Endpoint("GET", V1 + "/rooms/{room}/relations/{event}/m.annotation",
             ids=("room", "event"), member=True),
    Endpoint("GET", V1 + "/rooms/{room}/relations/{event}/m.annotation/m.reaction",
             ids=("room", "event"), member=True),
    # Ephemeral and per-user data ------------------------------------------------------
    Endpoint("PUT", ROOM + "/typing/{user}", ids=("room", "user"), member=True,
             body={"typing": True, "timeout": 1000}, fields={"typing": "bool", "timeout": "int"}),
    Endpoint("POST", ROOM + "/receipt/{receipt_type}/{event}", ids=("room", "event"),
             free=("receipt_type",), member=True, body={}, fields={"thread_id": "str"}),
    Endpoint("POST", ROOM + "/read_markers", ids=("room",), member=True,
             body={"m.fully_read": "{event}", "m.read": "{event}"},
             fields={"m.fully_read": "str", "m.read": "str", "m.read.private": "str"},
             bad_bodies=({"m.fully_read": "not an event ID"},),
             extra=frozenset({"M_NOT_FOUND"})),
    Endpoint("PUT", C + "/user/{user}/account_data/{data_type}", ids=("user",),
             free=("data_type",), body={"some": "data"}),
    Endpoint("GET", C + "/user/{user}/account_data/{data_type}", ids=("user",),
             free=("data_type",)),
    # Room account data needs no membership (as in Synapse): the room is free-form.
    Endpoint("PUT", C + "/user/{user}/rooms/{room}/account_data/{data_type}",
             ids=("user",), free=("room", "data_type"), body={"some": "data"}),
    Endpoint("GET", C + "/user/{user}/rooms/{room}/account_data/{data_type}",
             ids=("user",), free=("room", "data_type")),
    Endpoint("PUT", C + "/presence/{user}/status", ids=("user",),
             body={"presence": "online", "status_msg": "hi"},
             fields={"presence": "enum", "status_msg": "str"}),
    Endpoint("GET", C + "/presence/{user}/status", ids=("user",)),
    Endpoint("PUT", C + "/sendToDevice/{event_type}/{txn}", free=("event_type", "txn"),
             body={"messages": {"{user}": {"{device}": {"a": 1}}}}, fields={"messages": "obj"},
             bad_bodies=({"messages": {"{user}": "x"}}, {"messages": {"{user}": {"DEV": "x"}}},
                         {"messages": {"not a user": {}}})),
    # Sync and filters ---------------------------------------------------------------
    Endpoint("GET", C + "/sync",
             query={"since": "token", "timeout": "int", "filter": "json", "full_state": "bool",
                    "set_presence": "enum"}),
    Endpoint("POST", C + "/user/{user}/filter", ids=("user",),
             body={"room": {"timeline": {"limit": 10}}},
             fields={"room": "obj", "presence": "obj", "account_data": "obj",
                     "event_fields": "strlist", "event_format": "enum"},
             bad_bodies=({"room": {"timeline": {"limit": "x"}}}, {"room": {"rooms": "x"}},
                         {"room": {"timeline": {"types": [1]}}},
                         {"room": {"timeline": {"limit": -1}}},
                         {"room": {"include_leave": "yes"}},
                         {"room": {"state": {"lazy_load_members": "yes"}}})),
    Endpoint("GET", C + "/user/{user}/filter/{filter}", ids=("user", "filter")),
    # Typing, receipts, read markers ------------------------------------------------------
    Endpoint("PUT", ROOM + "/typing/{user}", ids=("room", "user"), member=True,
             body={"typing": True, "timeout": 1000}, fields={"typing": "bool", "timeout": "int"}),
    Endpoint("POST", ROOM + "/receipt/m.read/{event}", ids=("room", "event"), member=True,
             body={"thread_id": "main"}, fields={"thread_id": "str"},
             bad_bodies=({"thread_id": ""}, {"thread_id": "$not-the-thread"})),
    Endpoint("POST", ROOM + "/read_markers", ids=("room",), member=True,
             body={"m.fully_read": "{event}", "m.read": "{event}"},
             fields={"m.fully_read": "str", "m.read": "str", "m.read.private": "str"}),
    # Account data, presence, to-device ------------------------------------------------
    Endpoint("PUT", C + "/user/{user}/account_data/{event_type}", ids=("user",),
             free=("event_type",), body={"setting": 1}),
    Endpoint("GET", C + "/user/{user}/account_data/{event_type}", ids=("user",),
             free=("event_type",)),
    # Room account data may name a room one is not (yet) in, as in Synapse.
    Endpoint("PUT", C + "/user/{user}/rooms/{room}/account_data/{event_type}", ids=("user",),
             free=("room", "event_type"), body={"setting": 1}),
    Endpoint("GET", C + "/user/{user}/rooms/{room}/account_data/{event_type}", ids=("user",),
             free=("room", "event_type")),
    Endpoint("PUT", C + "/presence/{user}/status", ids=("user",),
             body={"presence": "online", "status_msg": "here"},
             fields={"presence": "enum", "status_msg": "str"}),
    Endpoint("GET", C + "/presence/{user}/status", ids=("user",)),
    Endpoint("PUT", C + "/sendToDevice/{event_type}/{txn}", free=("event_type", "txn"),
             body={"messages": {"{user}": {"{device}": {"hello": "me"}}}},
             fields={"messages": "obj"},
             bad_bodies=({"messages": {"nobody": {"DEV": {}}}}, {"messages": {"{user}": "x"}},
                         {"messages": {"{user}": {"DEV": 5}}}, {"messages": {"{user}": {"": {}}}})),
    # Push rules ---------------------------------------------------------------------
    Endpoint("GET", C + "/pushrules/"),
    Endpoint("GET", C + "/pushrules/global/"),
    Endpoint("PUT", RULE, free=("kind", "rule_id"),
             body={"actions": ["notify"], "pattern": "cake*"},
             fields={"actions": "list", "pattern": "str"},  # `conditions`: not for content
             bad_bodies=({"actions": [5]}, {"actions": ["notify"], "pattern": 5},
                         {"actions": [{"set_tweak": 5}]}),
             query={"before": "str", "after": "str"}),
    Endpoint("GET", RULE, free=("kind", "rule_id")),
    Endpoint("GET", RULE + "/enabled", free=("kind", "rule_id")),
    Endpoint("PUT", RULE + "/enabled", free=("kind", "rule_id"), body={"enabled": True},
             fields={"enabled": "bool"}),
    Endpoint("GET", RULE + "/actions", free=("kind", "rule_id")),
    Endpoint("PUT", RULE + "/actions", free=("kind", "rule_id"), body={"actions": ["notify"]},
             fields={"actions": "list"}, bad_bodies=({"actions": [5]},)),
    Endpoint("DELETE", RULE, free=("kind", "rule_id"), destructive=True),
    # Directory ----------------------------------------------------------------------
    Endpoint("GET", C + "/directory/room/{alias}", auth=False, ids=("alias",)),
    Endpoint("PUT", C + "/directory/room/{fresh_alias}", ids=("fresh_alias",),
             body={"room_id": "{room}"}, fields={"room_id": "str"}),
    Endpoint("DELETE", C + "/directory/room/{alias}", ids=("alias",), destructive=True),
    Endpoint("GET", ROOM + "/aliases", ids=("room",), member=True),
    Endpoint("GET", C + "/directory/list/room/{room}", auth=False, ids=("room",),
             member=True, public=True),
    Endpoint("PUT", C + "/directory/list/room/{room}", ids=("room",), member=True,
             body={"visibility": "private"}, fields={"visibility": "enum"}),
    Endpoint("GET", C + "/publicRooms", auth=False,
             query={"limit": "int", "since": "token", "server": "str"}),
    Endpoint("POST", C + "/publicRooms",
             body={"limit": 10, "filter": {"generic_search_term": "x"}},
             fields={"limit": "int", "since": "str", "filter": "obj",
                     "include_all_networks": "bool", "third_party_instance_id": "str"},
             bad_bodies=({"filter": {"generic_search_term": 5}},
                         {"filter": {"room_types": "x"}}, {"since": "garbage"})),
    Endpoint("POST", C + "/user_directory/search", body={"search_term": "x", "limit": 10},
             fields={"search_term": "str", "limit": "int"}),
    # End-to-end keys ----------------------------------------------------------------
    Endpoint("POST", C + "/keys/upload", body={},
             fields={"device_keys": "obj", "one_time_keys": "obj", "fallback_keys": "obj"},
             bad_bodies=({"one_time_keys": {"signed_curve25519:A": 5}},
                         {"device_keys": {"user_id": 5}})),
    Endpoint("POST", C + "/keys/upload/{device}", body={}, free=("device",),
             fields={"device_keys": "obj", "one_time_keys": "obj", "fallback_keys": "obj"}),
    Endpoint("POST", C + "/keys/query", body={"device_keys": {"{user}": []}},
             fields={"device_keys": "obj", "timeout": "int"},
             bad_bodies=({"device_keys": {"{user}": "x"}}, {"device_keys": {"{user}": [5]}})),
    Endpoint("POST", C + "/keys/claim", body={"one_time_keys": {}},
             fields={"one_time_keys": "obj", "timeout": "int"},
             bad_bodies=({"one_time_keys": {"{user}": "x"}},
                         {"one_time_keys": {"{user}": {"DEV": 5}}})),
    Endpoint("GET", C + "/keys/changes", query={"from": "token", "to": "token"},
             sample_query={"from": "s0_0", "to": "s1_0"}),
    # Logging out last: the samples revoke tokens --------------------------------------
    Endpoint("POST", ROOM + "/leave", ids=("room",), member=True, body={"reason": "r"},
             fields={"reason": "str"}, destructive=True),
    Endpoint("POST", ROOM + "/forget", ids=("room",), member=True, body={},
             destructive=True),
    Endpoint("POST", C + "/logout", destructive=True),
    Endpoint("POST", C + "/logout/all", destructive=True),
]

# Also answered 404 M_UNRECOGNIZED (no such endpoint).
UNKNOWN_PATHS = [
    "/", "/_matrix", "/_matrix/client", "/_matrix/client/v3", "/_matrix/client/v3/",
    "/_matrix/client/v3/nonexistent", "/_matrix/client/v4/sync", "/_matrix/client/v3/sync/",
    "/_matrix/client/v3/sync/extra", "/_matrix/client/v3/createRoom/x",
    "/_matrix/client/v3/login/", "/_matrix/client/v3/rooms", "/_matrix/client/v3/rooms/",
    "/_matrix/client/v3/rooms/{room}", "/_matrix/client/v3/rooms/{room}/nonexistent",
    "/_matrix/client/v3/rooms/{room}/send/m.room.message",
    "/_matrix/client/v3/rooms/{room}/../../../sync", "/_matrix/client/v3//sync",
    "/_matrix/client/v3/%73ync", "/_matrix/client/v3/SYNC", "/_matrix/client/v3/sync%00",
    "/_matrix/client/v3/sync%2F", "/%2E%2E/%2E%2E/etc/passwd", "/index.html",
]
