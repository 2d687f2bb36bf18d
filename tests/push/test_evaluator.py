"""Evaluating push rules: every condition, every default rule, priorities."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.push.evaluator import PushContext, evaluate, lookup, split_path
from homeserver.push.rules import PushRule
from homeserver.push.ruleset import UserPushRules

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!room:example.org"
NAME = "Queen Of Hearts"


def event(event_type: str = "m.room.message", content: dict[str, Any] | None = None,
          sender: str = BOB, state_key: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": event_type, "sender": sender, "room_id": ROOM,
                           "content": content if content is not None else {}}
    if state_key is not None:
        out["state_key"] = state_key
    return out


def message(body: str = "hello", msgtype: str = "m.text", **extra: Any) -> dict[str, Any]:
    return event(content={"msgtype": msgtype, "body": body, **extra})


def context(members: int = 5, level: int | None = 0, **levels: int) -> PushContext:
    return PushContext(room_member_count=members, sender_power_level=level,
                       notification_levels=levels)


def decide(ev: dict[str, Any], rules: UserPushRules | None = None, ctx: PushContext | None = None,
           name: str | None = NAME) -> str | None:
    """The rule ID that decides for Alice, or None."""
    ordered = (rules or UserPushRules()).ordered(ALICE)
    decision = evaluate(ordered, ev, ctx or context(), ALICE, name)
    return decision.rule_id if decision else None


def rule(rule_id: str, rules: UserPushRules | None = None) -> PushRule:
    return next(r for r in (rules or UserPushRules()).ordered(ALICE) if r.rule_id == rule_id)


def alone(rule_id: str, ev: dict[str, Any], ctx: PushContext | None = None,
          name: str | None = NAME) -> bool:
    """Whether this rule on its own matches the event."""
    single = rule(rule_id).with_changes(enabled=True)
    return evaluate([single], ev, ctx or context(), ALICE, name) is not None


def mentions(user_ids: list[str] | None = None, room: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if user_ids is not None:
        out["user_ids"] = user_ids
    if room is not None:
        out["room"] = room
    return {"m.mentions": out}


# Each default rule: (rule, an event it decides, its context, an event it does not match).
DEFAULT_CASES: list[tuple[str, dict[str, Any], PushContext, dict[str, Any]]] = [
    (".m.rule.suppress_notices", message(msgtype="m.notice"), context(), message()),
    (".m.rule.invite_for_me",
     event("m.room.member", {"membership": "invite"}, state_key=ALICE), context(),
     event("m.room.member", {"membership": "invite"}, state_key="@carol:example.org")),
    (".m.rule.member_event", event("m.room.member", {"membership": "join"}, state_key=BOB),
     context(), message()),
    (".m.rule.is_user_mention", message("hi", **mentions([ALICE])), context(),
     message("hi", **mentions([BOB]))),
    (".m.rule.contains_display_name", message(f"hey {NAME}!"), context(),
     message(f"hey {NAME}x")),
    (".m.rule.is_room_mention", message("all", **mentions(room=True)), context(level=50),
     message("all", **mentions(room="true"))),
    (".m.rule.roomnotif", message("@room lunch"), context(level=50), message("@roomy lunch")),
    (".m.rule.tombstone", event("m.room.tombstone", {"body": "moved"}, state_key=""),
     context(), event("m.room.tombstone", {"body": "moved"})),
    (".m.rule.reaction", event("m.reaction", {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": "$x", "key": "+1"}}), context(),
     event("m.room.message.reaction")),
    (".m.rule.room.server_acl", event("m.room.server_acl", {"allow": ["*"]}, state_key=""),
     context(), event("m.room.server_acl", {"allow": ["*"]}, state_key="x")),
    (".m.rule.suppress_edits",
     message("* fixed", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}),
     context(), message("reply", **{"m.relates_to": {"rel_type": "m.thread",
                                                      "event_id": "$x"}})),
    (".m.rule.contains_user_name", message("ping alice"), context(), message("ping alicex")),
    (".m.rule.call", event("m.call.invite", {"call_id": "c"}), context(),
     event("m.call.answer", {"call_id": "c"})),
    (".m.rule.encrypted_room_one_to_one", event("m.room.encrypted", {"ciphertext": "x"}),
     context(members=2), event("m.room.encrypted", {"ciphertext": "x"})),
    (".m.rule.room_one_to_one", message(), context(members=2), message()),
    (".m.rule.message", message(), context(), event("m.room.topic", {"topic": "t"},
                                                    state_key="")),
    (".m.rule.encrypted", event("m.room.encrypted", {"ciphertext": "x"}), context(), message()),
]


@pytest.mark.parametrize("rule_id, matching, ctx, other", DEFAULT_CASES,
                         ids=[c[0] for c in DEFAULT_CASES])
def test_default_rule_matches_and_decides(rule_id: str, matching: dict[str, Any],
                                          ctx: PushContext, other: dict[str, Any]) -> None:
    assert decide(matching, ctx=ctx) == rule_id
    assert alone(rule_id, matching, ctx)


@pytest.mark.parametrize("rule_id, matching, ctx, other", DEFAULT_CASES,
                         ids=[c[0] for c in DEFAULT_CASES])
def test_default_rule_does_not_match_other_event(rule_id: str, matching: dict[str, Any],
                                                 ctx: PushContext, other: dict[str, Any]) -> None:
    # Room-size rules take their miss from the room, not the event.
    other_ctx = context(members=3) if "one_to_one" in rule_id else ctx
    assert not alone(rule_id, other, other_ctx)
    assert decide(other, ctx=other_ctx) != rule_id


def test_master_rule_silences_everything_when_enabled() -> None:
    assert decide(message()) == ".m.rule.message"
    rules = UserPushRules()
    rules.set_enabled(ALICE, "override", ".m.rule.master", True)
    for ev in (message(), message("hi", **mentions([ALICE])), message(NAME)):
        decision = evaluate(rules.ordered(ALICE), ev, context(), ALICE, NAME)
        assert decision is not None and decision.rule_id == ".m.rule.master"
        assert not decision.notify


def test_master_outranks_user_override_rules() -> None:
    rules = UserPushRules()
    rules.put("override", "mine", {"conditions": [], "actions": ["notify"]})
    assert decide(message(), rules) == "mine"
    rules.set_enabled(ALICE, "override", ".m.rule.master", True)
    assert decide(message(), rules) == ".m.rule.master"


def test_actions_of_default_rules() -> None:
    def actions(ev: dict[str, Any], ctx: PushContext | None = None) -> tuple[bool, bool, Any]:
        d = evaluate(UserPushRules().ordered(ALICE), ev, ctx or context(), ALICE, NAME)
        assert d is not None
        return d.notify, d.highlight, d.tweaks.get("sound")

    assert actions(message()) == (True, False, None)
    assert actions(message("hi", **mentions([ALICE]))) == (True, True, "default")
    assert actions(message(msgtype="m.notice")) == (False, False, None)
    assert actions(message(), context(members=2)) == (True, False, "default")
    assert actions(event("m.call.invite", {})) == (True, False, "ring")
    assert actions(message("all", **mentions(room=True)), context(level=100)) == \
        (True, True, None)


# Mentions --------------------------------------------------------------------

def test_m_mentions_disables_legacy_body_rules() -> None:
    body = f"{NAME} alice @room"
    assert decide(message(body), ctx=context(level=100)) == ".m.rule.contains_display_name"
    assert decide(message(body, **mentions([])), ctx=context(level=100)) == ".m.rule.message"
    # Even an empty m.mentions object counts as "has m.mentions".
    assert decide(message("alice", **{"m.mentions": {}})) == ".m.rule.message"


def test_user_mention_needs_exact_user_id_in_a_list() -> None:
    assert decide(message("x", **mentions([BOB, ALICE]))) == ".m.rule.is_user_mention"
    assert decide(message("x", **mentions(["@ALICE:example.org"]))) == ".m.rule.message"
    assert decide(message("x", **{"m.mentions": {"user_ids": ALICE}})) == ".m.rule.message"


def test_room_mention_needs_sender_permission() -> None:
    ev = message("x", **mentions(room=True))
    assert decide(ev, ctx=context(level=49)) == ".m.rule.message"
    assert decide(ev, ctx=context(level=50)) == ".m.rule.is_room_mention"
    assert decide(ev, ctx=context(level=10, room=10)) == ".m.rule.is_room_mention"
    assert decide(ev, ctx=context(level=None)) == ".m.rule.message"


def test_legacy_display_name_rule() -> None:
    assert decide(message(f"{NAME.upper()}, tea?")) == ".m.rule.contains_display_name"
    assert decide(message("Queen Of")) == ".m.rule.message"  # part of the name
    assert decide(message(f"hi {NAME}"), name=None) == ".m.rule.message"
    assert decide(message("anything"), name="") == ".m.rule.message"  # empty never matches


def test_legacy_localpart_rule_is_a_content_rule() -> None:
    d = evaluate(UserPushRules().ordered(ALICE), message("ALICE: ping"), context(), ALICE)
    assert d is not None and d.kind == "content" and d.highlight


# Priorities ------------------------------------------------------------------

def _all_kinds() -> UserPushRules:
    rules = UserPushRules()
    rules.put("override", "o", {"conditions": [{"kind": "event_match", "key": "content.body",
                                                "pattern": "hello"}], "actions": ["notify"]})
    rules.put("content", "c", {"pattern": "hello", "actions": ["notify"]})
    rules.put("room", ROOM, {"actions": ["notify"]})
    rules.put("sender", BOB, {"actions": ["notify"]})
    rules.put("underride", "u", {"conditions": [], "actions": ["notify"]})
    return rules


def test_kind_priority_override_content_room_sender_underride() -> None:
    rules = _all_kinds()
    order = ["o", "c", ROOM, BOB, "u"]
    kinds = ["override", "content", "room", "sender", "underride"]
    for rule_id, kind in zip(order, kinds, strict=True):
        assert decide(message("hello"), rules) == rule_id
        rules.set_enabled(ALICE, kind, rule_id, False)
    assert decide(message("hello"), rules) == ".m.rule.message"


def test_user_rules_outrank_defaults_of_their_kind() -> None:
    rules = UserPushRules()
    rules.put("override", "notices", {"conditions": [
        {"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}],
        "actions": ["notify"]})
    assert decide(message(msgtype="m.notice"), rules) == "notices"
    rules.put("underride", "all", {"conditions": [], "actions": []})
    assert decide(message(), rules) == "all"  # a user underride beats .m.rule.message


def test_room_and_sender_rules_match_exactly() -> None:
    rules = UserPushRules()
    rules.put("room", "!other:example.org", {"actions": []})
    rules.put("sender", "@bob:example.org*", {"actions": []})
    assert decide(message(), rules) == ".m.rule.message"
    rules.put("sender", BOB, {"actions": []})
    assert decide(message(), rules) == BOB


def test_order_within_a_kind_and_before_after() -> None:
    rules = UserPushRules()
    for name in ("a", "b"):
        rules.put("content", name, {"pattern": "hello", "actions": ["notify"]})
    assert decide(message("hello"), rules) == "b"  # newest is the most important
    rules.put("content", "c", {"pattern": "hello", "actions": []}, after="a")
    assert decide(message("hello"), rules) == "b"
    rules.put("content", "c", {"pattern": "hello", "actions": []}, before="b")
    assert decide(message("hello"), rules) == "c"


def test_disabled_rules_are_skipped() -> None:
    rules = UserPushRules()
    rules.set_enabled(ALICE, "override", ".m.rule.suppress_notices", False)
    assert decide(message(msgtype="m.notice"), rules) == ".m.rule.message"
    rules.set_enabled(ALICE, "underride", ".m.rule.message", False)
    assert decide(message(), rules) is None


def test_no_matching_rule_means_no_decision() -> None:
    assert decide(event("m.room.topic", {"topic": "x"}, state_key="")) is None


# Conditions ------------------------------------------------------------------

def cond(condition: dict[str, Any], ev: dict[str, Any], ctx: PushContext | None = None) -> bool:
    r = PushRule("override", "t", ["notify"], [condition])
    return evaluate([r], ev, ctx or context(), ALICE, NAME) is not None


def test_event_match_needs_a_string_value() -> None:
    ev = event(content={"n": 1, "t": None, "o": {"a": "b"}, "s": "x"})
    for key in ("content.n", "content.t", "content.o", "content.missing", "missing"):
        assert not cond({"kind": "event_match", "key": key, "pattern": "*"}, ev)
    assert cond({"kind": "event_match", "key": "content.s", "pattern": "*"}, ev)
    assert cond({"kind": "event_match", "key": "content.o.a", "pattern": "B"}, ev)


def test_event_match_is_whole_value_except_body() -> None:
    ev = event(content={"body": "I like cake", "topic": "I like cake"})
    assert cond({"kind": "event_match", "key": "content.body", "pattern": "cake"}, ev)
    assert not cond({"kind": "event_match", "key": "content.topic", "pattern": "cake"}, ev)


def test_dotted_paths_with_escapes() -> None:
    assert split_path("content.m\\.relates_to.rel_type") == ("content", "m.relates_to",
                                                             "rel_type")
    assert split_path("content.m\\\\foo") == ("content", "m\\foo")
    assert split_path("content.a\\xb") == ("content", "a\\xb")
    ev = event(content={"m.relates_to": {"rel_type": "m.replace"}, "m\\foo": "y",
                        "m": {"relates_to": "trap"}})
    assert lookup(ev, "content.m\\.relates_to.rel_type") == "m.replace"
    assert lookup(ev, "content.m\\\\foo") == "y"
    assert lookup(ev, "content.m.relates_to") == "trap"


@pytest.mark.parametrize("value, expected_match", [
    (True, True), (1, False), ("true", False), (None, False),
])
def test_event_property_is_does_not_cast(value: Any, expected_match: bool) -> None:
    ev = event("m.room.create", {"m.federate": True}, state_key="")
    assert cond({"kind": "event_property_is", "key": "content.m\\.federate",
                 "value": value}, ev) is expected_match


def test_event_property_is_values() -> None:
    ev = event(content={"n": 1, "z": None, "s": "x", "list": [1], "f": False})
    assert cond({"kind": "event_property_is", "key": "content.n", "value": 1}, ev)
    assert not cond({"kind": "event_property_is", "key": "content.n", "value": True}, ev)
    assert cond({"kind": "event_property_is", "key": "content.z", "value": None}, ev)
    assert not cond({"kind": "event_property_is", "key": "content.missing", "value": None}, ev)
    assert cond({"kind": "event_property_is", "key": "content.s", "value": "x"}, ev)
    assert not cond({"kind": "event_property_is", "key": "content.s", "value": "X"}, ev)
    assert not cond({"kind": "event_property_is", "key": "content.list", "value": [1]}, ev)
    assert not cond({"kind": "event_property_is", "key": "content.f", "value": 0}, ev)
    assert not cond({"kind": "event_property_is", "key": "content.s"}, ev)  # no value


def test_event_property_contains() -> None:
    ev = event("m.room.canonical_alias", {
        "alias": "#somewhere:localhost",
        "alt_aliases": ["#somewhere:example.org", "#myroom:example.com", 1, True, None, [2]],
    }, state_key="")

    def has(key: str, value: Any) -> bool:
        return cond({"kind": "event_property_contains", "key": key, "value": value}, ev)

    assert has("content.alt_aliases", "#myroom:example.com")
    assert not has("content.alt_aliases", ":example.com")  # partial values do not match
    assert has("content.alt_aliases", 1) and has("content.alt_aliases", True)
    assert has("content.alt_aliases", None)
    assert not has("content.alt_aliases", [2])  # compound values are ignored
    assert not has("content.alias", "#somewhere:localhost")  # not an array
    assert not has("content.missing", "x")


@pytest.mark.parametrize("is_, count, expected", [
    ("2", 2, True), ("2", 3, False), ("==2", 2, True), ("<2", 1, True), ("<2", 2, False),
    (">2", 3, True), (">2", 2, False), ("<=2", 2, True), ("<=2", 3, False),
    (">=2", 2, True), (">=2", 1, False), ("=2", 2, False), ("!=2", 3, False),
    ("two", 2, False), ("", 0, False), ("2.0", 2, False), ("> 2", 3, False),
])
def test_room_member_count(is_: str, count: int, expected: bool) -> None:
    assert cond({"kind": "room_member_count", "is": is_}, message(),
                context(members=count)) is expected


def test_room_member_count_without_is_never_matches() -> None:
    assert not cond({"kind": "room_member_count"}, message())


def test_sender_notification_permission() -> None:
    c = {"kind": "sender_notification_permission", "key": "room"}
    assert cond(c, message(), context(level=50))
    assert not cond(c, message(), context(level=49))
    assert cond(c, message(), context(level=0, room=0))
    assert not cond({"kind": "sender_notification_permission", "key": "custom"}, message(),
                    context(level=49, room=0))
    assert not cond({"kind": "sender_notification_permission"}, message(), context(level=100))


def test_contains_display_name_condition() -> None:
    c = {"kind": "contains_display_name"}
    assert cond(c, message(f"hello {NAME}"))
    assert not cond(c, event(content={"topic": NAME}))
    assert not cond(c, event(content={"body": 5}))


@pytest.mark.parametrize("condition", [
    {"kind": "org.example.unknown"},
    {"kind": "event_match", "key": "type"},
    {"kind": "event_match", "pattern": "*"},
    {"kind": "event_match", "key": 5, "pattern": "*"},
    {"kind": "event_property_is", "value": "m.room.message"},
    {},
])
def test_unknown_or_malformed_conditions_never_match(condition: dict[str, Any]) -> None:
    assert not cond(condition, message())


def test_rule_without_conditions_matches_everything() -> None:
    r = PushRule("override", "t", ["notify"], [])
    assert evaluate([r], event("x.y"), context(), ALICE) is not None


# Actions ---------------------------------------------------------------------

def test_tweaks_and_highlight() -> None:
    def decision(actions: list[Any]) -> Any:
        return evaluate([PushRule("override", "t", actions)], message(), context(), ALICE)

    assert decision([{"set_tweak": "highlight"}]).highlight
    assert not decision([{"set_tweak": "highlight", "value": False}]).highlight
    assert not decision(["notify"]).highlight
    d = decision(["notify", {"set_tweak": "sound", "value": "bing"}, {"set_tweak": "x"}])
    assert d.notify and d.tweaks == {"sound": "bing", "x": None}


def test_historical_actions_are_ignored() -> None:
    d = evaluate([PushRule("override", "t", ["dont_notify", "coalesce"])], message(),
                 context(), ALICE)
    assert d is not None and not d.notify and not d.highlight
