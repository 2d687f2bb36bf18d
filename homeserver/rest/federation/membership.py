"""Membership handshakes: make_/send_ join, leave and knock, and invites."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from twisted.web.http import Request

from federation.membership import FederationMembership

from ..http import JsonRouter, parse_json_body

Authenticate = Callable[[Request], Awaitable[str]]
V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


def _versions(request: Request) -> list[str]:
    # Spec: without any `ver`, only room version 1 is assumed supported.
    return [v.decode("utf-8", "replace") for v in request.args.get(b"ver", [])] or ["1"]


def register(router: JsonRouter, authenticate: Authenticate,
             membership: FederationMembership) -> None:
    def make(kind: str) -> Any:
        async def handle(request: Request, room_id: str, user_id: str) -> tuple[int, Any]:
            origin = await authenticate(request)
            versions = _versions(request) if kind in ("join", "knock") else None
            return 200, await membership.make(kind, origin, room_id, user_id, versions)
        return handle

    def send(kind: str, v1: bool) -> Any:
        async def handle(request: Request, room_id: str, event_id: str) -> tuple[int, Any]:
            origin = await authenticate(request)
            body = parse_json_body(request, allow_empty=False)
            answer = await membership.send(kind, origin, room_id, event_id, body)
            # v1 of send_join/send_leave wraps the answer as [200, answer].
            return 200, ([200, answer] if v1 and kind != "knock" else answer)
        return handle

    def invite(v1: bool) -> Any:
        async def handle(request: Request, room_id: str, event_id: str) -> tuple[int, Any]:
            origin = await authenticate(request)
            body = parse_json_body(request, allow_empty=False)
            if v1:  # v1's body is the bare event; the room version is the room's
                body = {"event": body, "room_version": body.get("room_version", "1"),
                        "invite_room_state": (body.get("unsigned") or {}).get(
                            "invite_room_state", [])}
            answer = await membership.on_invite(origin, room_id, event_id, body)
            return 200, ([200, answer] if v1 else answer)
        return handle

    for kind in ("join", "leave", "knock"):
        schema = f"federation/send{kind.capitalize()}"
        router.add("GET", f"{V1}/make_{kind}/{{room_id}}/{{user_id}}", make(kind))
        router.add("PUT", f"{V1}/send_{kind}/{{room_id}}/{{event_id}}", send(kind, True),
                   body=schema)
        if kind != "knock":
            router.add("PUT", f"{V2}/send_{kind}/{{room_id}}/{{event_id}}", send(kind, False),
                       body=schema)
    router.add("PUT", f"{V2}/invite/{{room_id}}/{{event_id}}", invite(False),
               body="federation/sendInviteV2")
    router.add("PUT", f"{V1}/invite/{{room_id}}/{{event_id}}", invite(True),
               body="federation/sendInviteV1")
