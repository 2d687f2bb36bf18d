"""The redaction algorithm per room version (rooms spec: v9-redactions, v11-redactions)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from federation.protocol.redaction import redact
from federation.protocol.room_versions import ROOM_V10, ROOM_V11, ROOM_V12, RoomVersion

ALL_VERSIONS = [ROOM_V10, ROOM_V11, ROOM_V12]
V11_PLUS = [ROOM_V11, ROOM_V12]

V11_TOP_LEVEL = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
    "depth", "prev_events", "auth_events", "origin_server_ts",
}
V10_TOP_LEVEL = V11_TOP_LEVEL | {"origin", "membership", "prev_state"}

POWER_LEVELS_CONTENT = {
    "ban": 50, "events": {"m.room.name": 100}, "events_default": 0, "invite": 0, "kick": 50,
    "redact": 50, "state_default": 50, "users": {"@a:x.org": 100}, "users_default": 0,
    "notifications": {"room": 50}, "historical": 100,
}


def _event(event_type: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": "$abc",
        "type": event_type,
        "room_id": "!r:x.org",
        "sender": "@a:x.org",
        "state_key": "",
        "content": content,
        "hashes": {"sha256": "aGFzaA"},
        "signatures": {"x.org": {"ed25519:1": "c2ln"}},
        "depth": 5,
        "prev_events": ["$p"],
        "auth_events": ["$q"],
        "origin_server_ts": 1234,
        "origin": "x.org",
        "membership": "join",
        "prev_state": [],
        "unsigned": {"age": 1},
        "redacts": "$target",
        "custom_top_level": {"a": 1},
        **extra,
    }


# Top level ----------------------------------------------------------------------


def test_v10_keeps_origin_membership_prev_state() -> None:
    redacted = redact(_event("m.room.message", {"body": "hi"}), ROOM_V10)
    assert set(redacted) == V10_TOP_LEVEL
    assert redacted["origin"] == "x.org"
    assert redacted["membership"] == "join"
    assert redacted["prev_state"] == []


@pytest.mark.parametrize("version", V11_PLUS, ids=lambda v: v.identifier)
def test_v11_drops_origin_membership_prev_state(version: RoomVersion) -> None:
    redacted = redact(_event("m.room.message", {"body": "hi"}), version)
    assert set(redacted) == V11_TOP_LEVEL
    for key in ("origin", "membership", "prev_state"):
        assert key not in redacted


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.identifier)
def test_unknown_top_level_keys_dropped(version: RoomVersion) -> None:
    redacted = redact(_event("m.room.message", {}), version)
    for key in ("unsigned", "redacts", "custom_top_level"):
        assert key not in redacted


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.identifier)
def test_kept_values_unchanged_and_input_not_mutated(version: RoomVersion) -> None:
    event = _event("m.room.member", {"membership": "join", "displayname": "A"})
    original = copy.deepcopy(event)
    redacted = redact(event, version)
    assert event == original
    for key in V11_TOP_LEVEL - {"content"}:
        assert redacted[key] == event[key]


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.identifier)
def test_missing_keys_are_not_invented_except_content(version: RoomVersion) -> None:
    redacted = redact({"type": "m.room.message", "sender": "@a:x.org"}, version)
    assert redacted == {"type": "m.room.message", "sender": "@a:x.org", "content": {}}


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.identifier)
@pytest.mark.parametrize("content", [None, [], "text", 5, [{"membership": "join"}]])
def test_non_object_content_becomes_empty(version: RoomVersion, content: Any) -> None:
    assert redact(_event("m.room.member", content), version)["content"] == {}


# Content ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.identifier)
@pytest.mark.parametrize(
    "event_type",
    ["m.room.message", "m.room.name", "m.room.topic", "m.room.encrypted", "org.example.custom",
     "m.room.member2", "M.ROOM.MEMBER", "m.room.canonical_alias", "m.room.guest_access"],
)
def test_unknown_types_lose_all_content(version: RoomVersion, event_type: str) -> None:
    content = {"body": "hi", "membership": "join", "join_rule": "public", "creator": "@a:x.org",
               "redacts": "$t", "history_visibility": "shared", "users": {}}
    assert redact(_event(event_type, content), version)["content"] == {}


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.identifier)
def test_member_content(version: RoomVersion) -> None:
    content = {
        "membership": "join",
        "join_authorised_via_users_server": "@b:y.org",
        "displayname": "A",
        "avatar_url": "mxc://x/y",
        "reason": "because",
        "is_direct": True,
    }
    assert redact(_event("m.room.member", content), version)["content"] == {
        "membership": "join",
        "join_authorised_via_users_server": "@b:y.org",
    }


def test_v10_member_drops_third_party_invite() -> None:
    content = {"membership": "invite",
               "third_party_invite": {"display_name": "b", "signed": {"mxid": "@b:y.org"}}}
    assert redact(_event("m.room.member", content), ROOM_V10)["content"] == {
        "membership": "invite"
    }


@pytest.mark.parametrize("version", V11_PLUS, ids=lambda v: v.identifier)
def test_v11_member_keeps_third_party_invite_signed_only(version: RoomVersion) -> None:
    signed = {"mxid": "@b:y.org", "token": "tok", "signatures": {"y.org": {"ed25519:1": "s"}}}
    content = {"membership": "invite",
               "third_party_invite": {"display_name": "b", "signed": signed}}
    assert redact(_event("m.room.member", content), version)["content"] == {
        "membership": "invite",
        "third_party_invite": {"signed": signed},
    }


@pytest.mark.parametrize("version", V11_PLUS, ids=lambda v: v.identifier)
@pytest.mark.parametrize("invite", [{"display_name": "b"}, "signed", ["signed"], None, {}])
def test_v11_member_third_party_invite_without_signed_dropped(
    version: RoomVersion, invite: Any
) -> None:
    content = {"membership": "invite", "third_party_invite": invite}
    assert redact(_event("m.room.member", content), version)["content"] == {
        "membership": "invite"
    }


def test_v10_create_keeps_only_creator() -> None:
    content = {"creator": "@a:x.org", "room_version": "10", "m.federate": False,
               "predecessor": {"room_id": "!old:x.org"}, "type": "m.space"}
    assert redact(_event("m.room.create", content), ROOM_V10)["content"] == {
        "creator": "@a:x.org"
    }


@pytest.mark.parametrize("version", V11_PLUS, ids=lambda v: v.identifier)
def test_v11_create_keeps_all_content(version: RoomVersion) -> None:
    content = {"room_version": version.identifier, "m.federate": False,
               "predecessor": {"room_id": "!old:x.org"}, "type": "m.space",
               "additional_creators": ["@b:y.org"], "anything": {"nested": [1, 2]}}
    assert redact(_event("m.room.create", content), version)["content"] == content


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.identifier)
def test_join_rules_keep_join_rule_and_allow(version: RoomVersion) -> None:
    allow = [{"type": "m.room_membership", "room_id": "!space:x.org"}]
    content = {"join_rule": "restricted", "allow": allow, "other": 1}
    assert redact(_event("m.room.join_rules", content), version)["content"] == {
        "join_rule": "restricted", "allow": allow,
    }


def test_v10_power_levels_content() -> None:
    kept = redact(_event("m.room.power_levels", POWER_LEVELS_CONTENT), ROOM_V10)["content"]
    assert set(kept) == {"ban", "events", "events_default", "kick", "redact", "state_default",
                         "users", "users_default"}
    assert kept["users"] == {"@a:x.org": 100}


@pytest.mark.parametrize("version", V11_PLUS, ids=lambda v: v.identifier)
def test_v11_power_levels_keep_invite(version: RoomVersion) -> None:
    kept = redact(_event("m.room.power_levels", POWER_LEVELS_CONTENT), version)["content"]
    assert set(kept) == {"ban", "events", "events_default", "invite", "kick", "redact",
                         "state_default", "users", "users_default"}
    assert kept["invite"] == 0
    assert "notifications" not in kept


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.identifier)
def test_history_visibility(version: RoomVersion) -> None:
    content = {"history_visibility": "joined", "other": True}
    assert redact(_event("m.room.history_visibility", content), version)["content"] == {
        "history_visibility": "joined"
    }


def test_v10_redaction_content_dropped() -> None:
    redacted = redact(_event("m.room.redaction", {"redacts": "$t", "reason": "spam"}), ROOM_V10)
    assert redacted["content"] == {}
    # The v10 top-level `redacts` isn't protected either.
    assert "redacts" not in redacted


@pytest.mark.parametrize("version", V11_PLUS, ids=lambda v: v.identifier)
def test_v11_redaction_keeps_redacts_in_content(version: RoomVersion) -> None:
    redacted = redact(_event("m.room.redaction", {"redacts": "$t", "reason": "spam"}), version)
    assert redacted["content"] == {"redacts": "$t"}
    assert "redacts" not in redacted


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.identifier)
@pytest.mark.parametrize(
    ("event_type", "content"),
    [
        ("m.room.member", {"membership": "join", "displayname": "A",
                           "third_party_invite": {"signed": {"a": 1}, "x": 2}}),
        ("m.room.create", {"creator": "@a:x.org", "room_version": "10"}),
        ("m.room.power_levels", POWER_LEVELS_CONTENT),
        ("m.room.redaction", {"redacts": "$t", "reason": "r"}),
        ("m.room.message", {"body": "x"}),
    ],
)
def test_redaction_is_idempotent(version: RoomVersion, event_type: str, content: dict) -> None:
    once = redact(_event(event_type, content), version)
    assert redact(once, version) == once


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.identifier)
def test_redacted_content_is_a_copy(version: RoomVersion) -> None:
    content = {"room_version": "11", "creator": "@a:x.org"}
    event = _event("m.room.create", content)
    redacted = redact(event, version)
    redacted["content"]["extra"] = 1
    assert "extra" not in event["content"]
