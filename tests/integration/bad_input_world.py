"""The world the bad-input suite attacks, and how it checks the answers.

A victim room the attacker is not in, a scratch room of the attacker's, tokens
(valid, revoked), and the placeholders the endpoint table's paths and bodies are
filled from; `Verdicts` collects every answer that breaks the rules.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.harness import HomeserverProcess
from tests.integration.bad_input_table import C, Endpoint
from tests.integration.rawhttp import RawResponse, raw_request

CLIENT_ERRORS = range(400, 500)

_counter = itertools.count()


def _fresh() -> str:
    return f"f{next(_counter)}"


# The world: users, a victim room the attacker is not in, a scratch room of theirs --


@dataclass
class World:
    server: HomeserverProcess
    attacker: str  # the attacker's access token
    owner: str  # the victim room owner's token
    revoked: str  # a token of the attacker's, logged out
    scratch: dict[str, Any]  # placeholders for the attacker's own things
    victim: dict[str, Any]  # the same placeholders, pointing at the victim's things
    tag: str
    login_password: str = "correct horse"

    def call(self, method: str, path: str, body: bytes | None = None, token: str | None = None,
             headers: dict[str, str | bytes] | None = None) -> RawResponse:
        return raw_request(self.server.base_url, method, path, body, headers=headers,
                           token=token)

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """A request that must succeed (setting the world up or reading it)."""
        raw = json.dumps(body).encode() if body is not None else None
        response = self.call(method, C + path, raw, token)
        assert response.status == 200, (method, path, response.status, response.body[:300])
        return response.json()


def register(server: HomeserverProcess, name: str, password: str) -> dict[str, Any]:
    body = json.dumps({"username": name, "password": password,
                       "auth": {"type": "m.login.dummy"}}).encode()
    response = raw_request(server.base_url, "POST", C + "/register", body)
    assert response.status == 200, response.body
    return dict(response.json())


def make_world(server: HomeserverProcess, tag: str) -> World:
    password = "correct horse"
    owner = register(server, f"{tag}own", password)
    attacker = register(server, f"{tag}att", password)
    helper = register(server, f"{tag}hlp", password)
    world = World(server, attacker["access_token"], owner["access_token"], "", {}, {}, tag)
    me, own = attacker["user_id"], owner["user_id"]

    victim = world.api("POST", "/createRoom", {"preset": "private_chat", "name": "Victim",
                                               "topic": "secret", "room_alias_name": f"v{tag}"},
                       owner["access_token"])["room_id"]
    victim_event = ""
    for i in range(3):
        victim_event = world.api("PUT", f"/rooms/{quote(victim)}/send/m.room.message/v{i}",
                                 {"msgtype": "m.text", "body": f"secret {i}"},
                                 owner["access_token"])["event_id"]

    scratch = world.api("POST", "/createRoom", {"name": "Scratch", "invite": [helper["user_id"]]},
                        world.attacker)["room_id"]
    world.api("POST", f"/rooms/{quote(scratch)}/join", {}, helper["access_token"])
    scratch_event = world.api("PUT", f"/rooms/{quote(scratch)}/send/m.room.message/s0",
                              {"msgtype": "m.text", "body": "mine"}, world.attacker)["event_id"]
    scratch_alias = f"#s{tag}:{server.server_name}"
    world.api("PUT", f"/directory/room/{quote(scratch_alias)}", {"room_id": scratch},
              world.attacker)
    power_levels = world.api("GET", f"/rooms/{quote(scratch)}/state/m.room.power_levels/",
                             token=world.attacker)
    filter_id = world.api("POST", f"/user/{quote(me)}/filter", {}, world.attacker)["filter_id"]
    world.api("PUT", "/pushrules/global/content/my.cake", {"actions": ["notify"],
                                                           "pattern": "cake"}, world.attacker)

    def login() -> dict[str, Any]:
        return dict(world.api("POST", "/login", {"type": "m.login.password", "password": password,
                                                 "identifier": {"type": "m.id.user",
                                                                "user": me}}))

    spare, spare2, revoked = login(), login(), login()
    world.api("POST", "/logout", token=revoked["access_token"])
    world.revoked = revoked["access_token"]
    world.scratch = {
        "room": scratch, "event": scratch_event, "user": me, "helper": helper["user_id"],
        "device": attacker["device_id"], "spare_device": spare["device_id"],
        "spare_device2": spare2["device_id"], "filter": filter_id, "alias": scratch_alias,
        "fresh": _fresh, "fresh_alias": lambda: f"#{_fresh()}{tag}:{server.server_name}",
        "txn": _fresh, "event_type": "org.example.test", "state_key": "k", "kind": "content",
        "rule_id": "my.cake", "power_levels": power_levels, "field": "displayname",
        "receipt_type": "m.read", "data_type": "org.example.data",
        "password_auth": {"type": "m.login.password", "password": password,
                          "identifier": {"type": "m.id.user", "user": me}},
    }
    world.victim = {**world.scratch, "room": victim, "event": victim_event, "helper": own,
                    "alias": f"#v{tag}:{server.server_name}"}
    return world


# Filling templates ------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _value(ctx: dict[str, Any], name: str) -> Any:
    value = ctx[name]
    return value() if callable(value) else value


def fill_path(template: str, ctx: dict[str, Any], raw: dict[str, str] | None = None) -> str:
    """Placeholders percent-encoded from ctx, or exactly as given in `raw`."""
    raw = raw or {}
    return _PLACEHOLDER.sub(lambda m: raw[m.group(1)] if m.group(1) in raw
                            else quote(str(_value(ctx, m.group(1))), safe=""), template)


def fill_body(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return _value(ctx, whole.group(1))
        return _PLACEHOLDER.sub(lambda m: str(_value(ctx, m.group(1))), value)
    if isinstance(value, dict):
        return {fill_body(k, ctx): fill_body(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_body(v, ctx) for v in value]
    return value


def request_path(endpoint: Endpoint, ctx: dict[str, Any], raw: dict[str, str] | None = None,
                 query: dict[str, str] | None = None) -> str:
    path = fill_path(endpoint.path, ctx, raw)
    params = {k: quote(str(fill_body(v, ctx)), safe="")
              for k, v in endpoint.sample_query.items()}
    params.update(query or {})
    if params:
        path += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    return path


def template_regex(template: str) -> re.Pattern[str]:
    """The paths a table template stands for (a state key may hold slashes)."""
    parts = re.split(r"(\{\w+\})", template)
    return re.compile("".join(
        (".*" if part == "{state_key}" else "[^/]*") if _PLACEHOLDER.fullmatch(part)
        else re.escape(part) for part in parts))


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


# Checking answers -------------------------------------------------------------------


@dataclass
class Verdicts:
    """Collects every wrong answer, so one run shows them all."""

    failures: list[str] = field(default_factory=list)
    count: int = 0

    def check(self, what: str, response: RawResponse, statuses: range | set[int],
              codes: frozenset[str] | None, uia: bool = False) -> None:
        self.count += 1
        problem = _problem(response, statuses, codes, uia)
        if problem:
            self.failures.append(f"{what} -> {response.status} {response.body[:160]!r}: "
                                 f"{problem}")

    def assert_none(self) -> None:
        assert self.count > 0
        assert not self.failures, (f"{len(self.failures)} of {self.count} answers wrong:\n"
                                   + "\n".join(self.failures[:80]))


def _problem(response: RawResponse, statuses: range | set[int],
             codes: frozenset[str] | None, uia: bool) -> str:
    if response.status >= 500:
        return "server error"
    if response.headers.get("access-control-allow-origin") != "*":
        return "no CORS header"
    if not response.headers.get("content-type", "").startswith("application/json"):
        return "not JSON"
    if response.status not in statuses:
        return f"status not in {statuses}"
    if response.status < 400:
        return ""
    body = response.json()
    if not isinstance(body, dict):
        return "error body is not a JSON object"
    if uia and response.status == 401 and "flows" in body:
        return ""
    errcode = body.get("errcode")
    if not isinstance(errcode, str) or not errcode.startswith("M_"):
        return "no errcode"
    if codes is not None and errcode not in codes:
        return f"errcode {errcode} not in {sorted(codes)}"
    return ""


def victim_snapshot(world: World) -> Any:
    room = quote(world.victim["room"])
    state = world.api("GET", f"/rooms/{room}/state", token=world.owner)
    messages = world.api("GET", f"/rooms/{room}/messages?dir=b&limit=1000", token=world.owner)
    alias = world.api("GET", f"/directory/room/{quote(world.victim['alias'])}")
    # Without `unsigned`: its `age` grows as the test runs.
    return (sorted((e["event_id"], json.dumps({**e, "unsigned": None}, sort_keys=True))
                   for e in state),
            [(e["event_id"], e.get("content")) for e in messages["chunk"]], alias["room_id"])


def server_routes() -> list[tuple[str, re.Pattern[str]]]:
    """(method, path regex) of every route, from a server built in this process."""
    from twisted.internet.testing import MemoryReactorClock

    from homeserver import config as config_module
    from homeserver.app import build
    from homeserver.rest.http import JsonRouter

    data_dir = Path(tempfile.mkdtemp(prefix="guildhall-routes-"))
    hs = build(config_module.load(config_module.generate(server_name="localhost",
                                                         data_dir=data_dir)),
               MemoryReactorClock())
    found: list[tuple[str, re.Pattern[str]]] = []

    def walk(resource: Any, seen: set[int]) -> None:
        if id(resource) in seen:
            return
        seen.add(id(resource))
        if isinstance(resource, JsonRouter):
            found.extend((r.method, r.pattern) for r in resource._routes)
        for value in vars(resource).values():
            for child in (value.values() if isinstance(value, dict) else [value]):
                if callable(getattr(child, "render", None)):  # a resource of the site
                    walk(child, seen)

    try:
        walk(hs.site.root, set())
    finally:
        hs.db.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return found
