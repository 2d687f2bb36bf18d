"""Authorization rules for room versions 10, 11 and 12.

One allowed and one rejected case for every numbered rule. Rule labels are the
v12 numbering the core uses in `AuthError.rule` (v10/v11 label their
auth-events rules "2.x", v12 "3.x"). Every rejection asserts the rule that
fired, so a test cannot pass for the wrong reason.

Events are real signed PDUs from `tests.protocol.factory.Room`; `Room.send`
applies events without checking them, which is how the tests set up state.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
from signedjson.key import decode_signing_key_base64, encode_verify_key_base64, get_verify_key
from signedjson.sign import sign_json

from federation.protocol.auth_rules import (
    check_auth_events,
    check_auth_rules,
    check_event_against_auth_events,
)
from federation.protocol.errors import AuthError
from federation.protocol.events import (
    CREATE,
    CREATE_KEY,
    JOIN_RULES_KEY,
    MEMBER,
    POWER_LEVELS,
    POWER_LEVELS_KEY,
    THIRD_PARTY_INVITE,
    Event,
)
from federation.protocol.hashing import encode_base64
from federation.protocol.identifiers import server_of
from federation.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12, RoomVersion
from federation.protocol.signing import sign_event
from tests.protocol.factory import Room, make_event, server_key

CREATOR = "@creator:example.org"
MOD = "@mod:example.org"  # power 100
MOD2 = "@mod2:example.org"  # power 100
ALICE = "@alice:example.org"  # power 0 (users_default), joined
BOB = "@bob:example.org"  # power 0, not in the room
REMOTE = "@remote:other.org"

ALL_VERSIONS = [ROOM_V10, ROOM_V11, ROOM_V12]
PRE_V12 = [ROOM_V10, ROOM_V11]


def _version_id(version: RoomVersion) -> str:
    return f"v{version.identifier}"


# Helpers ----------------------------------------------------------------------


def expect(rule: str | None, check: Callable[..., None], *args: Any) -> None:
    """Run `check`: it must pass if `rule` is None, else fail with exactly `rule`."""
    if rule is None:
        check(*args)
        return
    with pytest.raises(AuthError) as info:
        check(*args)
    assert info.value.rule == rule, f"failed rule {info.value.rule}: {info.value.message}"


def allows(room: Room, event: Event) -> None:
    """Rules 4-11 against the room's current state must allow `event`."""
    check_auth_rules(event, room.auth_state())


def rejects(room: Room, event: Event, rule: str) -> None:
    """Rules 4-11 against the room's current state must reject `event` by `rule`."""
    expect(rule, check_auth_rules, event, room.auth_state())


def v12_create(room: Room) -> Event | None:
    """The `create_event` argument: the create event in v12, None before."""
    return room.create if room.version.room_id_is_create_hash else None


def cited_rule(version: RoomVersion, sub: int | None = None) -> str:
    """The auth-events rule label: "2[.n]" in v10/v11, "3[.n]" in v12."""
    top = "3" if version.room_id_is_create_hash else "2"
    return top if sub is None else f"{top}.{sub}"


def make_room(
    version: RoomVersion,
    join_rule: str | None = "public",
    *,
    users: dict[str, Any] | None = None,
    members: tuple[str, ...] = (MOD, MOD2, ALICE),
    create_content: dict[str, Any] | None = None,
    **named: Any,
) -> Room:
    """A room with MOD and MOD2 at 100 (and the v10/v11 creator at 100), `members` joined."""
    all_users = {MOD: 100, MOD2: 100, **(users or {})}
    if not version.creators_have_infinite_power:
        all_users.setdefault(CREATOR, 100)
    room = Room(
        version, CREATOR, join_rule=join_rule, power_levels={"users": all_users, **named},
        create_content=create_content,
    )
    for user in members:
        room.join(user)
    return room


def member(room: Room, sender: str, membership: str, target: str | None = None,
           **content: Any) -> Event:
    """Build (not apply) an m.room.member event from `sender` about `target`."""
    return room.build(MEMBER, sender, {"membership": membership, **content},
                      state_key=target or sender)


def set_membership(room: Room, user: str, membership: str) -> None:
    """Put `user` into `membership` without checking the auth rules."""
    room.send(MEMBER, user, {"membership": membership}, state_key=user)


def cosign(event: Event, server: str) -> Event:
    """`event` with an extra signature from `server` (as a resident server adds)."""
    return Event(sign_event(event.pdu, server_key(server), event.room_version),
                 event.room_version)


def create_content(version: RoomVersion, **extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"room_version": version.identifier}
    if not version.implicit_room_creator:
        content["creator"] = CREATOR
    return {**content, **extra}


def new_create(version: RoomVersion, content: dict[str, Any] | None = None, *,
               room_id: str | None = "", prev_events: list[str] | None = None) -> Event:
    """A create event; `room_id=""` picks the version's default (none in v12)."""
    if room_id == "":
        room_id = None if version.room_id_is_create_hash else "!new:example.org"
    return make_event(
        version, CREATE, CREATOR,
        create_content(version) if content is None else content,
        state_key="", room_id=room_id, prev_events=prev_events,
    )


@pytest.fixture(params=ALL_VERSIONS, ids=_version_id)
def version(request: pytest.FixtureRequest) -> RoomVersion:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def room(version: RoomVersion) -> Room:
    """Public room: creator, MOD and MOD2 (100) and ALICE (0) joined; BOB outside."""
    return make_room(version)


# Rule 1: m.room.create ----------------------------------------------------------


def test_1_create_event_allowed(version: RoomVersion) -> None:
    """1.5: a well-formed create event is allowed."""
    create = new_create(version)
    check_auth_events(create, [])
    check_event_against_auth_events(create, [])


def test_1_1_create_with_prev_events_rejected(room: Room) -> None:
    """1.1: a create event with prev_events is rejected."""
    create = new_create(room.version, prev_events=[room.create.event_id])
    expect("1.1", check_auth_events, create, [])


@pytest.mark.parametrize("state_key", ["x", None], ids=["other-state-key", "not-state"])
def test_1_1_later_create_type_events_rejected(room: Room, state_key: str | None) -> None:
    """1.1: rule 1 covers every m.room.create, so one sent into a live room is rejected."""
    event = room.build(CREATE, MOD, create_content(room.version), state_key=state_key)
    expect("1.1", check_event_against_auth_events, event, room.cited(event), v12_create(room))
    expect("1.1", check_auth_rules, event, room.auth_state())


@pytest.mark.parametrize("version", PRE_V12, ids=_version_id)
@pytest.mark.parametrize("room_id, rule", [("!new:example.org", None),
                                           ("!new:other.org", "1.2")])
def test_1_2_room_id_domain_must_match_sender(version: RoomVersion, room_id: str,
                                              rule: str | None) -> None:
    """1.2 (v10/v11): the room ID's domain must be the sender's."""
    expect(rule, check_auth_events, new_create(version, room_id=room_id), [])


def test_1_2_v12_create_with_room_id_rejected() -> None:
    """1.2 (v12): a create event carrying a room_id is rejected."""
    create = new_create(ROOM_V12)
    check_auth_events(create, [])
    with_room_id = Event({**create.pdu, "room_id": create.room_id}, ROOM_V12)
    expect("1.2", check_auth_events, with_room_id, [])


@pytest.mark.parametrize("room_version, rule", [(None, None), ("99", "1.3"), (12, "1.3")])
def test_1_3_room_version_must_be_known(version: RoomVersion, room_version: Any,
                                        rule: str | None) -> None:
    """1.3: content.room_version, if present, must be a recognised version."""
    content = create_content(version, room_version=room_version)
    if room_version is None:
        del content["room_version"]
    expect(rule, check_auth_events, new_create(version, content), [])


def test_1_4_v10_create_without_creator_rejected() -> None:
    """1.4 (v10): content.creator is required."""
    content = create_content(ROOM_V10)
    del content["creator"]
    expect("1.4", check_auth_events, new_create(ROOM_V10, content), [])


@pytest.mark.parametrize("version", [ROOM_V11, ROOM_V12], ids=_version_id)
def test_1_4_v11_create_without_creator_allowed(version: RoomVersion) -> None:
    """v11+ dropped the creator requirement (v10 rule 1.4)."""
    assert "creator" not in create_content(version)
    check_auth_events(new_create(version), [])


@pytest.mark.parametrize("extra, rule", [
    ([ALICE, REMOTE], None),
    ([], None),
    (ALICE, "1.4"),
    ([ALICE, "alice"], "1.4"),
    ([42], "1.4"),
])
def test_1_4_v12_additional_creators_must_be_user_ids(extra: Any, rule: str | None) -> None:
    """1.4 (v12): additional_creators must be an array of valid user IDs."""
    create = new_create(ROOM_V12, create_content(ROOM_V12, additional_creators=extra))
    expect(rule, check_auth_events, create, [])


def test_1_4_v11_ignores_additional_creators() -> None:
    """v11 has no additional_creators rule: malformed values are not checked."""
    create = new_create(ROOM_V11, create_content(ROOM_V11, additional_creators="nonsense"))
    check_auth_events(create, [])


# Rule 2 (v12): the room ID names an accepted create event -----------------------


def _v12_message() -> tuple[Room, Event]:
    room = make_room(ROOM_V12)
    return room, room.build("m.room.message", ALICE, {"body": "hi"})


def test_2_v12_room_id_names_accepted_create() -> None:
    """2 (v12): allowed when room_id is the ID of the accepted create event."""
    room, event = _v12_message()
    check_auth_events(event, room.cited(event), room.create)


@pytest.mark.parametrize("case", ["missing", "other_room", "rejected"])
def test_2_v12_room_id_without_accepted_create_rejected(case: str) -> None:
    """2 (v12): rejected without the create event, with another room's, or a rejected one."""
    room, event = _v12_message()
    create: Event | None = room.create
    if case == "missing":
        create = None
    elif case == "other_room":
        create = make_room(ROOM_V12).create
    else:
        room.create.rejected_reason = "failed auth"
    expect("2", check_auth_events, event, room.cited(event), create)


# Rule 3 (v12) / rule 2 (v10, v11): the event's auth_events ------------------------


def _ids(*events: Event) -> list[str]:
    return [e.event_id for e in events]


def _cited_message(room: Room, *extra: Event, with_create: bool | None = None,
                   without_pl: bool = False) -> tuple[Event, list[Event]]:
    """A message from ALICE citing the standard auth events plus `extra`."""
    if with_create is None:
        with_create = not room.version.room_id_is_create_hash
    cited = [room.create] if with_create else []
    if not without_pl:
        cited.append(room.state[POWER_LEVELS_KEY])
    cited += [room.state[(MEMBER, ALICE)], *extra]
    event = room.build("m.room.message", ALICE, {"body": "hi"}, auth_events=_ids(*cited))
    return event, cited


def test_auth_events_selected_entries_allowed(room: Room) -> None:
    """2/3: the auth events the selection algorithm picks are accepted."""
    event, cited = _cited_message(room)
    assert cited == room.cited(room.build("m.room.message", ALICE, {"body": "hi"}))
    check_auth_events(event, cited, v12_create(room))
    check_event_against_auth_events(event, cited, v12_create(room))


def test_auth_events_must_all_be_given(room: Room) -> None:
    """2/3: the caller must supply exactly the events auth_events names."""
    event, cited = _cited_message(room)
    expect(cited_rule(room.version), check_auth_events, event, cited[:-1],
           v12_create(room))


def test_auth_events_duplicate_type_state_key_rejected(room: Room) -> None:
    """2.1 / 3.1: two entries for the same (type, state_key) are rejected."""
    first_pl = room.state[POWER_LEVELS_KEY]
    room.send(POWER_LEVELS, CREATOR, first_pl.content, state_key="")
    event, cited = _cited_message(room, first_pl)
    assert len({e.event_id for e in cited}) == len(cited)
    expect(cited_rule(room.version, 1), check_auth_events, event, cited, v12_create(room))


@pytest.mark.parametrize("extra", ["join_rules", "message"])
def test_auth_events_unexpected_entry_rejected(room: Room, extra: str) -> None:
    """2.2 / 3.2: entries the auth events selection would not pick are rejected."""
    if extra == "join_rules":
        unexpected = room.state[JOIN_RULES_KEY]
    else:
        unexpected = room.send("m.room.message", ALICE, {"body": "earlier"})
    event, cited = _cited_message(room, unexpected)
    expect(cited_rule(room.version, 2), check_auth_events, event, cited, v12_create(room))


def test_auth_events_rejected_entry_rejected(room: Room) -> None:
    """2.3 / 3.3: citing an event that was itself rejected is rejected."""
    event, cited = _cited_message(room)
    room.state[POWER_LEVELS_KEY].rejected_reason = "failed auth"
    expect(cited_rule(room.version, 3), check_auth_events, event, cited, v12_create(room))


@pytest.mark.parametrize("version", PRE_V12, ids=_version_id)
def test_auth_events_v10_v11_missing_create_rejected(version: RoomVersion) -> None:
    """2.4 (v10/v11): the create event must be among the auth events."""
    room = make_room(version)
    event, cited = _cited_message(room, with_create=False)
    expect("2.4", check_auth_events, event, cited)


def test_auth_events_v12_cited_create_rejected() -> None:
    """3.2 (v12): the create event must not be selected, so citing it is rejected."""
    room = make_room(ROOM_V12)
    event, cited = _cited_message(room, with_create=True)
    expect("3.2", check_auth_events, event, cited, room.create)


def test_auth_events_from_another_room_rejected(room: Room) -> None:
    """2.5 / 3.5: auth events must be from the event's own room."""
    other = Room(room.version, "@creator:other.org")
    assert other.room_id != room.room_id
    _, cited = _cited_message(room, without_pl=True)
    cited.append(other.state[POWER_LEVELS_KEY])
    event = room.build("m.room.message", ALICE, {"body": "hi"}, auth_events=_ids(*cited))
    expect(cited_rule(room.version, 5), check_auth_events, event, cited, v12_create(room))


# Rule 4: m.federate ---------------------------------------------------------------


@pytest.mark.parametrize("federate, sender, rule", [
    (False, ALICE, None),
    (True, REMOTE, None),
    (False, REMOTE, "4"),
])
def test_4_m_federate_false_keeps_other_servers_out(version: RoomVersion, federate: bool,
                                                    sender: str, rule: str | None) -> None:
    """4: with m.federate false, senders from other servers are rejected."""
    room = make_room(version, create_content={"m.federate": federate}, members=())
    expect(rule, check_auth_rules, member(room, sender, "join"), room.auth_state())


# Rule 5: m.room.member --------------------------------------------------------------


def test_5_1_member_event_allowed_with_state_key_and_membership(room: Room) -> None:
    """5.1: a member event with state_key and content.membership proceeds (here: a join)."""
    allows(room, member(room, BOB, "join"))


@pytest.mark.parametrize("missing", ["membership", "state_key"])
def test_5_1_member_event_missing_fields_rejected(room: Room, missing: str) -> None:
    """5.1: no state_key or no content.membership is rejected."""
    if missing == "membership":
        event = room.build(MEMBER, BOB, {"displayname": "Bob"}, state_key=BOB)
    else:
        event = room.build(MEMBER, BOB, {"membership": "join"})
    rejects(room, event, "5.1")


def _restricted_room(version: RoomVersion, join_rule: str = "restricted") -> Room:
    """A restricted room where the remote moderator can authorise joins (invite level 50)."""
    room = make_room(version, join_rule, users={REMOTE: 100}, invite=50)
    room.join(REMOTE)
    return room


def test_5_2_authorising_server_signature_present_allowed(version: RoomVersion) -> None:
    """5.2.1: join_authorised_via_users_server with that server's signature is allowed."""
    room = _restricted_room(version)
    event = cosign(member(room, BOB, "join", join_authorised_via_users_server=REMOTE),
                   server_of(REMOTE))
    assert set(event.signatures) == {"example.org", "other.org"}
    allows(room, event)


def test_5_2_authorising_server_signature_missing_rejected(version: RoomVersion) -> None:
    """5.2.1: without the authorising server's signature the member event is rejected."""
    room = _restricted_room(version)
    rejects(room, member(room, BOB, "join", join_authorised_via_users_server=REMOTE), "5.2.1")


# 5.3: join


def _first_join(room: Room, user: str) -> tuple[Event, list[Event]]:
    """`user`'s join whose only previous event is the create event."""
    cited = [] if room.version.room_id_is_create_hash else [room.create]
    event = room.build(MEMBER, user, {"membership": "join"}, state_key=user,
                       prev_events=[room.create.event_id], auth_events=_ids(*cited))
    return event, cited


def test_5_3_1_creator_first_join_allowed(version: RoomVersion) -> None:
    """5.3.1: the creator's join right after the create event is allowed."""
    room = make_room(version, members=())
    event, cited = _first_join(room, CREATOR)
    check_event_against_auth_events(event, cited, v12_create(room))


def test_5_3_1_other_users_first_join_rejected(version: RoomVersion) -> None:
    """5.3.1 applies only to the creator: others fall through to the (default invite) rule."""
    room = make_room(version, members=())
    event, cited = _first_join(room, ALICE)
    expect("5.3.4", check_event_against_auth_events, event, cited, v12_create(room))


@pytest.mark.parametrize("version, joiner, rule", [
    (ROOM_V10, ALICE, None),  # v10: content.creator is the creator
    (ROOM_V10, CREATOR, "5.3.4"),
    (ROOM_V11, CREATOR, None),  # v11: the create event's sender is the creator
    (ROOM_V11, ALICE, "5.3.4"),
    (ROOM_V12, CREATOR, None),
    (ROOM_V12, ALICE, "5.3.4"),
], ids=["v10-content-creator", "v10-sender", "v11-sender", "v11-content-creator",
        "v12-sender", "v12-content-creator"])
def test_5_3_1_creator_determination(version: RoomVersion, joiner: str,
                                     rule: str | None) -> None:
    """5.3.1: v10 reads content.creator; v11 and v12 use the create event's sender."""
    room = make_room(version, members=(), create_content={"creator": ALICE})
    event, cited = _first_join(room, joiner)
    expect(rule, check_event_against_auth_events, event, cited, v12_create(room))


def test_5_3_1_v12_additional_creator_first_join_not_special() -> None:
    """5.3.1 (v12): only the create event's sender, not additional creators."""
    room = make_room(ROOM_V12, members=(), create_content={"additional_creators": [ALICE]})
    event, cited = _first_join(room, ALICE)
    expect("5.3.4", check_event_against_auth_events, event, cited, room.create)


def test_5_3_2_join_for_someone_else_rejected(room: Room) -> None:
    """5.3.2: a join whose sender differs from the state_key is rejected."""
    rejects(room, member(room, ALICE, "join", BOB), "5.3.2")


@pytest.mark.parametrize("prior, rule", [("leave", None), ("ban", "5.3.3")])
def test_5_3_3_banned_user_cannot_join(room: Room, prior: str | None,
                                       rule: str | None) -> None:
    """5.3.3: a banned sender cannot join (even a public room)."""
    if prior:
        set_membership(room, BOB, prior)
    expect(rule, check_auth_rules, member(room, BOB, "join"), room.auth_state())


@pytest.mark.parametrize("join_rule, prior, rule", [
    ("invite", "invite", None), ("knock", "join", None),
    ("invite", None, "5.3.4"), ("knock", "knock", "5.3.4"),
])
def test_5_3_4_invite_and_knock_rooms(version: RoomVersion, join_rule: str, prior: str | None,
                                      rule: str | None) -> None:
    """5.3.4: invite/knock rooms admit only invited (or already joined) users."""
    room = make_room(version, join_rule)
    if prior:
        set_membership(room, BOB, prior)
    expect(rule, check_auth_rules, member(room, BOB, "join"), room.auth_state())


@pytest.mark.parametrize("join_rule, case, rule", [
    ("restricted", "invited", None),
    ("restricted", "authorised", None),
    ("knock_restricted", "authorised", None),
    ("restricted", "no_authoriser", "5.3.5.2"),
    ("knock_restricted", "authoriser_lacks_power", "5.3.5.2"),
    ("restricted", "authoriser_not_joined", "5.3.5.2"),
])
def test_5_3_5_restricted_rooms(version: RoomVersion, join_rule: str, case: str,
                                rule: str | None) -> None:
    """5.3.5: restricted joins need an invite or a joined authoriser with the invite level."""
    room = make_room(version, join_rule, users={BOB: 100}, invite=50)
    content: dict[str, Any] = {}
    if case == "invited":
        set_membership(room, "@carol:example.org", "invite")
    elif case == "authorised":
        content["join_authorised_via_users_server"] = MOD
    elif case == "authoriser_lacks_power":
        content["join_authorised_via_users_server"] = ALICE  # joined, power 0 < 50
    elif case == "authoriser_not_joined":
        content["join_authorised_via_users_server"] = BOB  # power 100, not joined
    event = member(room, "@carol:example.org", "join", **content)
    expect(rule, check_auth_rules, event, room.auth_state())


def test_5_3_6_public_room_join_allowed(room: Room) -> None:
    """5.3.6: anyone not banned may join a public room."""
    allows(room, member(room, BOB, "join"))


@pytest.mark.parametrize("join_rule", ["private", "com.example.unknown"])
def test_5_3_7_other_join_rules_rejected(version: RoomVersion, join_rule: str) -> None:
    """5.3.7: any other join rule rejects joins."""
    room = make_room(version, join_rule)
    rejects(room, member(room, BOB, "join"), "5.3.7")


# 5.4: invite

TOKEN = "tpi-token"
ID_SERVER = "id.example.org"
ID_KEY = decode_signing_key_base64("ed25519", "0", encode_base64(b"\x01" * 32))
OTHER_ID_KEY = decode_signing_key_base64("ed25519", "0", encode_base64(b"\x02" * 32))


def _public_key(signing_key: Any) -> str:
    return str(encode_verify_key_base64(get_verify_key(signing_key)))


def _tpi_room(version: RoomVersion, key_field: str = "public_key") -> Room:
    """A room where MOD issued a third-party invite whose key is ID_KEY's."""
    room = make_room(version)
    key = _public_key(ID_KEY)
    content: dict[str, Any] = {"display_name": "b...@example.com",
                               "key_validity_url": "https://id.example.org/isvalid"}
    if key_field == "public_key":
        content["public_key"] = key
    else:
        content["public_key"] = _public_key(OTHER_ID_KEY)
        content["public_keys"] = [{"public_key": key}]
    room.send(THIRD_PARTY_INVITE, MOD, content, state_key=TOKEN)
    return room


def _tpi_invite(room: Room, *, sender: str = MOD, mxid: str = BOB, token: str | None = TOKEN,
                key: Any = ID_KEY, signed: Any = "sign") -> Event:
    """An invite of BOB that redeems a third-party invite, `signed` by the identity server."""
    if signed == "sign":
        payload: dict[str, Any] = {"mxid": mxid}
        if token is not None:
            payload["token"] = token
        signed = sign_json(payload, ID_SERVER, key)
    invite: dict[str, Any] = {"display_name": "b...@example.com"}
    if signed is not None:
        invite["signed"] = signed
    return member(room, sender, "invite", BOB, third_party_invite=invite)


@pytest.mark.parametrize("key_field", ["public_key", "public_keys"])
def test_5_4_1_third_party_invite_allowed(version: RoomVersion, key_field: str) -> None:
    """5.4.1.7: a signature matching the invite's public key (or public_keys) allows it."""
    room = _tpi_room(version, key_field)
    event = _tpi_invite(room)
    allows(room, event)
    check_event_against_auth_events(event, room.cited(event), v12_create(room))


def test_5_4_1_1_third_party_invite_of_banned_user_rejected(version: RoomVersion) -> None:
    """5.4.1.1: a banned target cannot be invited by third-party invite."""
    room = _tpi_room(version)
    set_membership(room, BOB, "ban")
    rejects(room, _tpi_invite(room), "5.4.1.1")


@pytest.mark.parametrize("case, rule", [
    ("no_signed", "5.4.1.2"),
    ("no_token", "5.4.1.3"),
    ("wrong_mxid", "5.4.1.4"),
    ("unknown_token", "5.4.1.5"),
    ("other_sender", "5.4.1.6"),
    ("wrong_key", "5.4.1.8"),
    ("tampered", "5.4.1.8"),
])
def test_5_4_1_third_party_invite_rejected(version: RoomVersion, case: str, rule: str) -> None:
    """5.4.1.2-5.4.1.8: malformed, mismatched or badly signed third-party invites."""
    room = _tpi_room(version)
    if case == "no_signed":
        event = _tpi_invite(room, signed=None)
    elif case == "no_token":
        event = _tpi_invite(room, token=None)
    elif case == "wrong_mxid":
        event = _tpi_invite(room, mxid="@mallory:example.org")
    elif case == "unknown_token":
        event = _tpi_invite(room, token="another-token")
    elif case == "other_sender":
        event = _tpi_invite(room, sender=MOD2)
    elif case == "wrong_key":
        event = _tpi_invite(room, key=OTHER_ID_KEY)
    else:
        signed = sign_json({"mxid": BOB, "token": TOKEN}, ID_SERVER, ID_KEY)
        signed["extra"] = "added after signing"
        event = _tpi_invite(room, signed=signed)
    rejects(room, event, rule)


def test_5_4_invite_allowed(room: Room) -> None:
    """5.4.4: a joined sender with the invite level may invite."""
    allows(room, member(room, ALICE, "invite", BOB))


def test_5_4_2_inviter_not_joined_rejected(room: Room) -> None:
    """5.4.2: the inviter must be joined."""
    rejects(room, member(room, "@carol:example.org", "invite", BOB), "5.4.2")


@pytest.mark.parametrize("target_membership, rule", [
    ("leave", None), ("join", "5.4.3"), ("ban", "5.4.3"),
])
def test_5_4_3_target_joined_or_banned_rejected(room: Room, target_membership: str,
                                                rule: str | None) -> None:
    """5.4.3: joined or banned users cannot be invited."""
    set_membership(room, BOB, target_membership)
    expect(rule, check_auth_rules, member(room, MOD, "invite", BOB), room.auth_state())


@pytest.mark.parametrize("inviter, rule", [(MOD, None), (ALICE, "5.4.5")])
def test_5_4_5_invite_needs_invite_level(version: RoomVersion, inviter: str,
                                         rule: str | None) -> None:
    """5.4.4/5.4.5: the sender's power must reach the invite level."""
    room = make_room(version, invite=50)
    expect(rule, check_auth_rules, member(room, inviter, "invite", BOB), room.auth_state())


# 5.5: leave


@pytest.mark.parametrize("prior, rule", [
    ("invite", None), ("knock", None), ("ban", "5.5.1"), (None, "5.5.1"),
])
def test_5_5_1_leaving_yourself(room: Room, prior: str | None, rule: str | None) -> None:
    """5.5.1: self-leave only from invite, join or knock."""
    if prior:
        set_membership(room, BOB, prior)
    expect(rule, check_auth_rules, member(room, BOB, "leave"), room.auth_state())


def test_5_5_2_kicker_not_joined_rejected(room: Room) -> None:
    """5.5.2: someone else's leave must come from a joined sender."""
    set_membership(room, MOD2, "leave")
    rejects(room, member(room, MOD2, "leave", ALICE), "5.5.2")


@pytest.mark.parametrize("ban_level, rule", [(100, None), (101, "5.5.3")])
def test_5_5_3_unban_needs_ban_level(version: RoomVersion, ban_level: int,
                                     rule: str | None) -> None:
    """5.5.3: unbanning needs the ban level (kick level alone is not enough)."""
    room = make_room(version, ban=ban_level, kick=50)
    set_membership(room, BOB, "ban")
    expect(rule, check_auth_rules, member(room, MOD, "leave", BOB), room.auth_state())


@pytest.mark.parametrize("kicker, target, rule", [
    (MOD, ALICE, None),  # 100 >= kick 50 and 100 > 0
    (ALICE, MOD, "5.5.5"),  # 0 < kick level
    (MOD, MOD2, "5.5.5"),  # target has equal power
])
def test_5_5_4_kick_needs_kick_level_and_more_power(room: Room, kicker: str, target: str,
                                                    rule: str | None) -> None:
    """5.5.4/5.5.5: kick level and strictly more power than the target."""
    expect(rule, check_auth_rules, member(room, kicker, "leave", target), room.auth_state())


# 5.6: ban


def test_5_6_2_ban_allowed(room: Room) -> None:
    """5.6.2: ban level and more power than the target allows a ban."""
    allows(room, member(room, MOD, "ban", ALICE))


def test_5_6_1_banner_not_joined_rejected(room: Room) -> None:
    """5.6.1: the banning sender must be joined."""
    set_membership(room, MOD2, "leave")
    rejects(room, member(room, MOD2, "ban", ALICE), "5.6.1")


@pytest.mark.parametrize("banner, target", [(ALICE, BOB), (MOD, MOD2)])
def test_5_6_3_ban_without_power_rejected(room: Room, banner: str, target: str) -> None:
    """5.6.3: below the ban level, or not above the target's level, is rejected."""
    rejects(room, member(room, banner, "ban", target), "5.6.3")


# 5.7: knock


@pytest.mark.parametrize("join_rule", ["knock", "knock_restricted"])
def test_5_7_3_knock_allowed(version: RoomVersion, join_rule: str) -> None:
    """5.7.3: knocking on a knock/knock_restricted room from no membership or leave."""
    room = make_room(version, join_rule)
    allows(room, member(room, BOB, "knock"))
    set_membership(room, BOB, "leave")
    allows(room, member(room, BOB, "knock"))


@pytest.mark.parametrize("join_rule", ["public", "restricted"])
def test_5_7_1_knock_on_non_knock_room_rejected(version: RoomVersion, join_rule: str) -> None:
    """5.7.1: only knock and knock_restricted rooms accept knocks."""
    room = make_room(version, join_rule)
    rejects(room, member(room, BOB, "knock"), "5.7.1")


def test_5_7_2_knock_for_someone_else_rejected(version: RoomVersion) -> None:
    """5.7.2: the sender must knock for itself."""
    room = make_room(version, "knock")
    rejects(room, member(room, ALICE, "knock", BOB), "5.7.2")


@pytest.mark.parametrize("prior", ["ban", "invite", "join"])
def test_5_7_4_knock_from_ban_invite_join_rejected(version: RoomVersion, prior: str) -> None:
    """5.7.4: banned, invited or joined users cannot knock."""
    room = make_room(version, "knock")
    set_membership(room, BOB, prior)
    rejects(room, member(room, BOB, "knock"), "5.7.4")


# 5.8: unknown membership


def test_5_8_unknown_membership_rejected(room: Room) -> None:
    """5.8: an unknown membership value is rejected (even for a joined user)."""
    rejects(room, member(room, ALICE, "superposition"), "5.8")


# Rule 6: sender must be joined ------------------------------------------------------


@pytest.mark.parametrize("prior, rule", [
    ("join", None), (None, "6"), ("invite", "6"),
])
def test_6_sender_must_be_joined(room: Room, prior: str | None, rule: str | None) -> None:
    """6: non-member events need the sender to be joined."""
    if prior:
        set_membership(room, BOB, prior)
    event = room.build("m.room.message", BOB, {"body": "hi"})
    expect(rule, check_auth_rules, event, room.auth_state())


# Rule 7: m.room.third_party_invite --------------------------------------------------


@pytest.mark.parametrize("invite_level, rule", [(0, None), (50, "7.1")])
def test_7_third_party_invite_needs_invite_level(version: RoomVersion, invite_level: int,
                                                 rule: str | None) -> None:
    """7.1: third-party invites need the invite level (not state_default, here 50)."""
    room = make_room(version, invite=invite_level)
    event = room.build(THIRD_PARTY_INVITE, ALICE, {"display_name": "x", "public_key": "AAAA"},
                       state_key=TOKEN)
    expect(rule, check_auth_rules, event, room.auth_state())


# Rule 8: required power level -------------------------------------------------------


@pytest.mark.parametrize("sender, rule", [(MOD, None), (ALICE, "8")])
def test_8_events_map_level(version: RoomVersion, sender: str, rule: str | None) -> None:
    """8: a level in `events` is required for that event type."""
    room = make_room(version, events={"m.room.name": 50})
    event = room.build("m.room.name", sender, {"name": "x"}, state_key="")
    expect(rule, check_auth_rules, event, room.auth_state())


@pytest.mark.parametrize("events, rule", [({}, "8"), ({"com.example.state": 0}, None)])
def test_8_state_default(version: RoomVersion, events: dict[str, int],
                         rule: str | None) -> None:
    """8: state events default to state_default (50) unless `events` overrides it."""
    room = make_room(version, events=events)
    event = room.build("com.example.state", ALICE, {}, state_key="")
    expect(rule, check_auth_rules, event, room.auth_state())


@pytest.mark.parametrize("events_default, events, rule", [
    (0, {}, None), (10, {}, "8"), (10, {"m.room.message": 0}, None),
])
def test_8_events_default(version: RoomVersion, events_default: int, events: dict[str, int],
                          rule: str | None) -> None:
    """8: message events need events_default unless `events` overrides it."""
    room = make_room(version, events_default=events_default, events=events)
    event = room.build("m.room.message", ALICE, {"body": "hi"})
    expect(rule, check_auth_rules, event, room.auth_state())


# Rule 9: state keys naming users ----------------------------------------------------


@pytest.mark.parametrize("state_key, rule", [(ALICE, None), (BOB, "9")])
def test_9_user_state_key_must_be_sender(version: RoomVersion, state_key: str,
                                         rule: str | None) -> None:
    """9: a state_key starting with @ must be the sender's own user ID."""
    room = make_room(version, events={"com.example.user": 0})
    event = room.build("com.example.user", ALICE, {}, state_key=state_key)
    expect(rule, check_auth_rules, event, room.auth_state())


# Rule 10: m.room.power_levels -------------------------------------------------------

REMOVE = object()


def _pl_room(version: RoomVersion) -> Room:
    """Levels: ALICE 50, MOD/MOD2 100; redact 150, tombstone 150, notifications.custom 150."""
    return make_room(
        version, users={ALICE: 50}, ban=50, redact=150,
        events={"m.room.name": 50, "m.room.tombstone": 150},
        notifications={"room": 50, "custom": 150},
    )


def _edit_levels(room: Room, sender: str, *edits: tuple[str, Any]) -> Event:
    """A power levels event from `sender`: current content with `path/to/key` edits."""
    content = copy.deepcopy(room.state[POWER_LEVELS_KEY].content)
    for path, value in edits:
        *parents, leaf = path.split("/")
        target = content
        for key in parents:
            target = target.setdefault(key, {})
        if value is REMOVE:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return room.build(POWER_LEVELS, sender, content, state_key="")


@pytest.mark.parametrize("path, value, rule", [
    ("ban", 60, None),
    ("ban", "60", "10.1"),
    ("invite", True, "10.1"),
    ("events/m.room.topic", "60", "10.2"),
    ("notifications", [], "10.2"),
    ("users/" + BOB, "10", "10.3"),
    ("users/bob", 10, "10.3"),
])
def test_10_1_to_10_3_value_types(version: RoomVersion, path: str, value: Any,
                                  rule: str | None) -> None:
    """10.1-10.3: levels are integers, users keys are user IDs (strings rejected in v10+)."""
    room = _pl_room(version)
    expect(rule, check_auth_rules, _edit_levels(room, MOD, (path, value)), room.auth_state())


@pytest.mark.parametrize("listed, rule", [(ALICE, None), (CREATOR, "10.4"), (BOB, "10.4")])
def test_10_4_v12_creators_not_in_users(listed: str, rule: str | None) -> None:
    """10.4 (v12): the creator and additional_creators may not appear in users."""
    room = make_room(ROOM_V12, create_content={"additional_creators": [BOB]})
    event = _edit_levels(room, CREATOR, ("users/" + listed, 100))
    expect(rule, check_auth_rules, event, room.auth_state())


@pytest.mark.parametrize("version", PRE_V12, ids=_version_id)
def test_10_4_v10_v11_creator_in_users_allowed(version: RoomVersion) -> None:
    """10.4 is v12-only: before v12 the creator is listed in users as usual."""
    room = make_room(version)
    event = _edit_levels(room, CREATOR, ("users/" + CREATOR, 100))
    assert event.content["users"][CREATOR] == 100
    allows(room, event)


def test_10_5_first_power_levels_allowed(version: RoomVersion) -> None:
    """10.5: the room's first power levels event skips the change checks."""
    room = make_room(version, members=())
    state = {CREATE_KEY: room.create, (MEMBER, CREATOR): room.state[(MEMBER, CREATOR)]}
    event = room.build(POWER_LEVELS, CREATOR, {"users": {ALICE: 10**6}, "kick": 10**6},
                       state_key="")
    check_auth_rules(event, state)


def test_10_5_same_change_with_previous_levels_rejected(version: RoomVersion) -> None:
    """10.5 only covers the first event: with previous levels the changes are checked."""
    room = make_room(version)
    event = room.build(POWER_LEVELS, MOD, {"users": {ALICE: 10**6}, "kick": 10**6},
                       state_key="")
    rejects(room, event, "10.6")


@pytest.mark.parametrize("path, value, rule", [
    ("ban", 100, None),
    ("ban", 101, "10.6"),  # 10.6.2 new value above the sender
    ("redact", 100, "10.6"),  # 10.6.1 current value (150) above the sender
    ("redact", REMOVE, "10.6"),
], ids=["raise-to-own", "new-above", "current-above", "remove-above"])
def test_10_6_named_levels(version: RoomVersion, path: str, value: Any,
                           rule: str | None) -> None:
    """10.6: named levels may only move within the sender's own level."""
    room = _pl_room(version)
    expect(rule, check_auth_rules, _edit_levels(room, MOD, (path, value)), room.auth_state())


@pytest.mark.parametrize("path, value, rule", [
    ("events/m.room.name", REMOVE, None),
    ("events/m.room.tombstone", 100, "10.7"),
    ("events/m.room.tombstone", REMOVE, "10.7"),
    ("notifications/custom", 50, "10.7"),
], ids=["remove", "change-above", "remove-above", "notification-above"])
def test_10_7_events_and_notifications_current_value(version: RoomVersion, path: str,
                                                     value: Any, rule: str | None) -> None:
    """10.7: entries above the sender's level cannot be changed or removed."""
    room = _pl_room(version)
    expect(rule, check_auth_rules, _edit_levels(room, MOD, (path, value)), room.auth_state())


@pytest.mark.parametrize("path, value, rule", [
    ("events/m.room.topic", 100, None),
    ("events/m.room.topic", 101, "10.8"),
    ("notifications/room", 101, "10.8"),
], ids=["event-add", "event-above", "notification-above"])
def test_10_8_events_and_notifications_new_value(version: RoomVersion, path: str, value: Any,
                                                 rule: str | None) -> None:
    """10.8: entries cannot be added or changed to above the sender's level."""
    room = _pl_room(version)
    expect(rule, check_auth_rules, _edit_levels(room, MOD, (path, value)), room.auth_state())


@pytest.mark.parametrize("user, value, rule", [
    (MOD, 50, None),  # own entry, lowering
    (ALICE, REMOVE, None),  # lower user
    (MOD2, 50, "10.9"),  # equal power
    (MOD2, REMOVE, "10.9"),
], ids=["own-lower", "remove-lower-user", "equal-user", "remove-equal-user"])
def test_10_9_changing_users(version: RoomVersion, user: str, value: Any,
                             rule: str | None) -> None:
    """10.9: other users' entries must be below the sender's level to change or remove."""
    room = _pl_room(version)
    event = _edit_levels(room, MOD, ("users/" + user, value))
    expect(rule, check_auth_rules, event, room.auth_state())


@pytest.mark.parametrize("user, value, rule", [
    (BOB, 100, None),  # new entry, up to the sender's own level
    (ALICE, 101, "10.10"),
    (MOD, 101, "10.10"),  # own entry
])
def test_10_10_granting_levels(version: RoomVersion, user: str, value: int,
                               rule: str | None) -> None:
    """10.10: nobody may grant a level above their own."""
    room = _pl_room(version)
    event = _edit_levels(room, MOD, ("users/" + user, value))
    expect(rule, check_auth_rules, event, room.auth_state())


# Rule 11 and redactions -----------------------------------------------------------


def test_11_plain_message_allowed(room: Room) -> None:
    """11: a message from a joined member with enough power is allowed."""
    event = room.build("m.room.message", ALICE, {"msgtype": "m.text", "body": "hello"})
    allows(room, event)
    check_event_against_auth_events(event, room.cited(event), v12_create(room))


@pytest.mark.parametrize("events, rule", [({}, None), ({"m.room.redaction": 50}, "8")])
def test_redaction_authorised_like_any_event(version: RoomVersion, events: dict[str, int],
                                             rule: str | None) -> None:
    """Redactions use events/events_default (rule 8); the redact level (here 100) is ignored."""
    room = make_room(version, redact=100, events=events)
    target = room.send("m.room.message", MOD, {"body": "oops"})
    event = room.build("m.room.redaction", ALICE, {}, redacts=target.event_id)
    assert event.redacts == target.event_id
    expect(rule, check_auth_rules, event, room.auth_state())


# Creators and power -----------------------------------------------------------------


def _v12_creators_room() -> Room:
    """v12 room: CREATOR and additional creator ALICE (both unlisted), MOD/MOD2 at 100."""
    return make_room(ROOM_V12, create_content={"additional_creators": [ALICE]})


@pytest.mark.parametrize("sender", [CREATOR, ALICE])
def test_v12_creators_can_kick_and_ban_power_100(sender: str) -> None:
    """v12: creators (sender and additional creators) outrank any listed level."""
    room = _v12_creators_room()
    allows(room, member(room, sender, "leave", MOD))
    allows(room, member(room, sender, "ban", MOD))


@pytest.mark.parametrize("membership, rule", [("leave", "5.5.5"), ("ban", "5.6.3")])
@pytest.mark.parametrize("target", [CREATOR, ALICE])
def test_v12_nobody_can_kick_or_ban_a_creator(target: str, membership: str, rule: str) -> None:
    """v12: a user at 100 (even MOD) cannot kick or ban a creator, whose power is infinite."""
    room = _v12_creators_room()
    rejects(room, member(room, MOD, membership, target), rule)


def test_v11_additional_creators_have_no_power() -> None:
    """v11: additional_creators means nothing; ALICE has users_default 0."""
    room = make_room(ROOM_V11, create_content={"additional_creators": [ALICE]})
    rejects(room, member(room, ALICE, "leave", MOD), "5.5.5")


@pytest.mark.parametrize("version, rule", [(ROOM_V11, "10.10"), (ROOM_V12, None)],
                         ids=["v11", "v12"])
def test_creator_granting_high_levels(version: RoomVersion, rule: str | None) -> None:
    """10.10: a v11 creator is capped at its listed 100; a v12 creator is not."""
    room = make_room(version)
    event = _edit_levels(room, CREATOR, ("users/" + BOB, 2**53 - 1))
    expect(rule, check_auth_rules, event, room.auth_state())


@pytest.mark.parametrize("version, sender, rule", [
    (ROOM_V10, ALICE, None),  # v10: content.creator has 100 with no power levels
    (ROOM_V10, CREATOR, "8"),
    (ROOM_V11, CREATOR, None),  # v11: the sender is the creator
    (ROOM_V11, ALICE, "8"),
    (ROOM_V12, CREATOR, None),
    (ROOM_V12, ALICE, "8"),
], ids=["v10-content-creator", "v10-sender", "v11-sender", "v11-content-creator",
        "v12-sender", "v12-content-creator"])
def test_creator_power_without_power_levels(version: RoomVersion, sender: str,
                                            rule: str | None) -> None:
    """Without power levels only the creator has power: v10 content.creator, v11+ sender."""
    room = make_room(version, members=(ALICE,), create_content={"creator": ALICE})
    state = {k: e for k, e in room.auth_state().items() if k != POWER_LEVELS_KEY}
    event = room.build("m.room.name", sender, {"name": "x"}, state_key="")
    expect(rule, check_auth_rules, event, state)
