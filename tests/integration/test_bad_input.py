"""Bad input at every endpoint, on both databases: unparseable and wrongly shaped
bodies, oversize bodies and events, wrong types for every documented field,
out-of-range numbers, bad tokens, odd IDs in paths, rooms one is not in, unknown
endpoints and wrong methods. Every answer must be a 4xx with a JSON body and an
errcode the spec defines for the case, never a 5xx; afterwards a victim room's
state and history are unchanged and the server log holds no traceback.

The endpoints and their documented fields are the table in bad_input_table.py.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Iterator
from urllib.parse import quote

import pytest

from tests.harness import HomeserverProcess
from tests.integration.bad_input_table import (
    C,
    ENDPOINTS,
    UNKNOWN_PATHS,
    WRONG,
    WRONG_QUERY,
    Endpoint,
)
from tests.integration.bad_input_world import (
    CLIENT_ERRORS,
    Verdicts,
    World,
    encode,
    fill_body,
    fill_path,
    make_world,
    register,
    request_path,
    server_routes,
    template_regex,
    victim_snapshot,
)
from tests.integration.rawhttp import RawResponse, raw_request

_worlds = itertools.count()
BAD_FIELD_CODES = frozenset({"M_BAD_JSON", "M_INVALID_PARAM", "M_MISSING_PARAM", "M_NOT_JSON"})
QUERY_CODES = frozenset({"M_INVALID_PARAM", "M_MISSING_PARAM", "M_BAD_JSON", "M_NOT_JSON"})
PATH_CODES = frozenset({"M_INVALID_PARAM", "M_NOT_FOUND", "M_FORBIDDEN", "M_UNRECOGNIZED",
                        "M_BAD_JSON", "M_MISSING_PARAM", "M_UNKNOWN"})
NOT_MEMBER_CODES = frozenset({"M_FORBIDDEN", "M_NOT_FOUND"})
@pytest.fixture(scope="module")
def world(server: HomeserverProcess) -> World:
    return make_world(server, f"bad{next(_worlds)}")


@pytest.fixture
def verdicts(world: World) -> Iterator[Verdicts]:
    """Checks after each test: no traceback logged, the victim room unchanged."""
    before = victim_snapshot(world)
    log_start = world.server.log_path.stat().st_size
    found = Verdicts()
    yield found
    log = world.server.log_path.read_bytes()[log_start:].decode("utf-8", "replace")
    assert "Traceback" not in log, log[-5000:]
    assert victim_snapshot(world) == before, "the victim room changed"


# The barrage ------------------------------------------------------------------------

MAX_BODY = 1_048_576


def _nested(depth: int) -> bytes:
    return b'{"a":' + b"[" * depth + b"]" * depth + b"}"


BODY_ATTACKS: list[tuple[str, bytes, frozenset[str]]] = [
    ("not JSON", b"{not json", frozenset({"M_NOT_JSON"})),
    ("truncated", b'{"a": ', frozenset({"M_NOT_JSON"})),
    ("trailing garbage", b"{} x", frozenset({"M_NOT_JSON"})),
    ("invalid UTF-8", b'{"a": "\xff\xfe"}', frozenset({"M_NOT_JSON"})),
    ("UTF-16", '{"a": 1}'.encode("utf-16"), frozenset({"M_NOT_JSON"})),
    ("NaN", b'{"a": NaN}', frozenset({"M_NOT_JSON", "M_BAD_JSON"})),
    ("array", b"[1, 2]", frozenset({"M_BAD_JSON", "M_NOT_JSON"})),
    ("string", b'"text"', frozenset({"M_BAD_JSON", "M_NOT_JSON"})),
    ("number", b"42", frozenset({"M_BAD_JSON", "M_NOT_JSON"})),
    ("null", b"null", frozenset({"M_BAD_JSON", "M_NOT_JSON"})),
    ("true", b"true", frozenset({"M_BAD_JSON", "M_NOT_JSON"})),
    ("lone surrogate", b'{"a": "\\ud800"}', frozenset({"M_BAD_JSON"})),
    ("integer over 2**53", b'{"a": 9007199254740992}', frozenset({"M_BAD_JSON"})),
    ("float", b'{"a": 1.5}', frozenset({"M_BAD_JSON"})),
    ("NUL in a string", b'{"a": "x\\u0000y"}', frozenset({"M_BAD_JSON"})),
    ("nested 150 deep", _nested(150), frozenset({"M_BAD_JSON", "M_NOT_JSON"})),
    ("nested 990 deep", _nested(990), frozenset({"M_BAD_JSON", "M_NOT_JSON"})),
    ("nested 100000 deep", b"[" * 100_000 + b"]" * 100_000,
     frozenset({"M_BAD_JSON", "M_NOT_JSON"})),
    ("objects 50000 deep", b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
     frozenset({"M_BAD_JSON", "M_NOT_JSON"})),
]

WITH_BODY = [e for e in ENDPOINTS if e.body is not None]


def test_unparseable_and_misshapen_bodies(world: World, verdicts: Verdicts) -> None:
    for endpoint in WITH_BODY:
        path = request_path(endpoint, world.scratch)
        for what, body, codes in BODY_ATTACKS:
            response = world.call(endpoint.method, path, body, world.attacker)
            verdicts.check(f"{endpoint.name} [{what}]", response, {400}, codes)
    verdicts.assert_none()


def test_oversize_bodies_are_413(world: World, verdicts: Verdicts) -> None:
    too_big = b'{"a": "' + b"x" * MAX_BODY + b'"}'
    too_large = frozenset({"M_TOO_LARGE"})
    for endpoint in WITH_BODY:
        response = world.call(endpoint.method, request_path(endpoint, world.scratch), too_big,
                              world.attacker)
        verdicts.check(f"{endpoint.name} [oversize body]", response, {413}, too_large)
    # Without Content-Length too: the limit counts the bytes that arrive.
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in
                       [too_big[i:i + 65536] for i in range(0, len(too_big), 65536)]) + b"0\r\n\r\n"
    path = fill_path(C + "/rooms/{room}/send/m.room.message/{txn}", world.scratch)
    response = raw_request(world.server.base_url, "PUT", path, None, token=world.attacker,
                           headers={"Transfer-Encoding": "chunked"}, chunked_body=chunked)
    verdicts.check("send [oversize chunked body]", response, {413}, too_large)
    verdicts.assert_none()


def test_oversize_events_are_413(world: World, verdicts: Verdicts) -> None:
    too_large = frozenset({"M_TOO_LARGE"})
    content_over = {"msgtype": "m.text", "body": "x" * 70_000}
    # Content under 65536 bytes, but not once the event's other keys are added.
    event_over = {"msgtype": "m.text", "body": "x" * 65_400}
    for what, content in (("content over 64 KiB", content_over),
                          ("event over 64 KiB", event_over)):
        for template in (C + "/rooms/{room}/send/m.room.message/{txn}",
                         C + "/rooms/{room}/state/org.example.big/{txn}"):
            response = world.call("PUT", fill_path(template, world.scratch), encode(content),
                                  world.attacker)
            verdicts.check(f"PUT {template} [{what}]", response, {413}, too_large)
    verdicts.assert_none()


def _wrong_bodies(endpoint: Endpoint) -> Iterator[tuple[str, Any]]:
    for name, kind in endpoint.fields.items():
        for wrong in WRONG[kind]:
            yield f"{name}={json.dumps(wrong)[:40]}", {**endpoint.body, name: wrong}
    for bad in endpoint.bad_bodies:
        yield json.dumps(bad)[:60], bad


def test_wrong_types_for_every_documented_field(world: World, verdicts: Verdicts) -> None:
    for endpoint in WITH_BODY:
        codes = BAD_FIELD_CODES | endpoint.extra
        for what, body in _wrong_bodies(endpoint):
            path = request_path(endpoint, world.scratch)
            token = world.attacker if endpoint.auth else None
            response = world.call(endpoint.method, path, encode(fill_body(body, world.scratch)),
                                  token)
            verdicts.check(f"{endpoint.name} [{what}]", response, CLIENT_ERRORS, codes,
                           uia=endpoint.uia)
    verdicts.assert_none()


def test_bad_query_parameters(world: World, verdicts: Verdicts) -> None:
    for endpoint in ENDPOINTS:
        body = encode(fill_body(endpoint.body, world.scratch)) if endpoint.body is not None \
            else None
        for name, kind in endpoint.query.items():
            codes = QUERY_CODES | ({"M_NOT_FOUND"} if kind == "json" else set()) | endpoint.extra
            for wrong in WRONG_QUERY[kind]:
                path = request_path(endpoint, world.scratch, query={name: wrong})
                token = world.attacker if endpoint.auth else None
                response = world.call(endpoint.method, path, body, token)
                verdicts.check(f"{endpoint.name} [?{name}={wrong[:30]}]", response,
                               CLIENT_ERRORS, frozenset(codes))
    verdicts.assert_none()


# Odd values for path placeholders (percent-encoded as sent).
ODD_ALWAYS_BAD = ["%00", "a%00b", "%FF%FE", "%ED%A0%80"]  # NUL, invalid UTF-8, a surrogate
ODD_IDS = ["..%2F..%2Fetc%2Fpasswd", "..", "%2E%2E", "%2F", "", "nosigil", "!nocolon",
           "#alias:elsewhere.example", "@nobody:elsewhere.example", "$event", "%C3%BC%E2%98%83",
           "!%C3%BC%E2%98%83:localhost", "%F0%9F%98%80", "x" * 10_000,
           "!" + "x" * 10_000 + ":localhost", "%40" + "x" * 10_000 + "%3Alocalhost"]
ODD_FREE = ["..%2F..%2Fetc%2Fpasswd", "", "%C3%BC%E2%98%83", "x" * 10_000]
TOO_LONG_FREE = {"txn", "event_type", "state_key"}  # these have limits: 10 KB is a 4xx


def test_odd_ids_in_paths(world: World, verdicts: Verdicts) -> None:
    for endpoint in ENDPOINTS:
        body = encode(fill_body(endpoint.body, world.scratch)) if endpoint.body is not None \
            else None
        token = world.attacker if endpoint.auth else None
        for name in endpoint.ids + endpoint.free:
            for odd in ODD_ALWAYS_BAD + (ODD_IDS if name in endpoint.ids else ODD_FREE):
                must_fail = name in endpoint.ids or odd in ODD_ALWAYS_BAD or (
                    name in TOO_LONG_FREE and len(odd) > 1000)
                path = request_path(endpoint, world.scratch, raw={name: odd})
                response = world.call(endpoint.method, path, body, token)
                verdicts.check(f"{endpoint.name} [{name}={odd[:30]}]", response,
                               CLIENT_ERRORS if must_fail else range(200, 500), PATH_CODES,
                               uia=endpoint.uia)
    verdicts.assert_none()


def test_raw_bytes_in_paths(world: World, verdicts: Verdicts) -> None:
    """Bytes outside ASCII in a request line break HTTP/1.1 itself: Twisted
    answers a bare 400 before any resource sees the request; never a 5xx."""
    room = quote(world.scratch["room"], safe="")
    for target in (b"/_matrix/client/v3/rooms/\xff\xfe/state",
                   b"/_matrix/client/v3/rooms/" + room.encode() + b"/state/\xc3\x28",
                   b"/_matrix/client/v3/profile/\xf0\x9f\x98\x80",
                   b"/_matrix/client/v3/sync?filter=\xff&since=\xfe",
                   b"/_matrix/client/v3/rooms/" + room.encode() + b"/messages?from=\x80"):
        response = raw_request(world.server.base_url, "GET", target, token=world.attacker)
        if response.status == 400 and not response.body:
            continue  # refused by the HTTP parser
        verdicts.check(f"GET {target[:60]!r}", response, CLIENT_ERRORS, PATH_CODES)
    verdicts.assert_none()


BAD_TOKENS: list[tuple[str, dict[str, str | bytes], str, str]] = [
    ("no token", {}, "", "M_MISSING_TOKEN"),
    ("garbage token", {"Authorization": "Bearer garbage"}, "", "M_UNKNOWN_TOKEN"),
    ("empty bearer", {"Authorization": "Bearer "}, "", "M_MISSING_TOKEN"),
    ("basic auth", {"Authorization": "Basic dXNlcjpwYXNz"}, "", "M_MISSING_TOKEN"),
    ("binary token", {"Authorization": b"Bearer \xff\xfe\x80"}, "", "M_UNKNOWN_TOKEN"),
    ("10 KB token", {"Authorization": "Bearer " + "t" * 10_000}, "", "M_UNKNOWN_TOKEN"),
    ("garbage query token", {}, "access_token=garbage", "M_UNKNOWN_TOKEN"),
    ("invalid UTF-8 query token", {}, "access_token=%FF", "M_UNKNOWN_TOKEN"),
    ("NUL query token", {}, "access_token=a%00b", "M_UNKNOWN_TOKEN"),
]


def test_missing_garbage_and_revoked_tokens(world: World, verdicts: Verdicts) -> None:
    for endpoint in (e for e in ENDPOINTS if e.auth):
        path = request_path(endpoint, world.victim)
        body = encode(fill_body(endpoint.body, world.victim)) if endpoint.body is not None \
            else None
        cases = BAD_TOKENS + [("revoked token", {"Authorization": f"Bearer {world.revoked}"},
                               "", "M_UNKNOWN_TOKEN")]
        for what, headers, query, errcode in cases:
            target = path + ("&" if "?" in path else "?") + query if query else path
            response = world.call(endpoint.method, target, body, headers=headers)
            codes = frozenset({errcode, "M_INVALID_PARAM"} if "query" in what else {errcode})
            verdicts.check(f"{endpoint.name} [{what}]", response, {401, 400} if "query" in what
                           else {401}, codes)
    verdicts.assert_none()


def test_rooms_one_is_not_in(world: World, verdicts: Verdicts) -> None:
    unknown_room = f"!unknown{world.tag}:{world.server.server_name}"
    for endpoint in (e for e in ENDPOINTS if e.member):
        body = encode(fill_body(endpoint.body, world.victim)) if endpoint.body is not None \
            else None
        for ctx_name, ctx in (("victim", world.victim),
                              ("unknown", {**world.victim, "room": unknown_room})):
            response = world.call(endpoint.method, request_path(endpoint, ctx), body,
                                  world.attacker)
            statuses = range(200, 500) if endpoint.public else CLIENT_ERRORS
            verdicts.check(f"{endpoint.name} [{ctx_name} room]", response, statuses,
                           NOT_MEMBER_CODES, uia=endpoint.uia)
    verdicts.assert_none()


def test_unknown_endpoints_and_wrong_methods(world: World, verdicts: Verdicts) -> None:
    unrecognized = frozenset({"M_UNRECOGNIZED"})
    for template in UNKNOWN_PATHS:
        for method in ("GET", "POST", "PUT", "DELETE"):
            response = world.call(method, fill_path(template, world.scratch), b"{}",
                                  world.attacker)
            verdicts.check(f"{method} {template} [unknown]", response, {404}, unrecognized)
    templates = [(template_regex(e.path), e.method) for e in ENDPOINTS]
    for path in {request_path(e, world.scratch).split("?")[0] for e in ENDPOINTS}:
        known = {method for regex, method in templates if regex.fullmatch(path)}
        for method in sorted({"GET", "POST", "PUT", "DELETE", "PATCH"} - known):
            response = world.call(method, path, b"{}", world.attacker)
            verdicts.check(f"{method} {path} [wrong method]", response, {405}, unrecognized)
    verdicts.assert_none()


def test_cors_preflight_on_any_path(world: World) -> None:
    for path in [C + "/sync", C + "/nonexistent", "/", C + "/rooms/%00/state", "/x%FF"]:
        response = world.call("OPTIONS", path, headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert response.status == 200, (path, response.status)
        headers = response.headers
        assert headers["access-control-allow-origin"] == "*"
        allowed = {m.strip() for m in headers["access-control-allow-methods"].split(",")}
        assert {"GET", "POST", "PUT", "DELETE", "OPTIONS"} <= allowed
        allowed_headers = headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers and "content-type" in allowed_headers


def test_empty_body_is_an_empty_object(world: World) -> None:
    """matrix-nio sends POST /join, /leave, /forget and /logout with no body."""
    guest = register(world.server, f"{world.tag}nio", "pw")
    room = world.api("POST", "/createRoom", {"preset": "public_chat"}, world.owner)["room_id"]
    token = guest["access_token"]

    def post(path: str, content_length: bool) -> RawResponse:
        headers: dict[str, str | bytes] = {"Content-Length": "0"} if content_length else {}
        return world.call("POST", C + path, None, token, headers=headers)

    for content_length in (False, True):
        for path in (f"/join/{quote(room)}", f"/rooms/{quote(room)}/leave",
                     f"/rooms/{quote(room)}/join", f"/rooms/{quote(room)}/leave",
                     f"/rooms/{quote(room)}/forget"):
            response = post(path, content_length)
            assert response.status == 200, (path, content_length, response.body)
    assert post("/logout", content_length=False).status == 200
    whoami = world.call("GET", C + "/account/whoami", token=token)
    assert whoami.status == 401 and whoami.json()["errcode"] == "M_UNKNOWN_TOKEN"


# The table itself ---------------------------------------------------------------------


def test_samples_are_valid(server: HomeserverProcess) -> None:
    """Every sample request succeeds, so a 4xx for a changed field is that field's."""
    world = make_world(server, f"smp{next(_worlds)}")
    ordered = [e for e in ENDPOINTS if not e.destructive] + \
              [e for e in ENDPOINTS if e.destructive]
    wrong = []
    for endpoint in ordered:
        token = world.attacker
        if endpoint.path.endswith(("/logout", "/logout/all")):
            token = world.api("POST", "/login", {
                "type": "m.login.password", "password": world.login_password,
                "identifier": {"type": "m.id.user", "user": world.scratch["user"]}})[
                "access_token"]
        body = encode(fill_body(endpoint.body, world.scratch)) if endpoint.body is not None \
            else None
        response = world.call(endpoint.method, request_path(endpoint, world.scratch), body,
                              token if endpoint.auth else None)
        if response.status != endpoint.sample_status:
            wrong.append(f"{endpoint.name} -> {response.status} {response.body[:200]!r}")
    assert not wrong, "\n".join(wrong)


def test_every_route_is_in_the_table() -> None:
    ctx: dict[str, Any] = {name: "x" for name in (
        "room", "event", "user", "device", "spare_device2", "filter", "alias", "fresh_alias",
        "txn", "event_type", "state_key", "kind", "rule_id", "field", "receipt_type",
        "data_type")}
    samples = [(e.method, fill_path(e.path, ctx)) for e in ENDPOINTS]
    missing = [f"{method} {pattern.pattern}" for method, pattern in server_routes()
               if "/r0/" not in pattern.pattern
               and not any(m == method and pattern.match(p) for m, p in samples)]
    assert not missing, "routes missing from bad_input_table.py:\n" + "\n".join(missing)



# The WebSocket stream's requests: the same rules as their REST twins ------------------

STREAM = "/_guildhall/client/v1/stream"
DEEP = "<990 levels>"  # stands for [[[...]]] in a frame (json.dumps cannot nest so deep)


def _frames(world: World) -> list[tuple[str, Any, frozenset[str]]]:
    scratch, victim = world.scratch["room"], world.victim["room"]
    message = {"msgtype": "m.text", "body": "hi"}
    bad = frozenset({"M_BAD_JSON", "M_INVALID_PARAM", "M_MISSING_PARAM", "M_NOT_JSON"})
    send = {"room_id": scratch, "event_type": "m.room.message", "txn_id": "t", "content": message}
    state = {"room_id": scratch, "event_type": "org.example.test", "state_key": "k",
             "content": {"a": "b"}}
    return [
        ("NUL in a state key", ("state", {**state, "state_key": "a\u0000b"}), bad),
        ("NUL in an event type", ("state", {**state, "event_type": "a\u0000b"}), bad),
        ("NUL in a txn ID", ("send", {**send, "txn_id": "a\u0000b"}), bad),
        ("NUL in content", ("send", {**send, "content": {**message, "body": "a\u0000b"}}), bad),
        ("content 990 deep", ("send", {**send, "content": {**message, "x": DEEP}}), bad),
        ("float in content", ("send", {**send, "content": {**message, "x": 1.5}}), bad),
        ("huge integer", ("send", {**send, "content": {**message, "x": 2**60}}), bad),
        ("10 KB txn ID", ("send", {**send, "txn_id": "x" * 10_000}), bad),
        ("10 KB state key", ("state", {**state, "state_key": "x" * 10_000}), bad),
        ("odd room ID", ("send", {**send, "room_id": "..%2F.."}), bad | {"M_NOT_FOUND"}),
        ("victim room", ("send", {**send, "room_id": victim}), NOT_MEMBER_CODES),
        ("victim state", ("state", {**state, "room_id": victim}), NOT_MEMBER_CODES),
    ]


def test_stream_requests(world: World, verdicts: Verdicts) -> None:
    import asyncio

    import aiohttp

    async def scenario() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            ws = await http.ws_connect(world.server.base_url + STREAM,
                                       headers={"Authorization": f"Bearer {world.attacker}"})
            await ws.receive_json(timeout=10)  # the initial sync
            for i, (what, (method, params), codes) in enumerate(_frames(world)):
                frame = json.dumps({"id": f"r{i}", "method": method, "params": params})
                await ws.send_str(frame.replace(json.dumps(DEEP), "[" * 990 + "]" * 990))
                # Skip sync frames; a frame too broken to parse gets an answer without id.
                while (reply := await ws.receive_json(timeout=10)).get("type") == "sync":
                    pass
                assert reply.get("id") in (f"r{i}", None), reply
                verdicts.count += 1
                errcode = reply.get("error", {}).get("errcode")
                if errcode not in codes:
                    verdicts.failures.append(f"stream {what} -> {reply}")
            await ws.close()

    asyncio.run(scenario())
    verdicts.assert_none()
