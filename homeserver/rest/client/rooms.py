"""Room resources: create, membership, send, state, redact and reads."""

from __future__ import annotations

from typing import Any

from twisted.web.http import Request

from federation.protocol import canonical_json, identifiers
from federation.protocol.errors import Codes, MatrixError

from ...handlers.auth import Authenticator
from ...handlers.membership import MembershipHandler
from ...handlers.ratelimit import RateLimiter
from ...handlers.room_creation import RoomCreationHandler
from ...handlers.room_events import RoomEventHandler
from ...handlers.room_reads import RoomReadHandler
from ...sync.filtering import EventFilter
from ...sync.tokens import SyncToken, TopologicalToken
from ..http import JsonRouter, parse_json_body, query_arg, query_int
from .common import limited_requester, requester, room_id_param


def _event_id(event_id: str) -> str:
    if not identifiers.is_valid_event_id(event_id):
        raise MatrixError(400, Codes.INVALID_PARAM, "Invalid event ID")
    return event_id


MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")
# The membership actions on another user, and their request schemas.
TARGET_ACTIONS = {"invite": "client/inviteUser", "kick": "client/kick", "ban": "client/ban",
                  "unban": "client/unban"}


def _via(request: Request) -> list[str]:
    """Servers to join through: `via` (v1.12+) and the older `server_name`."""
    names: list[str] = []
    for key in (b"via", b"server_name"):
        for raw in request.args.get(key, []):
            name = raw.decode("utf-8", "replace")
            if identifiers.is_valid_server_name(name):
                names.append(name)
    return names


def _membership_arg(request: Request, name: str) -> str | None:
    value = query_arg(request, name)
    if value is not None and value not in MEMBERSHIPS:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{name} must be one of {MEMBERSHIPS}")
    return value


def _check_token_arg(request: Request, name: str) -> None:
    """Tokens this server never uses for an endpoint must still be well formed."""
    text = query_arg(request, name)
    if text is not None:
        (TopologicalToken if text.startswith("t") else SyncToken).parse(text)


def _event_filter(request: Request) -> EventFilter:
    text = query_arg(request, "filter")
    if not text:
        return EventFilter()
    try:
        raw = canonical_json.parse(text)
    except MatrixError as exc:
        raise MatrixError(400, Codes.BAD_JSON, "filter is not JSON") from exc
    return EventFilter.parse(raw)


def register(router: JsonRouter, auth: Authenticator, creation: RoomCreationHandler,
             membership: MembershipHandler, room_events: RoomEventHandler,
             reads: RoomReadHandler, limiter: RateLimiter | None = None) -> None:
    async def create_room(request: Request) -> tuple[int, Any]:
        who = await limited_requester(auth, request, limiter)
        room_id, alias = await creation.create_room(who.user_id, parse_json_body(request))
        body: dict[str, Any] = {"room_id": room_id}
        if alias:
            body["room_alias"] = alias
        return 200, body

    async def join_by_id_or_alias(request: Request, target: str) -> tuple[int, Any]:
        who = await limited_requester(auth, request, limiter)
        body = parse_json_body(request)
        room_id, servers = await membership.resolve_room_and_servers(target)
        await membership.join(who.user_id, room_id, body.get("reason"),
                              via=[*_via(request), *servers])
        return 200, {"room_id": room_id}

    async def knock(request: Request, target: str) -> tuple[int, Any]:
        who = await limited_requester(auth, request, limiter)
        body = parse_json_body(request)
        room_id, servers = await membership.resolve_room_and_servers(target)
        await membership.knock(who.user_id, room_id, body.get("reason"),
                               via=[*_via(request), *servers])
        return 200, {"room_id": room_id}

    async def join_room(request: Request, room_id: str) -> tuple[int, Any]:
        who = await limited_requester(auth, request, limiter)
        body = parse_json_body(request)
        await membership.join(who.user_id, room_id_param(room_id), body.get("reason"),
                              via=_via(request))
        return 200, {"room_id": room_id}

    async def leave(request: Request, room_id: str) -> tuple[int, Any]:
        who = await limited_requester(auth, request, limiter)
        body = parse_json_body(request)
        await membership.leave(who.user_id, room_id_param(room_id), body.get("reason"))
        return 200, {}

    async def forget(request: Request, room_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        parse_json_body(request)
        await membership.forget(who.user_id, room_id_param(room_id))
        return 200, {}

    def target_action(action: str) -> Any:
        async def handle(request: Request, room_id: str) -> tuple[int, Any]:
            who = await limited_requester(auth, request, limiter)
            body = parse_json_body(request)
            target = body["user_id"]
            if not identifiers.is_valid_user_id(target):
                raise MatrixError(400, Codes.INVALID_PARAM, "Invalid user_id")
            reason = body.get("reason")
            room = room_id_param(room_id)
            if action == "invite":
                await membership.invite(who.user_id, room, target, reason)
            else:
                await getattr(membership, action)(who.user_id, room, target, reason)
            return 200, {}

        return handle

    async def joined_rooms(request: Request) -> tuple[int, Any]:
        who = await requester(auth, request)
        rooms = await membership.joined_rooms(who.user_id)
        return 200, {"joined_rooms": sorted(rooms)}

    async def send(request: Request, room_id: str, event_type: str, txn_id: str
                   ) -> tuple[int, Any]:
        who = await limited_requester(auth, request, limiter)
        content = parse_json_body(request)
        event_id = await room_events.send_message(who.user_id, who.device_id,
                                                  room_id_param(room_id), event_type, txn_id,
                                                  content)
        return 200, {"event_id": event_id}

    async def put_state(request: Request, room_id: str, event_type: str, state_key: str = ""
                        ) -> tuple[int, Any]:
        who = await limited_requester(auth, request, limiter)
        content = parse_json_body(request, allow_empty=False)
        event_id = await room_events.send_state(who.user_id, room_id_param(room_id), event_type,
                                                state_key, content)
        return 200, {"event_id": event_id}

    async def get_state(request: Request, room_id: str, event_type: str, state_key: str = ""
                        ) -> tuple[int, Any]:
        who = await requester(auth, request)
        stored = await reads.state_event(who.user_id, room_id_param(room_id), event_type, state_key)
        if query_arg(request, "format") == "event":
            return 200, (await reads.serialize([stored]))[0]
        serialized = (await reads.serialize([stored]))[0]
        return 200, serialized["content"]

    async def all_state(request: Request, room_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, await reads.state(who.user_id, room_id_param(room_id))

    async def redact(request: Request, room_id: str, event_id: str, txn_id: str
                     ) -> tuple[int, Any]:
        who = await limited_requester(auth, request, limiter)
        body = parse_json_body(request)
        redaction_id = await room_events.redact(who.user_id, who.device_id, room_id_param(room_id),
                                                _event_id(event_id), txn_id,
                                                body.get("reason"))
        return 200, {"event_id": redaction_id}

    async def messages(request: Request, room_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        direction = query_arg(request, "dir", "b")
        if direction not in ("b", "f"):
            raise MatrixError(400, Codes.INVALID_PARAM, "dir must be b or f")
        limit = query_int(request, "limit", 10, minimum=0, maximum=1000) or 0
        return 200, await reads.messages(
            who.user_id, who.device_id, room_id_param(room_id), query_arg(request, "from"),
            query_arg(request, "to"), direction == "b", limit, _event_filter(request))

    async def context(request: Request, room_id: str, event_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        limit = query_int(request, "limit", 10, minimum=0, maximum=100) or 0
        return 200, await reads.context(who.user_id, room_id_param(room_id), event_id, limit,
                                        _event_filter(request))

    async def get_event(request: Request, room_id: str, event_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, await reads.event(who.user_id, room_id_param(room_id), event_id)

    async def members(request: Request, room_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        _check_token_arg(request, "at")
        chunk = await reads.members(who.user_id, room_id_param(room_id),
                                    _membership_arg(request, "membership"),
                                    _membership_arg(request, "not_membership"))
        return 200, {"chunk": chunk}

    async def joined_members(request: Request, room_id: str) -> tuple[int, Any]:
        who = await requester(auth, request)
        return 200, {"joined": await reads.joined_members(who.user_id, room_id_param(room_id))}

    async def relations(request: Request, room_id: str, event_id: str, rel_type: str = "",
                        event_type: str = "") -> tuple[int, Any]:
        who = await requester(auth, request)
        limit = query_int(request, "limit", 50, minimum=1, maximum=1000) or 50
        if query_arg(request, "dir", "b") not in ("b", "f"):
            raise MatrixError(400, Codes.INVALID_PARAM, "dir must be b or f")
        _check_token_arg(request, "from")
        _check_token_arg(request, "to")
        return 200, await reads.relations(who.user_id, room_id_param(room_id), event_id,
                                          rel_type or None, event_type or None, limit)

    for prefix in ("/_matrix/client/v3", "/_matrix/client/r0"):
        r = f"{prefix}/rooms/{{room_id}}"
        router.add("POST", f"{prefix}/createRoom", create_room, body="client/createRoom")
        router.add("POST", f"{prefix}/join/{{target}}", join_by_id_or_alias,
                   body="client/joinRoom")
        router.add("POST", f"{prefix}/knock/{{target}}", knock, body="client/knockRoom")
        router.add("GET", f"{prefix}/joined_rooms", joined_rooms)
        router.add("POST", f"{r}/join", join_room, body="client/joinRoomById")
        router.add("POST", f"{r}/leave", leave, body="client/leaveRoom")
        router.add("POST", f"{r}/forget", forget, body="client/forgetRoom")
        for action, schema in TARGET_ACTIONS.items():
            router.add("POST", f"{r}/{action}", target_action(action), body=schema)
        router.add("PUT", f"{r}/send/{{event_type}}/{{txn_id}}", send, body="client/sendMessage")
        router.add("GET", f"{r}/state", all_state)
        for state in (f"{r}/state/{{event_type}}", f"{r}/state/{{event_type}}/",
                      f"{r}/state/{{event_type}}/{{state_key:*}}"):
            router.add("PUT", state, put_state, body="client/setRoomStateWithKey")
        router.add("GET", f"{r}/state/{{event_type}}", get_state)
        router.add("GET", f"{r}/state/{{event_type}}/", get_state)
        router.add("GET", f"{r}/state/{{event_type}}/{{state_key:*}}", get_state)
        router.add("PUT", f"{r}/redact/{{event_id}}/{{txn_id}}", redact, body="client/redactEvent")
        router.add("GET", f"{r}/messages", messages)
        router.add("GET", f"{r}/context/{{event_id}}", context)
        router.add("GET", f"{r}/event/{{event_id}}", get_event)
        router.add("GET", f"{r}/members", members)
        router.add("GET", f"{r}/joined_members", joined_members)
    for prefix in ("/_matrix/client/v1",):
        r = f"{prefix}/rooms/{{room_id}}"
        router.add("GET", f"{r}/relations/{{event_id}}", relations)
        router.add("GET", f"{r}/relations/{{event_id}}/{{rel_type}}", relations)
        router.add("GET", f"{r}/relations/{{event_id}}/{{rel_type}}/{{event_type}}", relations)
