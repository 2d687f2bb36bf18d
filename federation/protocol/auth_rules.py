"""The authorization rules for room versions 10, 11 and 12.

Rule numbers in comments follow the v12 text; v10/v11 lack rule 2 and number
the later rules one lower (v11 "4.3.1" is v12 "5.3.1"). The checks are split
as the spec's receipt pipeline uses them:

* `check_auth_events` - rules 1-3, which depend only on the event and the
  events it cites (checked once, on receipt);
* `check_auth_rules` - rules 4-11, against a given auth state (the event's
  own auth events, the state before it, or the current state).

Both raise `AuthError` naming the rule that failed.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from signedjson.sign import SignatureVerifyException, verify_signed_json

from . import identifiers
from .auth_events import auth_types_for
from .errors import AuthError
from .events import CREATE, CREATE_KEY, JOIN_RULES_KEY, MEMBER, POWER_LEVELS, THIRD_PARTY_INVITE
from .events import Event, StateKey
from .hashing import create_event_id_from_room_id
from .power_levels import AuthState, named_level, room_creators, send_level, user_power_level
from .signing import verify_key_from_base64

# Every room version the spec defines: rule 1.3 rejects only unknown versions,
# not versions this server lacks.
SPEC_ROOM_VERSIONS = frozenset(str(n) for n in range(1, 13))

_NAMED_LEVELS = ("users_default", "events_default", "state_default", "ban", "redact", "kick",
                 "invite")


# Rules 1-3: independent of room state -----------------------------------


def check_auth_events(
    event: Event, auth_events: Iterable[Event], create_event: Event | None = None
) -> None:
    """Rules 1-3: the create event itself, and the event's `auth_events`.

    `auth_events` are the events `event.auth_event_ids` name (with their
    `rejected_reason`). In v12 `create_event` is the event the room ID names.
    """
    # 1. Rule 1 governs every m.room.create, whatever its state_key (a second
    # "create" in an existing room fails 1.1 on its prev_events).
    if event.type == CREATE:
        _check_create(event)
        return  # 1.5 Otherwise, allow.
    version = event.room_version
    if version.room_id_is_create_hash:
        # 2. The room ID must name an accepted create event.
        expected = create_event_id_from_room_id(event.room_id) if event.room_id else None
        if (
            create_event is None
            or create_event.event_id != expected
            or create_event.rejected_reason is not None
        ):
            raise AuthError("room_id does not name an accepted m.room.create event", "2")
    _check_cited_auth_events(event, list(auth_events))


def _check_create(event: Event) -> None:
    version = event.room_version
    # 1.1 If it has any prev_events, reject.
    if event.prev_event_ids:
        raise AuthError("create event has prev_events", "1.1")
    if version.room_id_is_create_hash:
        # 1.2 (v12) If the event has a room_id, reject.
        if "room_id" in event.pdu:
            raise AuthError("create event has a room_id", "1.2")
    else:
        # 1.2 (v10, v11) The room ID's domain must be the sender's.
        try:
            same_domain = identifiers.server_of(event.room_id) == identifiers.server_of(
                event.sender
            )
        except ValueError:
            same_domain = False
        if not same_domain:
            raise AuthError("room_id domain differs from sender domain", "1.2")
    # 1.3 If content.room_version is present and not a recognised version, reject.
    room_version = event.content.get("room_version", "1")
    if room_version not in SPEC_ROOM_VERSIONS:
        raise AuthError(f"unknown room version {room_version!r}", "1.3")
    # 1.4 (v10) If content has no creator property, reject.
    if not version.implicit_room_creator and not isinstance(event.content.get("creator"), str):
        raise AuthError("create event lacks content.creator", "1.4")
    # 1.4 (v12) additional_creators must be an array of valid user IDs.
    if version.creators_have_infinite_power and "additional_creators" in event.content:
        extra = event.content["additional_creators"]
        if not isinstance(extra, list) or not all(identifiers.is_valid_user_id(u) for u in extra):
            raise AuthError("additional_creators is not an array of user IDs", "1.4")


def _check_cited_auth_events(event: Event, auth_events: list[Event]) -> None:
    v12 = event.room_version.room_id_is_create_hash
    rule = "3" if v12 else "2"
    if {e.event_id for e in auth_events} != set(event.auth_event_ids):
        raise AuthError("auth_events could not all be found", rule)
    allowed = set(auth_types_for(event))
    seen: set[StateKey] = set()
    for auth_event in auth_events:
        key = (auth_event.type, auth_event.state_key or "")
        if not auth_event.is_state():
            raise AuthError(f"auth event {auth_event.event_id} is not a state event", rule + ".2")
        # .1 Duplicate (type, state_key) entries.
        if key in seen:
            raise AuthError(f"duplicate auth event for {key}", rule + ".1")
        seen.add(key)
        # .2 Entries the auth events selection would not pick.
        if key not in allowed:
            raise AuthError(f"unexpected auth event for {key}", rule + ".2")
        # .3 Entries that were themselves rejected.
        if auth_event.rejected_reason is not None:
            raise AuthError(f"auth event {auth_event.event_id} was rejected", rule + ".3")
        # .5 (v12 .4 removed) Entries from another room.
        if auth_event.room_id != event.room_id:
            raise AuthError(f"auth event {auth_event.event_id} is from another room", rule + ".5")
    # 2.4 (v10, v11) There must be a create event among them.
    if not v12 and CREATE_KEY not in seen:
        raise AuthError("no m.room.create among auth_events", "2.4")


# Rules 4-11: against an auth state ----------------------------------------


def check_auth_rules(event: Event, auth_state: AuthState) -> None:
    """Rules 4-11 against `auth_state`, which must hold the create event.

    An m.room.create event is decided by rule 1 alone, so it is checked
    against rule 1 here too: callers that only run rules 4-11 (local sends,
    iterative auth checks) must not let a later "create" through.
    """
    if event.type == CREATE:
        _check_create(event)
        return
    create = auth_state.get(CREATE_KEY)
    if create is None:
        raise AuthError("no create event in the auth state", "3")
    # 4. m.federate: false keeps other servers' senders out.
    if create.content.get("m.federate", True) is False and _domain(event.sender) != _domain(
        create.sender
    ):
        raise AuthError("room is not federated", "4")
    if event.type == MEMBER:
        _check_membership(event, auth_state, create)
        return
    # 6. If the sender's current membership state is not join, reject.
    if _membership(auth_state, event.sender) != "join":
        raise AuthError(f"{event.sender} is not joined", "6")
    sender_level = user_power_level(event.sender, auth_state)
    # 7. m.room.third_party_invite: allowed iff sender power >= invite level.
    if event.type == THIRD_PARTY_INVITE:
        if sender_level < named_level(auth_state, "invite"):
            raise AuthError("insufficient power to invite", "7.1")
        return
    # 8. The event type's required power level must not exceed the sender's.
    if send_level(event.type, event.is_state(), auth_state) > sender_level:
        raise AuthError(f"insufficient power to send {event.type}", "8")
    # 9. State keys starting with @ belong to that user.
    state_key = event.state_key
    if state_key is not None and state_key.startswith("@") and state_key != event.sender:
        raise AuthError("state_key names another user", "9")
    if event.type == POWER_LEVELS and state_key == "":
        _check_power_levels(event, auth_state, create, sender_level)
    # 11. Otherwise, allow.


def _domain(user_id: str) -> str:
    try:
        return identifiers.server_of(user_id)
    except ValueError:
        return ""


def _membership(auth_state: AuthState, user_id: str) -> str | None:
    member = auth_state.get((MEMBER, user_id))
    return member.membership if member is not None else None


def _join_rule(auth_state: AuthState) -> str:
    join_rules = auth_state.get(JOIN_RULES_KEY)
    rule = join_rules.content.get("join_rule") if join_rules is not None else None
    return rule if isinstance(rule, str) else "invite"


# Rule 5: m.room.member -----------------------------------------------------


def _check_membership(event: Event, auth_state: AuthState, create: Event) -> None:
    # 5.1 There must be a state_key and a content.membership.
    membership = event.content.get("membership")
    if event.state_key is None or not isinstance(membership, str):
        raise AuthError("member event lacks state_key or membership", "5.1")
    # 5.2 join_authorised_via_users_server must come with that server's signature.
    authoriser = event.content.get("join_authorised_via_users_server")
    if authoriser is not None:
        if not isinstance(authoriser, str) or _domain(authoriser) not in event.signatures:
            raise AuthError("not signed by the authorising server", "5.2.1")
    checks = {
        "join": _check_join,
        "invite": _check_invite,
        "leave": _check_leave,
        "ban": _check_ban,
        "knock": _check_knock,
    }
    check = checks.get(membership)
    if check is None:
        raise AuthError(f"unknown membership {membership!r}", "5.8")  # 5.8
    check(event, auth_state, create)


def _check_join(event: Event, auth_state: AuthState, create: Event) -> None:
    target = event.state_key
    # 5.3.1 The creator's own join right after the create event.
    if event.prev_event_ids == [create.event_id]:
        creator = create.sender if event.room_version.implicit_room_creator else (
            create.content.get("creator")
        )
        if target == creator:
            return
    # 5.3.2 Nobody joins on someone else's behalf.
    if event.sender != target:
        raise AuthError("cannot join on behalf of another user", "5.3.2")
    current = _membership(auth_state, event.sender)
    # 5.3.3 Banned users cannot join.
    if current == "ban":
        raise AuthError("sender is banned", "5.3.3")
    join_rule = _join_rule(auth_state)
    # 5.3.4 invite/knock: only the invited (or already joined).
    if join_rule in ("invite", "knock"):
        if current in ("invite", "join"):
            return
        raise AuthError("room is invite-only and sender is not invited", "5.3.4")
    # 5.3.5 restricted/knock_restricted: invited, joined, or vouched for.
    if join_rule in ("restricted", "knock_restricted"):
        if current in ("join", "invite"):
            return
        _check_join_authoriser(event, auth_state)
        return
    # 5.3.6 public: allow.
    if join_rule == "public":
        return
    # 5.3.7 Otherwise, reject.
    raise AuthError(f"join rule {join_rule!r} does not allow joining", "5.3.7")


def _check_join_authoriser(event: Event, auth_state: AuthState) -> None:
    authoriser = event.content.get("join_authorised_via_users_server")
    if (
        not isinstance(authoriser, str)
        or _membership(auth_state, authoriser) != "join"
        or user_power_level(authoriser, auth_state) < named_level(auth_state, "invite")
    ):
        raise AuthError("join is not authorised by a joined user able to invite", "5.3.5.2")


def _check_invite(event: Event, auth_state: AuthState, create: Event) -> None:
    target = event.state_key or ""
    target_membership = _membership(auth_state, target)
    if "third_party_invite" in event.content:
        _check_third_party_invite(event, auth_state, target_membership)
        return
    # 5.4.2 The inviter must be joined.
    if _membership(auth_state, event.sender) != "join":
        raise AuthError("inviter is not joined", "5.4.2")
    # 5.4.3 Joined or banned users cannot be invited.
    if target_membership in ("join", "ban"):
        raise AuthError(f"target is already {target_membership}", "5.4.3")
    # 5.4.4 Allow if the sender has the invite level; 5.4.5 else reject.
    if user_power_level(event.sender, auth_state) < named_level(auth_state, "invite"):
        raise AuthError("insufficient power to invite", "5.4.5")


def _check_third_party_invite(
    event: Event, auth_state: AuthState, target_membership: str | None
) -> None:
    # 5.4.1.1 If the target user is banned, reject.
    if target_membership == "ban":
        raise AuthError("target is banned", "5.4.1.1")
    invite = event.content["third_party_invite"]
    signed = invite.get("signed") if isinstance(invite, dict) else None
    # 5.4.1.2 / 5.4.1.3 `signed` with `mxid` and `token`.
    if not isinstance(signed, dict):
        raise AuthError("third_party_invite lacks signed", "5.4.1.2")
    if not isinstance(signed.get("mxid"), str) or not isinstance(signed.get("token"), str):
        raise AuthError("signed lacks mxid or token", "5.4.1.3")
    # 5.4.1.4 mxid must be the invitee.
    if signed["mxid"] != event.state_key:
        raise AuthError("mxid does not match state_key", "5.4.1.4")
    # 5.4.1.5 There must be a matching m.room.third_party_invite.
    tpi = auth_state.get((THIRD_PARTY_INVITE, signed["token"]))
    if tpi is None:
        raise AuthError("no m.room.third_party_invite for this token", "5.4.1.5")
    # 5.4.1.6 Sent by the same user.
    if tpi.sender != event.sender:
        raise AuthError("sender differs from the third-party invite's sender", "5.4.1.6")
    # 5.4.1.7 Any signature in `signed` by any of the invite's public keys; 5.4.1.8 else reject.
    if not _signed_by_any_public_key(signed, tpi.content):
        raise AuthError("no valid signature on the third-party invite", "5.4.1.8")


def _public_keys(content: Mapping[str, Any]) -> list[str]:
    keys = [content["public_key"]] if isinstance(content.get("public_key"), str) else []
    for entry in content.get("public_keys") or []:
        if isinstance(entry, dict) and isinstance(entry.get("public_key"), str):
            keys.append(entry["public_key"])
    return keys


def _signed_by_any_public_key(signed: dict[str, Any], tpi_content: Mapping[str, Any]) -> bool:
    signatures = signed.get("signatures")
    if not isinstance(signatures, dict):
        return False
    for public_key in _public_keys(tpi_content):
        for server, server_sigs in signatures.items():
            if not isinstance(server_sigs, dict):
                continue
            for key_id in server_sigs:
                if not key_id.startswith("ed25519:"):
                    continue
                try:
                    verify_key = verify_key_from_base64(key_id, public_key)
                    verify_signed_json(signed, server, verify_key)
                except (SignatureVerifyException, ValueError, KeyError):
                    continue
                return True
    return False


def _check_leave(event: Event, auth_state: AuthState, create: Event) -> None:
    target = event.state_key or ""
    target_membership = _membership(auth_state, target)
    # 5.5.1 Leaving yourself: from invite, join or knock only.
    if event.sender == target:
        if target_membership in ("invite", "join", "knock"):
            return
        raise AuthError(f"cannot leave from membership {target_membership!r}", "5.5.1")
    # 5.5.2 Kickers must be joined.
    if _membership(auth_state, event.sender) != "join":
        raise AuthError("sender is not joined", "5.5.2")
    sender_level = user_power_level(event.sender, auth_state)
    # 5.5.3 Unbanning needs the ban level.
    if target_membership == "ban" and sender_level < named_level(auth_state, "ban"):
        raise AuthError("insufficient power to unban", "5.5.3")
    # 5.5.4 Kick level, and more power than the target; 5.5.5 else reject.
    if sender_level < named_level(auth_state, "kick") or user_power_level(
        target, auth_state
    ) >= sender_level:
        raise AuthError("insufficient power to kick", "5.5.5")


def _check_ban(event: Event, auth_state: AuthState, create: Event) -> None:
    # 5.6.1 Banners must be joined.
    if _membership(auth_state, event.sender) != "join":
        raise AuthError("sender is not joined", "5.6.1")
    sender_level = user_power_level(event.sender, auth_state)
    # 5.6.2 Ban level and more power than the target; 5.6.3 else reject.
    if sender_level < named_level(auth_state, "ban") or user_power_level(
        event.state_key or "", auth_state
    ) >= sender_level:
        raise AuthError("insufficient power to ban", "5.6.3")


def _check_knock(event: Event, auth_state: AuthState, create: Event) -> None:
    # 5.7.1 Only rooms whose join rule allows knocking.
    if _join_rule(auth_state) not in ("knock", "knock_restricted"):
        raise AuthError("room does not allow knocking", "5.7.1")
    # 5.7.2 Only for yourself.
    if event.sender != event.state_key:
        raise AuthError("cannot knock on behalf of another user", "5.7.2")
    # 5.7.3 Allow unless banned, invited or joined; 5.7.4 else reject.
    if _membership(auth_state, event.sender) in ("ban", "invite", "join"):
        raise AuthError("cannot knock from the current membership", "5.7.4")


# Rule 10: m.room.power_levels ---------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_power_levels(
    event: Event, auth_state: AuthState, create: Event, sender_level: int
) -> None:
    content = event.content
    _check_power_levels_shape(event, content, create)
    # 10.5 No previous power levels: allow.
    previous = auth_state.get((POWER_LEVELS, ""))
    if previous is None:
        return
    old = previous.content
    # 10.6 Named levels added, changed or removed.
    for name in _NAMED_LEVELS:
        _check_level_change(old.get(name), content.get(name), sender_level, f"{name}", "10.6")
    # 10.7 / 10.8 `events` and `notifications` entries.
    for field in ("events", "notifications"):
        old_map, new_map = _as_map(old.get(field)), _as_map(content.get(field))
        for key in set(old_map) | set(new_map):
            _check_level_change(old_map.get(key), new_map.get(key), sender_level,
                                f"{field}.{key}", "10.7")
    # 10.9 / 10.10 `users` entries.
    old_users, new_users = _as_map(old.get("users")), _as_map(content.get("users"))
    for user in set(old_users) | set(new_users):
        old_value, new_value = old_users.get(user), new_users.get(user)
        if old_value == new_value:
            continue
        if user != event.sender and old_value is not None and _level(old_value) >= sender_level:
            raise AuthError(f"cannot change the level of {user}, not below yours", "10.9")
        if new_value is not None and _level(new_value) > sender_level:
            raise AuthError(f"cannot give {user} a level above yours", "10.10")


def _check_power_levels_shape(event: Event, content: Mapping[str, Any], create: Event) -> None:
    version = event.room_version
    if version.enforce_int_power_levels:
        # 10.1 Named levels, if present, are integers.
        for name in _NAMED_LEVELS:
            if name in content and not _is_int(content[name]):
                raise AuthError(f"{name} is not an integer", "10.1")
        # 10.2 events and notifications map to integers.
        for field in ("events", "notifications"):
            if field in content and not _is_int_map(content[field]):
                raise AuthError(f"{field} is not an object of integers", "10.2")
    # 10.3 users maps valid user IDs to integers.
    users = content.get("users", {})
    if not isinstance(users, dict) or not all(identifiers.is_valid_user_id(u) for u in users):
        raise AuthError("users is not an object keyed by user IDs", "10.3")
    if version.enforce_int_power_levels and not _is_int_map(users):
        raise AuthError("users values are not integers", "10.3")
    # 10.4 (v12) Creators may not be listed in users.
    if version.creators_have_infinite_power and room_creators(create) & set(users):
        raise AuthError("room creators cannot appear in users", "10.4")


def _is_int_map(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_int(v) for v in value.values())


def _as_map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _level(value: Any) -> int:
    if _is_int(value):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def _check_level_change(
    old_value: Any, new_value: Any, sender_level: int, what: str, rule: str
) -> None:
    if old_value == new_value:
        return
    if old_value is not None and _level(old_value) > sender_level:
        raise AuthError(f"cannot change {what}: current value above your level", rule)
    if new_value is not None and _level(new_value) > sender_level:
        raise AuthError(f"cannot set {what} above your level", rule if rule != "10.7" else "10.8")


# Whole-event helper ----------------------------------------------------------


def auth_state_from_auth_events(event: Event, auth_events: Iterable[Event],
                                create_event: Event | None = None) -> dict[StateKey, Event]:
    """The auth state an event claims: its auth events, plus the v12 create event."""
    state = {(e.type, e.state_key or ""): e for e in auth_events if e.is_state()}
    if create_event is not None:
        state[CREATE_KEY] = create_event
    return state


def check_event_against_auth_events(
    event: Event, auth_events: Iterable[Event], create_event: Event | None = None
) -> None:
    """Rules 1-11 for `event` against the events it cites (receipt step 4)."""
    cited = list(auth_events)
    check_auth_events(event, cited, create_event)
    if event.type != CREATE:
        check_auth_rules(event, auth_state_from_auth_events(event, cited, create_event))


__all__ = [
    "check_auth_events", "check_auth_rules", "check_event_against_auth_events",
    "auth_state_from_auth_events", "SPEC_ROOM_VERSIONS", "CREATE",
]
