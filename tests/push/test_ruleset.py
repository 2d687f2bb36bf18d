"""A user's changes to their push rules: PUT/DELETE/enabled/actions semantics."""

from __future__ import annotations

from typing import Any

import pytest

from federation.protocol.errors import MatrixError
from homeserver.push.ruleset import UserPushRules

ALICE = "@alice:example.org"


def ids(rules: UserPushRules, kind: str) -> list[str]:
    return [r["rule_id"] for r in rules.ruleset_json(ALICE)[kind]]


def user_ids(rules: UserPushRules, kind: str) -> list[str]:
    return [r for r in ids(rules, kind) if not r.startswith(".")]


def error(fn: Any, *args: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(MatrixError) as info:
        fn(*args, **kwargs)
    return info.value.status, info.value.errcode


def test_ruleset_shape() -> None:
    ruleset = UserPushRules().ruleset_json(ALICE)
    assert set(ruleset) == {"override", "content", "room", "sender", "underride"}
    assert ruleset["override"][0]["rule_id"] == ".m.rule.master"
    for kind, rules in ruleset.items():
        for rule in rules:
            assert {"rule_id", "default", "enabled", "actions"} <= set(rule)
            assert ("conditions" in rule) is (kind in ("override", "underride"))
            assert ("pattern" in rule) is (kind == "content")


def test_put_creates_an_enabled_rule_with_its_kinds_fields() -> None:
    rules = UserPushRules()
    rules.put("content", "cake", {"pattern": "cake", "actions": ["notify"]})
    rules.put("room", "!r:example.org", {"actions": [], "conditions": [{"kind": "x"}]})
    rules.put("override", "o", {"actions": ["notify"]})
    assert rules.get(ALICE, "content", "cake").to_json() == {
        "rule_id": "cake", "default": False, "enabled": True, "actions": ["notify"],
        "pattern": "cake"}
    assert rules.get(ALICE, "room", "!r:example.org").to_json() == {
        "rule_id": "!r:example.org", "default": False, "enabled": True, "actions": []}
    assert rules.get(ALICE, "override", "o").to_json()["conditions"] == []


def test_new_rules_go_first_and_user_rules_follow_master() -> None:
    rules = UserPushRules()
    rules.put("override", "a", {"actions": []})
    rules.put("override", "b", {"actions": []})
    assert ids(rules, "override")[:3] == [".m.rule.master", "b", "a"]
    rules.put("underride", "u", {"actions": []})
    assert ids(rules, "underride")[0] == "u"


def test_before_and_after() -> None:
    rules = UserPushRules()
    for name in ("c", "b", "a"):
        rules.put("sender", f"@{name}:x", {"actions": []})
    assert user_ids(rules, "sender") == ["@a:x", "@b:x", "@c:x"]
    rules.put("sender", "@d:x", {"actions": []}, after="@a:x")
    assert user_ids(rules, "sender") == ["@a:x", "@d:x", "@b:x", "@c:x"]
    rules.put("sender", "@e:x", {"actions": []}, before="@c:x")
    assert user_ids(rules, "sender") == ["@a:x", "@d:x", "@b:x", "@e:x", "@c:x"]
    # With both, `before` decides (spec).
    rules.put("sender", "@f:x", {"actions": []}, before="@a:x", after="@c:x")
    assert user_ids(rules, "sender")[0] == "@f:x"
    # Moving an existing rule.
    rules.put("sender", "@c:x", {"actions": []}, before="@f:x")
    assert user_ids(rules, "sender")[:2] == ["@c:x", "@f:x"]


def test_update_keeps_position_and_enabled_flag() -> None:
    rules = UserPushRules()
    rules.put("content", "x", {"pattern": "x", "actions": []})
    rules.put("content", "y", {"pattern": "y", "actions": []})
    rules.set_enabled(ALICE, "content", "x", False)
    rules.put("content", "x", {"pattern": "x2", "actions": ["notify"]})
    rule = rules.get(ALICE, "content", "x")
    assert (rule.pattern, rule.actions, rule.enabled) == ("x2", ["notify"], False)
    assert user_ids(rules, "content") == ["y", "x"]


@pytest.mark.parametrize("kind, rule_id, body, expected", [
    ("content", ".m.rule.mine", {"pattern": "x", "actions": []}, (400, "M_INVALID_PARAM")),
    ("override", ".m.rule.master", {"actions": []}, (400, "M_INVALID_PARAM")),
    ("content", "a/b", {"pattern": "x", "actions": []}, (400, "M_INVALID_PARAM")),
    ("content", "a\\b", {"pattern": "x", "actions": []}, (400, "M_INVALID_PARAM")),
    ("content", "", {"pattern": "x", "actions": []}, (400, "M_INVALID_PARAM")),
    ("global", "x", {"actions": []}, (400, "M_INVALID_PARAM")),
    ("content", "x", {"pattern": "x"}, (400, "M_MISSING_PARAM")),
    ("content", "x", {"actions": []}, (400, "M_MISSING_PARAM")),
    ("content", "x", {"pattern": 5, "actions": []}, (400, "M_MISSING_PARAM")),
    ("content", "x", {"pattern": "x", "actions": "notify"}, (400, "M_INVALID_PARAM")),
    ("content", "x", {"pattern": "x", "actions": ["explode"]}, (400, "M_INVALID_PARAM")),
    ("content", "x", {"pattern": "x", "actions": [{"tweak": "x"}]}, (400, "M_INVALID_PARAM")),
    ("override", "x", {"actions": [], "conditions": {}}, (400, "M_INVALID_PARAM")),
    ("override", "x", {"actions": [], "conditions": [{"key": "type"}]},
     (400, "M_INVALID_PARAM")),
    ("override", "x", {"actions": [], "conditions": ["x"]}, (400, "M_INVALID_PARAM")),
])
def test_put_errors(kind: str, rule_id: str, body: dict[str, Any],
                    expected: tuple[int, str]) -> None:
    rules = UserPushRules()
    assert error(rules.put, kind, rule_id, body) == expected
    assert rules.to_json() == UserPushRules().to_json()  # nothing changed


def test_put_relative_to_missing_or_default_rule_fails() -> None:
    rules = UserPushRules()
    rules.put("override", "a", {"actions": []})
    assert error(rules.put, "override", "b", {"actions": []}, before="zzz") == (400, "M_UNKNOWN")
    assert error(rules.put, "override", "b", {"actions": []}, after="zzz") == (400, "M_UNKNOWN")
    assert error(rules.put, "override", "b", {"actions": []},
                 before=".m.rule.master") == (400, "M_UNKNOWN")
    assert error(rules.put, "override", "a", {"actions": []}, before="a") == (400, "M_UNKNOWN")
    assert user_ids(rules, "override") == ["a"]


def test_historical_actions_are_stripped() -> None:
    rules = UserPushRules()
    rules.put("room", "!r:x", {"actions": ["dont_notify"]})
    assert rules.get(ALICE, "room", "!r:x").actions == []
    rules.set_actions(ALICE, "room", "!r:x", ["notify", "coalesce"])
    assert rules.get(ALICE, "room", "!r:x").actions == ["notify"]


def test_delete() -> None:
    rules = UserPushRules()
    rules.put("sender", "@spam:x", {"actions": []})
    rules.delete("sender", "@spam:x")
    assert user_ids(rules, "sender") == []
    assert error(rules.delete, "sender", "@spam:x") == (404, "M_NOT_FOUND")
    assert error(rules.delete, "override", ".m.rule.master") == (404, "M_NOT_FOUND")
    assert error(rules.delete, "underride", ".m.rule.message") == (404, "M_NOT_FOUND")
    assert error(rules.delete, "nonsense", "x") == (400, "M_INVALID_PARAM")


def test_enable_and_actions_of_default_rules() -> None:
    rules = UserPushRules()
    rules.set_enabled(ALICE, "underride", ".m.rule.message", False)
    rules.set_actions(ALICE, "underride", ".m.rule.message", ["notify", {"set_tweak": "sound",
                                                                        "value": "x"}])
    rule = rules.get(ALICE, "underride", ".m.rule.message")
    assert rule.default and not rule.enabled
    assert rule.actions == ["notify", {"set_tweak": "sound", "value": "x"}]
    assert ids(rules, "underride") == ids(UserPushRules(), "underride")  # not moved


def test_attributes_of_unknown_rules_are_not_found() -> None:
    rules = UserPushRules()
    assert error(rules.set_enabled, ALICE, "override", "nope", True) == (404, "M_NOT_FOUND")
    assert error(rules.set_actions, ALICE, "content", ".m.rule.master", []) == \
        (404, "M_NOT_FOUND")  # master is an override rule
    assert error(rules.get, ALICE, "room", "nope") == (404, "M_NOT_FOUND")
    assert error(rules.set_actions, ALICE, "override", ".m.rule.master", "x") == \
        (400, "M_INVALID_PARAM")


def test_json_round_trip_and_copies_are_independent() -> None:
    rules = UserPushRules()
    rules.put("content", "x", {"pattern": "x", "actions": ["notify"]})
    rules.set_enabled(ALICE, "override", ".m.rule.master", True)
    again = UserPushRules.from_json(rules.to_json())
    assert again.ruleset_json(ALICE) == rules.ruleset_json(ALICE)
    copy = rules.copy()
    copy.delete("content", "x")
    assert user_ids(rules, "content") == ["x"]


@pytest.mark.parametrize("doc", [None, {}, {"rules": "x"}, {"rules": {"bogus": []}},
                                 {"defaults": []}])
def test_odd_documents_read_as_defaults(doc: Any) -> None:
    assert UserPushRules.from_json(doc).ruleset_json(ALICE) == \
        UserPushRules().ruleset_json(ALICE)
