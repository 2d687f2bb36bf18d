"""The server-default rules are the spec's, word for word.

`spec_default_rules_v1_19.json` holds the JSON definitions extracted from the
spec's push module (v1.19), plus the three legacy mention rules from v1.16.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from homeserver.push.rules import KINDS, default_rules, localpart

FIXTURE = json.loads((Path(__file__).parent / "spec_default_rules_v1_19.json").read_text())
USER = "@alice:example.org"


def _fill(value: Any) -> Any:
    if value == "[the user's Matrix ID]":
        return USER
    if value == "[the local part of the user's Matrix ID]":
        return "alice"
    if isinstance(value, dict):
        return {k: _fill(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v) for v in value]
    return value


def _ours(kind: str) -> dict[str, dict[str, Any]]:
    return {r.rule_id: r.to_json() for r in default_rules(USER, kind)}


@pytest.mark.parametrize("kind", ["override", "underride"])
def test_spec_rules_are_exact(kind: str) -> None:
    ours = _ours(kind)
    for spec_rule in FIXTURE["rules"][kind]:
        assert ours[spec_rule["rule_id"]] == _fill(spec_rule), spec_rule["rule_id"]


@pytest.mark.parametrize("kind", ["override", "underride"])
def test_spec_order_is_kept(kind: str) -> None:
    spec_ids = [r["rule_id"] for r in FIXTURE["rules"][kind]]
    ours = [rid for rid in _ours(kind) if rid in spec_ids]
    assert ours == spec_ids


def test_legacy_rules_are_the_v1_16_definitions() -> None:
    legacy = FIXTURE["legacy_v1_16"]["rules"]
    ours = {**_ours("override"), **_ours("content")}
    for rule_id, spec_rule in legacy.items():
        assert ours[rule_id] == _fill(spec_rule)


def test_legacy_rules_sit_where_v1_16_put_them() -> None:
    order = list(_ours("override"))
    assert order.index(".m.rule.contains_display_name") == \
        order.index(".m.rule.is_user_mention") + 1
    assert order.index(".m.rule.roomnotif") == order.index(".m.rule.is_room_mention") + 1
    assert list(_ours("content")) == [".m.rule.contains_user_name"]


def test_no_default_room_or_sender_rules() -> None:
    assert default_rules(USER, "room") == [] and default_rules(USER, "sender") == []


def test_every_default_rule_id_starts_with_a_dot_and_is_marked_default() -> None:
    for kind in KINDS:
        for rule in default_rules(USER, kind):
            assert rule.rule_id.startswith(".") and rule.default


def test_master_is_disabled_by_default_and_others_enabled() -> None:
    for kind in KINDS:
        for rule in default_rules(USER, kind):
            assert rule.enabled is (rule.rule_id != ".m.rule.master")


def test_defaults_are_per_user_copies() -> None:
    first = default_rules(USER, "override")
    first[2].conditions[2]["pattern"] = "mutated"
    assert default_rules(USER, "override")[2].conditions[2]["pattern"] == USER
    bob = {r.rule_id: r for r in default_rules("@bob:example.org", "override")}
    assert bob[".m.rule.invite_for_me"].conditions[2]["pattern"] == "@bob:example.org"


def test_localpart() -> None:
    assert localpart("@alice:example.org") == "alice"
    assert localpart("@a:b:8448") == "a"
