"""FederationReadHandler: what other servers may read of our rooms, in-process
with the real room writer and SQLite (transactions run inline)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock as ReactorClock

from homeserver.clock import Clock
from homeserver.handlers.federation_reads import (
    MAX_BACKFILL,
    FederationReadHandler,
    MissingEventsQuery,
)
from homeserver.rooms.state_reader import StateReader
from homeserver.storage.event_graph import EventGraphStore
from homeserver.storage.events import EventStore

from .inprocess import ALICE, BOB, HS, REMOTE, STRANGER, Env, build_env, done, refused


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from build_env(tmp_path)


# /event -----------------------------------------------------------------------------


def test_event_is_served_exactly_as_stored_to_a_server_in_the_room(env: Env) -> None:
    room = env.room(preset="public_chat")
    env.join(room)
    msg = env.message(room, "hello")
    answer = done(env.reads.event(REMOTE, msg))
    assert answer["origin"] == HS and answer["origin_server_ts"] == 1_700_000_000_000
    assert answer["pdus"] == [env.stored_json(msg)]
    assert answer["pdus"][0]["signatures"][HS]


def test_event_is_refused_to_a_server_without_members(env: Env) -> None:
    room = env.room(preset="public_chat")
    msg = env.message(room, "private")
    error = refused(env.reads.event(STRANGER, msg))
    assert (error.status, error.errcode) == (403, "M_FORBIDDEN")


def test_world_readable_rooms_are_readable_by_any_server(env: Env) -> None:
    room = env.room(preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}])
    msg = env.message(room, "for everyone")
    assert done(env.reads.event(STRANGER, msg))["pdus"] == [env.stored_json(msg)]


def test_a_server_that_left_may_still_read_what_it_was_present_for(env: Env) -> None:
    room = env.room(preset="public_chat")
    env.join(room)
    during = env.message(room, "while bob was here")
    env.send(room, "m.room.member", {"membership": "leave"}, BOB, BOB)
    after = env.message(room, "after bob left")
    assert done(env.reads.event(REMOTE, during))["pdus"][0]["content"]["body"] == \
        "while bob was here"
    assert refused(env.reads.event(REMOTE, after)).status == 403


def test_server_acl_denies_even_a_joined_server(env: Env) -> None:
    room = env.room(preset="public_chat")
    env.join(room)
    msg = env.message(room, "hi")
    env.send(room, "m.room.server_acl", {"allow": ["*"], "deny": [REMOTE]}, state_key="")
    error = refused(env.reads.event(REMOTE, msg))
    assert (error.status, error.errcode, error.message) == \
        (403, "M_FORBIDDEN", "Server is banned from this room")


def test_unknown_and_rejected_events_are_not_found(env: Env) -> None:
    room = env.room(preset="public_chat")
    env.join(room)
    msg = env.message(room, "doomed")
    env.reject(msg)
    fresh = FederationReadHandler(*_handler_parts(env))  # no cached copy of the event
    for event_id in ("$unknown", msg):
        error = refused(fresh.event(REMOTE, event_id))
        assert (error.status, error.errcode) == (404, "M_NOT_FOUND")


def _handler_parts(env: Env) -> tuple[Any, ...]:
    events = EventStore(env.db)
    return (events, EventGraphStore(env.db), StateReader(events), env.writer,
            Clock(ReactorClock()), HS)


def test_redacted_events_are_served_redacted(env: Env) -> None:
    room = env.room(preset="public_chat")
    env.join(room)
    msg = env.message(room, "secret")
    env.send(room, "m.room.redaction", {}, redacts=msg)
    pdu = done(env.reads.event(REMOTE, msg))["pdus"][0]
    assert pdu["content"] == {}
    assert pdu["signatures"] == env.stored_json(msg)["signatures"]
    assert pdu["hashes"] == env.stored_json(msg)["hashes"]


def test_events_before_a_server_joined_a_joined_only_room_are_served_redacted(
        env: Env) -> None:
    room = env.room(preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}])
    before = env.message(room, "before bob")
    env.join(room)
    after = env.message(room, "after bob")
    assert done(env.reads.event(REMOTE, before))["pdus"][0]["content"] == {}
    assert done(env.reads.event(REMOTE, after))["pdus"][0]["content"]["body"] == "after bob"


# /state, /state_ids, /event_auth ---------------------------------------------------


def test_state_ids_are_the_state_before_the_event_with_its_auth_chain(env: Env) -> None:
    room = env.room(preset="public_chat")
    state_before_join = done(env.writer.current_state_events(room))
    join = env.join(room)
    answer = done(env.reads.state_ids(REMOTE, room, join))
    assert set(answer["pdu_ids"]) == {e.event_id for e in state_before_join.values()}
    # The auth chain of the state: its create, creator join and power levels at least.
    create = state_before_join[("m.room.create", "")].event_id
    power = state_before_join[("m.room.power_levels", "")].event_id
    assert {create, power} <= set(answer["auth_chain_ids"])
    assert join not in answer["pdu_ids"] + answer["auth_chain_ids"]


def test_state_carries_the_full_pdus(env: Env) -> None:
    room = env.room(preset="public_chat")
    env.join(room)
    msg = env.message(room, "x")
    ids = done(env.reads.state_ids(REMOTE, room, msg))
    full = done(env.reads.state(REMOTE, room, msg))
    assert sorted(env.stored_json(eid)["type"] for eid in ids["pdu_ids"]) == \
        sorted(p["type"] for p in full["pdus"])
    assert [env.stored_json(eid) for eid in sorted(ids["auth_chain_ids"])] == \
        full["auth_chain"]


def test_state_of_an_event_in_another_room_or_unknown_is_not_found(env: Env) -> None:
    room = env.room(preset="public_chat")
    other = env.room(preset="public_chat")
    env.join(room)
    env.join(other)
    msg = env.message(other, "elsewhere")
    for event_id in (msg, "$nope"):
        error = refused(env.reads.state_ids(REMOTE, room, event_id))
        assert (error.status, error.errcode) == (404, "M_NOT_FOUND")
    assert refused(env.reads.state_ids(REMOTE, "!unknown:hs.example", msg)).status == 404


def test_state_ids_refused_to_a_stranger(env: Env) -> None:
    room = env.room(preset="public_chat")
    msg = env.message(room, "x")
    assert refused(env.reads.state_ids(STRANGER, room, msg)).status == 403
    assert refused(env.reads.state(STRANGER, room, msg)).status == 403


def test_event_auth_is_the_full_auth_chain(env: Env) -> None:
    room = env.room(preset="public_chat")
    join = env.join(room)
    msg = env.message(room, "x", sender=BOB)
    chain = done(env.reads.event_auth(REMOTE, room, msg))["auth_chain"]
    types = sorted((p["type"], p.get("state_key")) for p in chain)
    # The message's auth events (create, power levels, Bob's join) and theirs
    # (Alice's join, the join rules Bob's join was allowed by).
    assert types == sorted([("m.room.create", ""), ("m.room.power_levels", ""),
                            ("m.room.member", ALICE), ("m.room.member", BOB),
                            ("m.room.join_rules", "")])
    assert env.stored_json(join) in chain


def test_event_auth_in_a_v12_room_includes_the_create_event(env: Env) -> None:
    room_id, _ = done(env.creation.create_room(ALICE, {"room_version": "12",
                                                       "preset": "public_chat"}))
    env.join(room_id)
    msg = env.message(room_id, "v12", sender=BOB)
    chain = done(env.reads.event_auth(REMOTE, room_id, msg))["auth_chain"]
    creates = [p for p in chain if p["type"] == "m.room.create"]
    assert len(creates) == 1 and "room_id" not in creates[0]


# /backfill and /get_missing_events ----------------------------------------------------


def test_backfill_walks_back_from_the_given_events(env: Env) -> None:
    room = env.room(preset="public_chat")
    env.join(room)
    ids = [env.message(room, f"m{i}") for i in range(5)]
    answer = done(env.reads.backfill(REMOTE, room, [ids[-1]], 3))
    assert [p["content"]["body"] for p in answer["pdus"]] == ["m4", "m3", "m2"]
    assert answer["origin"] == HS


def test_backfill_limit_is_capped(env: Env) -> None:
    room = env.room(preset="public_chat")
    env.join(room)
    last = ""
    for i in range(MAX_BACKFILL + 10):
        last = env.message(room, f"m{i}")
    assert len(done(env.reads.backfill(REMOTE, room, [last], 10**9))["pdus"]) == MAX_BACKFILL


def test_backfill_refuses_strangers_and_too_many_ids(env: Env) -> None:
    room = env.room(preset="public_chat")
    env.join(room)
    msg = env.message(room, "x")
    assert refused(env.reads.backfill(STRANGER, room, [msg], 10)).status == 403
    error = refused(env.reads.backfill(REMOTE, room, [msg] * 1000, 10))
    assert (error.status, error.errcode) == (400, "M_INVALID_PARAM")


def test_backfill_of_a_joined_only_room_redacts_what_the_server_could_not_see(
        env: Env) -> None:
    room = env.room(preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}])
    env.message(room, "hidden")
    env.join(room)
    last = env.message(room, "seen")
    bodies = [p["content"].get("body") for p in
              done(env.reads.backfill(REMOTE, room, [last], 3))["pdus"]]
    assert bodies == ["seen", None, None]  # the message, Bob's join (no body), the hidden one


def test_get_missing_events_fills_the_gap_oldest_first(env: Env) -> None:
    room = env.room(preset="public_chat")
    env.join(room)
    ids = [env.message(room, f"m{i}") for i in range(6)]
    answer = done(env.reads.missing_events(REMOTE, MissingEventsQuery(
        room, earliest=[ids[0]], latest=[ids[5]], limit=10)))
    assert [p["content"]["body"] for p in answer["events"]] == ["m1", "m2", "m3", "m4"]
    limited = done(env.reads.missing_events(REMOTE, MissingEventsQuery(
        room, earliest=[ids[0]], latest=[ids[5]], limit=2)))
    assert [p["content"]["body"] for p in limited["events"]] == ["m3", "m4"]
    huge = done(env.reads.missing_events(REMOTE, MissingEventsQuery(
        room, earliest=[], latest=[ids[5]], limit=10**9, min_depth=-5)))
    assert len(huge["events"]) > 6


def test_get_missing_events_refused_to_strangers(env: Env) -> None:
    room = env.room(preset="public_chat")
    msg = env.message(room, "x")
    error = refused(env.reads.missing_events(STRANGER, MissingEventsQuery(room, [], [msg])))
    assert (error.status, error.errcode) == (403, "M_FORBIDDEN")
