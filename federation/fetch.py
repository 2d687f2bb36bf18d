"""Reading from other servers (spec: server-server API, "Retrieving events",
"Backfilling and retrieving missing events", "Querying for information"): one
function per endpoint, each checking the answer's shape.

What the functions return is only shaped, not believed: PDUs still go through
the receipt checks (format, signatures, hashes, auth) before anything uses them.
A malformed answer raises `InvalidResponseError`; errors of the transport
(`HttpResponseError`, `DestinationUnreachable`) pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from federation.protocol import identifiers

V1 = "/_matrix/federation/v1"

Query = Mapping[str, "str | list[str]"]


class JsonClient(Protocol):
    """The part of `federation.transport.client.FederationClient` these reads use."""

    async def get_json(self, destination: str, path: str, query: Query | None = None, *,
                       timeout_s: float = 60.0) -> Any: ...

    async def post_json(self, destination: str, path: str, body: Any,
                        query: Query | None = None, *, timeout_s: float = 60.0) -> Any: ...


class InvalidResponseError(Exception):
    """A remote server answered 200 with a body that is not what the spec says."""

    def __init__(self, destination: str, path: str, problem: str) -> None:
        super().__init__(f"{destination} answered {path} with {problem}")
        self.destination = destination
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class DirectoryAnswer:
    room_id: str
    servers: list[str]


def _segment(value: str) -> str:
    return quote(value, safe="")


class _Checker:
    """Shape checks of one answer, naming the destination and path in errors."""

    def __init__(self, destination: str, path: str) -> None:
        self.destination = destination
        self.path = path

    def fail(self, problem: str) -> InvalidResponseError:
        return InvalidResponseError(self.destination, self.path, problem)

    def object(self, value: Any, what: str = "the body") -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{what} not a JSON object")
        return value

    def field(self, body: dict[str, Any], name: str, kind: type) -> Any:
        value = body.get(name)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise self.fail(f"`{name}` missing or not a {kind.__name__}")
        return value

    def pdus(self, body: dict[str, Any], name: str) -> list[dict[str, Any]]:
        items = self.field(body, name, list)
        if not all(isinstance(item, dict) for item in items):
            raise self.fail(f"`{name}` holding something other than PDU objects")
        return list(items)

    def strings(self, body: dict[str, Any], name: str) -> list[str]:
        items = self.field(body, name, list)
        if not all(isinstance(item, str) for item in items):
            raise self.fail(f"`{name}` holding something other than strings")
        return list(items)


# Events --------------------------------------------------------------------------------


async def fetch_event(client: JsonClient, destination: str, event_id: str) -> dict[str, Any]:
    """`GET /event/{eventId}`: the one PDU (not yet verified)."""
    path = f"{V1}/event/{_segment(event_id)}"
    check = _Checker(destination, path)
    pdus = check.pdus(check.object(await client.get_json(destination, path)), "pdus")
    if len(pdus) != 1:
        raise check.fail(f"{len(pdus)} PDUs instead of one")
    return pdus[0]


async def fetch_state_ids(client: JsonClient, destination: str, room_id: str, event_id: str
                          ) -> tuple[list[str], list[str]]:
    """`GET /state_ids/{roomId}?event_id=`: (state before the event, its auth chain) IDs."""
    path = f"{V1}/state_ids/{_segment(room_id)}"
    check = _Checker(destination, path)
    body = check.object(await client.get_json(destination, path, {"event_id": event_id}))
    return check.strings(body, "pdu_ids"), check.strings(body, "auth_chain_ids")


async def fetch_state(client: JsonClient, destination: str, room_id: str, event_id: str
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`GET /state/{roomId}?event_id=`: (state PDUs before the event, auth chain PDUs)."""
    path = f"{V1}/state/{_segment(room_id)}"
    check = _Checker(destination, path)
    body = check.object(await client.get_json(destination, path, {"event_id": event_id}))
    return check.pdus(body, "pdus"), check.pdus(body, "auth_chain")


async def fetch_event_auth(client: JsonClient, destination: str, room_id: str, event_id: str
                           ) -> list[dict[str, Any]]:
    """`GET /event_auth/{roomId}/{eventId}`: the event's auth chain PDUs."""
    path = f"{V1}/event_auth/{_segment(room_id)}/{_segment(event_id)}"
    check = _Checker(destination, path)
    return check.pdus(check.object(await client.get_json(destination, path)), "auth_chain")


async def fetch_missing_events(client: JsonClient, destination: str, room_id: str,
                               earliest: Iterable[str], latest: Iterable[str], limit: int = 10,
                               min_depth: int = 0) -> list[dict[str, Any]]:
    """`POST /get_missing_events/{roomId}`: PDUs between `earliest` and `latest`."""
    path = f"{V1}/get_missing_events/{_segment(room_id)}"
    check = _Checker(destination, path)
    body = {"earliest_events": list(earliest), "latest_events": list(latest),
            "limit": limit, "min_depth": min_depth}
    return check.pdus(check.object(await client.post_json(destination, path, body)), "events")


async def fetch_backfill(client: JsonClient, destination: str, room_id: str,
                         from_ids: Iterable[str], limit: int) -> list[dict[str, Any]]:
    """`GET /backfill/{roomId}?v=&limit=`: `from_ids` and the PDUs before them."""
    path = f"{V1}/backfill/{_segment(room_id)}"
    check = _Checker(destination, path)
    query = {"v": list(from_ids), "limit": str(limit)}
    return check.pdus(check.object(await client.get_json(destination, path, query)), "pdus")


# Queries -------------------------------------------------------------------------------


async def query_directory(client: JsonClient, destination: str, alias: str
                          ) -> DirectoryAnswer:
    """`GET /query/directory?room_alias=`: the room an alias names and servers in it."""
    path = f"{V1}/query/directory"
    check = _Checker(destination, path)
    body = check.object(await client.get_json(destination, path, {"room_alias": alias}))
    return DirectoryAnswer(check.field(body, "room_id", str), check.strings(body, "servers"))


async def query_profile(client: JsonClient, destination: str, user_id: str,
                        field: str | None = None) -> dict[str, str]:
    """`GET /query/profile?user_id=&field=`: the profile's string fields (a
    `displayname` or `avatar_url` of another type is dropped)."""
    path = f"{V1}/query/profile"
    check = _Checker(destination, path)
    query = {"user_id": user_id, **({"field": field} if field is not None else {})}
    body = check.object(await client.get_json(destination, path, query))
    return {k: v for k, v in body.items() if isinstance(v, str)}


async def query_user_devices(client: JsonClient, destination: str, user_id: str
                             ) -> dict[str, Any]:
    """`GET /user/devices/{userId}`: `{user_id, stream_id, devices}` (keys as given)."""
    path = f"{V1}/user/devices/{_segment(user_id)}"
    check = _Checker(destination, path)
    body = check.object(await client.get_json(destination, path))
    if check.field(body, "user_id", str) != user_id:
        raise check.fail("another user's devices")
    check.field(body, "stream_id", int)
    for device in check.field(body, "devices", list):
        check.field(check.object(device, "a device"), "device_id", str)
    return body


async def query_public_rooms(client: JsonClient, destination: str, body: dict[str, Any]
                             ) -> dict[str, Any]:
    """`POST /publicRooms`: a page of the server's room directory (`chunk` entries
    that are objects with a string `room_id`; other entries are dropped)."""
    path = f"{V1}/publicRooms"
    check = _Checker(destination, path)
    answer = check.object(await client.post_json(destination, path, body))
    chunk = [r for r in check.field(answer, "chunk", list)
             if isinstance(r, dict) and isinstance(r.get("room_id"), str)]
    page: dict[str, Any] = {"chunk": chunk}
    for name in ("next_batch", "prev_batch"):
        if isinstance(answer.get(name), str):
            page[name] = answer[name]
    if isinstance(answer.get("total_room_count_estimate"), int):
        page["total_room_count_estimate"] = answer["total_room_count_estimate"]
    return page


def _users_of(destination: str, check: _Checker, value: Any, what: str) -> dict[str, Any]:
    """`user -> object` entries for users of `destination` (others are dropped:
    a server speaks only for its own users)."""
    entries = check.object(value, what)
    return {user: entry for user, entry in entries.items()
            if isinstance(entry, dict) and identifiers.is_valid_user_id(user)
            and identifiers.server_of(user) == destination}


async def query_keys(client: JsonClient, destination: str, device_keys: dict[str, list[str]]
                     ) -> dict[str, Any]:
    """`POST /user/keys/query`: `user -> device -> keys` of the server's users."""
    path = f"{V1}/user/keys/query"
    check = _Checker(destination, path)
    answer = check.object(await client.post_json(destination, path,
                                                 {"device_keys": device_keys}))
    return _users_of(destination, check, answer.get("device_keys", {}), "device_keys")


async def claim_keys(client: JsonClient, destination: str,
                     one_time_keys: dict[str, dict[str, str]]) -> dict[str, Any]:
    """`POST /user/keys/claim`: `user -> device -> {key_id: key}` claimed on the server."""
    path = f"{V1}/user/keys/claim"
    check = _Checker(destination, path)
    answer = check.object(await client.post_json(destination, path,
                                                 {"one_time_keys": one_time_keys}))
    return _users_of(destination, check, answer.get("one_time_keys", {}), "one_time_keys")


async def fetch_hierarchy(client: JsonClient, destination: str, room_id: str,
                          suggested_only: bool = False) -> dict[str, Any]:
    """`GET /hierarchy/{roomId}`: `{room, children, inaccessible_children}`, with
    `room` about `room_id`, malformed children and child IDs dropped."""
    path = f"{V1}/hierarchy/{_segment(room_id)}"
    check = _Checker(destination, path)
    query = {"suggested_only": "true" if suggested_only else "false"}
    answer = check.object(await client.get_json(destination, path, query))
    room = check.object(answer.get("room"), "`room`")
    if room.get("room_id") != room_id:
        raise check.fail("a summary of another room")
    room["children_state"] = [e for e in check.field(room, "children_state", list)
                              if isinstance(e, dict) and isinstance(e.get("state_key"), str)]
    children = answer.get("children", [])
    inaccessible = answer.get("inaccessible_children", [])
    return {"room": room,
            "children": [c for c in children if isinstance(c, dict)
                         and isinstance(c.get("room_id"), str)] if isinstance(children, list)
            else [],
            "inaccessible_children": [r for r in inaccessible if isinstance(r, str)]
            if isinstance(inaccessible, list) else []}
