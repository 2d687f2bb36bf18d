"""Membership handshakes over federation, both sides.

Resident side (a room we hold): make_join/send_join, make_leave/send_leave,
make_knock/send_knock, and receiving invites for our users.
Joining side (a room another server holds): join, leave (or reject an
invite), knock, and countersigning our invites of remote users.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping, Protocol

from federation import fetch
from federation.ports import RoomEvents
from federation.protocol import identifiers
from federation.protocol.auth_rules import check_auth_rules
from federation.protocol.errors import AuthError, Codes, MatrixError
from federation.protocol.events import CREATE_KEY, JOIN_RULES_KEY, MEMBER, Event, StateKey
from federation.protocol.power_levels import named_level, user_power_level
from federation.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from federation.protocol.signing import ServerKey, hash_and_sign_event, sign_event
from federation.receiver import PduDropped, Receiver
from federation.remote_queries import QUERY_FAILURES, as_matrix_error
from federation.transport.client import encode_path
from federation.transport.errors import DestinationUnreachable, HttpResponseError

logger = logging.getLogger(__name__)

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


class MembershipRooms(RoomEvents, Protocol):
    async def template(self, room_id: str, event_type: str, sender: str, state_key: str,
                       content: Mapping[str, Any]) -> tuple[RoomVersion, dict[str, Any], Event]:
        ...

    async def persist_remote_membership(self, event: Event) -> None: ...

    async def member_content(self, user_id: str) -> dict[str, Any]:
        """displayname/avatar_url for a local user's join."""


class FederationMembership:
    def __init__(self, rooms: MembershipRooms, receiver: Receiver, client: Any,
                 key: ServerKey, clock: Any) -> None:
        self._rooms = rooms
        self._receiver = receiver
        self._client = client
        self._key = key
        self._clock = clock

    @property
    def server_name(self) -> str:
        return self._key.server_name

    # Resident side -------------------------------------------------------------

    async def make(self, membership: str, origin: str, room_id: str, user_id: str,
                   versions: list[str] | None = None) -> dict[str, Any]:
        """make_join / make_leave / make_knock: a template for the origin to sign."""
        _require_user_on(origin, user_id)
        version = await self._rooms.room_version(room_id)
        if version is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Unknown room")
        await self._require_acl(room_id, origin)
        if versions is not None and version.identifier not in versions:
            raise MatrixError(400, Codes.INCOMPATIBLE_ROOM_VERSION,
                              "Your server does not support this room's version",
                              room_version=version.identifier)
        content: dict[str, Any] = {"membership": membership}
        if membership == "join":
            authoriser = await self._join_authoriser(room_id, user_id)
            if authoriser is not None:
                content["join_authorised_via_users_server"] = authoriser
        _, pdu, event = await self._rooms.template(room_id, MEMBER, user_id, user_id, content)
        if not event.prev_event_ids:
            raise MatrixError(404, Codes.NOT_FOUND, "This server is not in the room")
        if "join_authorised_via_users_server" in content:
            # We will countersign it on send_join: judge it as countersigned.
            event = Event(sign_event(pdu, self._key, version), version)
        await self._require_allowed(event, room_id)
        return {"room_version": version.identifier, "event": pdu}

    async def _require_acl(self, room_id: str, origin: str) -> None:
        """Spec: room-scoped requests from a server the room's ACL denies get 403."""
        if await self._receiver.acl_denies(room_id, origin, None):
            raise MatrixError(403, Codes.FORBIDDEN, "Server denied by the room's server ACL")

    async def _require_allowed(self, event: Event, room_id: str) -> None:
        state = await self._state_events(room_id)
        try:
            check_auth_rules(event, state)
        except AuthError as exc:
            raise MatrixError(403, Codes.FORBIDDEN, f"Not allowed: {exc.message}") from exc

    async def _join_authoriser(self, room_id: str, user_id: str) -> str | None:
        """Restricted rooms: a local member able to invite, when the user is
        joined to one of the rooms the join rules name (that we can see)."""
        state = await self._state_events(room_id)
        if (MEMBER, user_id) in state and state[(MEMBER, user_id)].membership in ("join",
                                                                                  "invite"):
            return None
        rules = state.get(JOIN_RULES_KEY)
        rule = rules.content.get("join_rule") if rules else None
        if rule not in ("restricted", "knock_restricted"):
            return None
        allowed = [a.get("room_id") for a in rules.content.get("allow") or []  # type: ignore[union-attr]
                   if isinstance(a, dict) and a.get("type") == "m.room_membership"]
        if not await self._joined_any(user_id, allowed):
            raise MatrixError(403, Codes.FORBIDDEN, "Not a member of a room granting access")
        level = named_level(state, "invite")
        for (event_type, member), event in sorted(state.items()):
            if (event_type == MEMBER and event.membership == "join"
                    and identifiers.server_of(member) == self.server_name
                    and user_power_level(member, state) >= level):
                return member
        raise MatrixError(400, Codes.UNABLE_TO_GRANT_JOIN, "No local user can authorise it")

    async def _joined_any(self, user_id: str, room_ids: Iterable[Any]) -> bool:
        for room_id in room_ids:
            if not isinstance(room_id, str):
                continue
            state = await self._rooms.current_state(room_id)
            member = state.get((MEMBER, user_id))
            if member and (await self._rooms.get_events([member]))[member].membership == "join":
                return True
        return False

    async def send(self, membership: str, origin: str, room_id: str, event_id: str,
                   body: Any) -> dict[str, Any]:
        """send_join / send_leave / send_knock: check, authorise, persist."""
        version = await self._rooms.room_version(room_id)
        if version is None:
            raise MatrixError(404, Codes.NOT_FOUND, "Unknown room")
        if not isinstance(body, dict):
            raise MatrixError(400, Codes.BAD_JSON, "The body must be the signed event")
        await self._require_acl(room_id, origin)
        content = body.get("content")
        authoriser = content.get("join_authorised_via_users_server") \
            if isinstance(content, dict) else None
        if membership == "join" and isinstance(authoriser, str):
            # A restricted join we authorise: it needs our signature too.
            if not identifiers.is_valid_user_id(authoriser) \
                    or identifiers.server_of(authoriser) != self.server_name:
                raise MatrixError(400, Codes.INVALID_PARAM, "Not authorised through us")
            try:
                body = sign_event({k: v for k, v in body.items() if k != "unsigned"}, self._key,
                                  version)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise MatrixError(400, Codes.BAD_JSON, "Malformed event") from exc
        try:
            event = await self._receiver.checked_event(origin, body, version)
        except PduDropped as exc:
            raise MatrixError(400, Codes.BAD_JSON, str(exc)) from exc
        _check_handshake_event(event, membership, origin, room_id, event_id)
        before = await self._rooms.current_state(room_id)
        accepted = await self._receiver.receive_checked(origin, event)
        if accepted.rejected_reason is not None:
            raise MatrixError(403, Codes.FORBIDDEN, f"Refused: {accepted.rejected_reason}")
        if membership == "join":
            return await self._join_answer(accepted, before)
        if membership == "knock":
            return {"knock_room_state": await self._stripped_state(room_id)}
        return {}

    async def _join_answer(self, join: Event, state: dict[StateKey, str]) -> dict[str, Any]:
        state_events = await self._rooms.get_events(state.values())
        chain = await self.auth_chain([*state.values(), join.event_id])
        chain_events = await self._rooms.get_events(chain)
        return {
            "origin": self.server_name,
            "state": [state_events[e].pdu for e in state.values() if e in state_events],
            "auth_chain": [chain_events[e].pdu for e in sorted(chain) if e in chain_events],
            "event": join.pdu,
            "members_omitted": False,
        }

    async def auth_chain(self, event_ids: Iterable[str]) -> set[str]:
        """Every event reachable through auth_events (the create event included)."""
        chain: set[str] = set()
        visited: set[str] = set()
        frontier = set(event_ids)
        while frontier:
            visited |= frontier
            found = await self._rooms.get_events(frontier)
            cited = {a for e in found.values() for a in e.auth_and_create_event_ids()}
            chain |= cited
            frontier = cited - visited
        return chain

    async def on_invite(self, origin: str, room_id: str, event_id: str, body: Any
                        ) -> dict[str, Any]:
        """A remote server invites one of our users (invite v2)."""
        if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
            raise MatrixError(400, Codes.BAD_JSON, "Missing event")
        version = KNOWN_ROOM_VERSIONS.get(str(body.get("room_version", "1")))
        if version is None:
            raise MatrixError(400, Codes.INCOMPATIBLE_ROOM_VERSION, "Unsupported room version",
                              room_version=str(body.get("room_version")))
        try:
            event = await self._receiver.checked_event(origin, body["event"], version)
        except PduDropped as exc:
            raise MatrixError(400, Codes.BAD_JSON, str(exc)) from exc
        if (event.type != MEMBER or event.membership != "invite" or event.room_id != room_id
                or event.event_id != event_id or not event.state_key
                or identifiers.server_of(event.sender) != origin
                or identifiers.server_of(event.state_key) != self.server_name):
            raise MatrixError(400, Codes.INVALID_PARAM, "Not an invite of one of our users")
        signed = sign_event(event.pdu, self._key, version)
        stripped = [e for e in body.get("invite_room_state") or [] if isinstance(e, dict)]
        stored = dict(signed)
        stored["unsigned"] = {"invite_room_state": stripped}
        await self._rooms.persist_remote_membership(Event(stored, version, event_id=event_id))
        return {"event": signed}

    async def _stripped_state(self, room_id: str) -> list[dict[str, Any]]:
        state = await self._state_events(room_id)
        keep = ("m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
                "m.room.canonical_alias", "m.room.encryption", "m.room.topic")
        return [{"type": e.type, "state_key": e.state_key, "sender": e.sender,
                 "content": e.content} for (t, _), e in state.items() if t in keep]

    async def _state_events(self, room_id: str) -> dict[StateKey, Event]:
        ids = await self._rooms.current_state(room_id)
        events = await self._rooms.get_events(ids.values())
        return {k: events[e] for k, e in ids.items() if e in events}

    # Joining side ----------------------------------------------------------------

    async def join_remote(self, room_id: str, user_id: str, servers: list[str],
                          extra_content: Mapping[str, Any] | None = None) -> str:
        """Join a room through the first of `servers` that lets us."""
        last_error: MatrixError | None = None
        for server in _candidates(servers, self.server_name):
            try:
                await self._join_through(server, room_id, user_id, extra_content or {})
                return room_id
            except MatrixError as exc:
                if exc.errcode == Codes.INCOMPATIBLE_ROOM_VERSION:
                    raise
                last_error = exc
                logger.info("join of %s to %s through %s failed: %s", user_id, room_id, server,
                            exc.message)
        raise last_error or MatrixError(404, Codes.NOT_FOUND, "No server to join through")

    async def _join_through(self, server: str, room_id: str, user_id: str,
                            extra_content: Mapping[str, Any]) -> None:
        version, event = await self._make_and_sign("join", server, room_id, user_id,
                                                   extra_content)
        answer = await self._call(server, "PUT", encode_path(
            V2 + "/send_join/%s/%s", room_id, event.event_id), event.pdu)
        if not isinstance(answer, dict):
            raise MatrixError(502, Codes.UNKNOWN, "Malformed send_join answer")
        returned = answer.get("event")
        if isinstance(returned, dict):  # a restricted join, countersigned by the resident
            countersigned = Event({k: v for k, v in returned.items() if k != "unsigned"},
                                  version)
            if countersigned.event_id == event.event_id:
                event = countersigned
        state_pdus = [p for p in answer.get("state") or [] if isinstance(p, dict)]
        chain_pdus = [p for p in answer.get("auth_chain") or [] if isinstance(p, dict)]
        checked = await self._receiver.store_outliers(server, [*chain_pdus, *state_pdus],
                                                      version)
        state: dict[StateKey, Event] = {}
        for pdu in state_pdus:
            found = checked.get(Event({k: v for k, v in pdu.items() if k != "unsigned"},
                                      version).event_id)
            if found is not None and found.rejected_reason is None and found.is_state():
                state[found.state_key_tuple] = found
        create = state.get(CREATE_KEY)
        if create is None or create.content.get("room_version", "1") != version.identifier:
            raise MatrixError(502, Codes.UNKNOWN, "The join answer's create event is wrong")
        try:
            check_auth_rules(event, state)
        except AuthError as exc:
            raise MatrixError(403, Codes.FORBIDDEN, f"Our join is not allowed: {exc}") from exc
        await self._rooms.join_remote_room(version, event, state,
                                           [c for c in checked.values()])

    async def leave_remote(self, room_id: str, user_id: str, servers: list[str]) -> None:
        """Leave (or reject an invite to) a room our server is not in."""
        await self._handshake_remote("leave", room_id, user_id, servers)

    async def knock_remote(self, room_id: str, user_id: str, servers: list[str],
                           reason: str | None = None) -> None:
        extra = {"reason": reason} if reason else {}
        await self._handshake_remote("knock", room_id, user_id, servers, extra)

    async def _handshake_remote(self, membership: str, room_id: str, user_id: str,
                                servers: list[str], extra: Mapping[str, Any] | None = None
                                ) -> None:
        last_error: MatrixError | None = None
        for server in _candidates(servers, self.server_name):
            try:
                _, event = await self._make_and_sign(membership, server, room_id, user_id,
                                                     extra or {})
                version_path = V1 if membership == "knock" else V2
                answer = await self._call(server, "PUT", encode_path(
                    version_path + f"/send_{membership}/%s/%s", room_id, event.event_id),
                    event.pdu)
                if membership == "knock" and isinstance(answer, dict):
                    stripped = [e for e in answer.get("knock_room_state") or []
                                if isinstance(e, dict)]
                    stored = dict(event.pdu)
                    stored["unsigned"] = {"knock_room_state": stripped}
                    event = Event(stored, event.room_version, event_id=event.event_id)
                await self._rooms.persist_remote_membership(event)
                return
            except MatrixError as exc:
                last_error = exc
        raise last_error or MatrixError(404, Codes.NOT_FOUND, "No server to ask")

    async def _make_and_sign(self, membership: str, server: str, room_id: str, user_id: str,
                             extra_content: Mapping[str, Any]) -> tuple[RoomVersion, Event]:
        query = {"ver": sorted(KNOWN_ROOM_VERSIONS)} if membership in ("join", "knock") else None
        answer = await self._call(server, "GET", encode_path(
            V1 + f"/make_{membership}/%s/%s", room_id, user_id), None, query)
        if not isinstance(answer, dict) or not isinstance(answer.get("event"), dict):
            raise MatrixError(502, Codes.UNKNOWN, f"Malformed make_{membership} answer")
        version = KNOWN_ROOM_VERSIONS.get(str(answer.get("room_version", "1")))
        if version is None:
            raise MatrixError(400, Codes.INCOMPATIBLE_ROOM_VERSION, "Unsupported room version",
                              room_version=str(answer.get("room_version")))
        template = answer["event"]
        content = template.get("content")
        if (template.get("type") != MEMBER or template.get("room_id") != room_id
                or template.get("sender") != user_id or template.get("state_key") != user_id
                or not isinstance(content, dict) or content.get("membership") != membership):
            raise MatrixError(502, Codes.UNKNOWN, f"make_{membership} answered a wrong template")
        content = dict(content)
        if membership == "join":
            content.update(await self._rooms.member_content(user_id))
        content.update({k: v for k, v in extra_content.items() if v is not None})
        pdu = {k: template[k] for k in ("type", "room_id", "sender", "state_key", "prev_events",
                                       "auth_events", "depth") if k in template}
        pdu["content"] = content
        pdu["origin_server_ts"] = self._clock.time_ms()
        if not version.room_id_is_create_hash and version.identifier in ("10",):
            pdu["origin"] = self.server_name
        signed = hash_and_sign_event(pdu, self._key, version)
        return version, Event(signed, version)

    async def invite_remote(self, event: Event, invite_room_state: list[dict[str, Any]]
                            ) -> Event:
        """Send our invite of a remote user to their server; returns it with
        their signature added (what we then persist and broadcast)."""
        target = event.state_key or ""
        server = identifiers.server_of(target)
        answer = await self._call(server, "PUT", encode_path(
            V2 + "/invite/%s/%s", event.room_id, event.event_id), {
                "room_version": event.room_version.identifier, "event": event.pdu,
                "invite_room_state": invite_room_state})
        returned = answer.get("event") if isinstance(answer, dict) else None
        if not isinstance(returned, dict):
            raise MatrixError(502, Codes.UNKNOWN, "Malformed invite answer")
        signed = Event({k: v for k, v in returned.items() if k != "unsigned"},
                       event.room_version)
        if signed.event_id != event.event_id:
            raise MatrixError(502, Codes.UNKNOWN, "The invitee's server changed the invite")
        try:
            await self._receiver.verify_signatures(signed)
        except PduDropped as exc:
            raise MatrixError(502, Codes.UNKNOWN, f"Invite not countersigned: {exc}") from exc
        return signed

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        """A remote alias: ask its server (`/query/directory`)."""
        server = identifiers.server_of(alias)
        try:
            answer = await fetch.query_directory(self._client, server, alias)
        except QUERY_FAILURES as exc:
            raise as_matrix_error(server, "room alias", exc) from exc
        if not identifiers.is_valid_room_id(answer.room_id):
            raise MatrixError(502, Codes.UNKNOWN, f"{server} answered an invalid room ID")
        return answer.room_id, [server, *answer.servers]

    async def _call(self, server: str, method: str, path: str, body: Any,
                    query: Mapping[str, Any] | None = None) -> Any:
        try:
            if method == "GET":
                return await self._client.get_json(server, path, query, ignore_backoff=True)
            return await self._client.put_json(server, path, body, query, ignore_backoff=True)
        except HttpResponseError as exc:
            body_json = exc.body if isinstance(exc.body, dict) else {}
            errcode = exc.errcode or Codes.UNKNOWN
            status = exc.status if 400 <= exc.status < 500 else 502
            extra = {"room_version": body_json["room_version"]} if "room_version" in body_json \
                else {}
            raise MatrixError(status, errcode, str(body_json.get("error") or exc), **extra) \
                from exc
        except DestinationUnreachable as exc:
            raise MatrixError(502, Codes.UNKNOWN, f"Could not reach {server}: {exc.reason}") \
                from exc


def _candidates(servers: list[str], ours: str) -> list[str]:
    return [s for s in dict.fromkeys(servers) if s and s != ours]


def _require_user_on(origin: str, user_id: str) -> None:
    if not identifiers.is_valid_user_id(user_id) or identifiers.server_of(user_id) != origin:
        raise MatrixError(403, Codes.FORBIDDEN, "The user is not on the requesting server")


def _check_handshake_event(event: Event, membership: str, origin: str, room_id: str,
                           event_id: str) -> None:
    if (event.type != MEMBER or event.membership != membership or event.room_id != room_id
            or event.state_key != event.sender
            or identifiers.server_of(event.sender) != origin):
        raise MatrixError(400, Codes.INVALID_PARAM, f"Not a {membership} of an origin's user")
    if event.event_id != event_id:
        raise MatrixError(400, Codes.INVALID_PARAM, "The event ID does not match the event")
