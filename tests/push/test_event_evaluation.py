"""EventEvaluation (one event, many recipients, shared plans) decides exactly
as `evaluate` does user by user, whatever the users changed in their rules."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from homeserver.push.evaluator import EventEvaluation, evaluate
from homeserver.push.rules import PushRule
from homeserver.push.ruleset import UserPushRules
from tests.push.test_evaluator import BOB, context, event, message, mentions

SERVER = "example.org"


def _users() -> list[tuple[str, str | None, list[PushRule]]]:
    """Users with default rules and users with every kind of change."""
    users = []
    for i in range(6):
        user_id = f"@user{i}:{SERVER}"
        users.append((user_id, f"Person {i}", UserPushRules().ordered(user_id)))
    changes = [
        lambda r, u: r.set_enabled(u, "underride", ".m.rule.message", False),
        lambda r, u: r.set_enabled(u, "override", ".m.rule.master", True),
        lambda r, u: r.set_actions(u, "underride", ".m.rule.message",
                                   ["notify", {"set_tweak": "highlight"}]),
        lambda r, u: r.set_enabled(u, "override", ".m.rule.suppress_notices", False),
        lambda r, u: r.put("content", "cake", {"pattern": "cake", "actions": ["notify"]}),
        lambda r, u: r.put("room", "!room:example.org", {"actions": []}),
        lambda r, u: r.put("sender", BOB, {"actions": ["notify", {"set_tweak": "highlight"}]}),
        lambda r, u: r.put("override", "cats", {
            "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "cat*"}],
            "actions": ["notify"]}),
    ]
    for i, change in enumerate(changes):
        user_id = f"@changed{i}:{SERVER}"
        rules = UserPushRules()
        change(rules, user_id)
        users.append((user_id, None if i % 3 == 0 else f"Changed {i}", rules.ordered(user_id)))
    return users


EVENTS: list[dict[str, Any]] = [
    message("hello"),
    message("a notice", msgtype="m.notice"),
    message("Person 3: are you there?"),
    message("user4 look at this"),
    message("I like cake"),
    message("cats and dogs"),
    message("@room wake up"),
    message("hi", **{"m.mentions": mentions(user_ids=[f"@user1:{SERVER}"])}),
    message("hi all", **{"m.mentions": mentions(room=True)}),
    event("m.room.member", {"membership": "invite"}, state_key=f"@user2:{SERVER}"),
    event("m.room.member", {"membership": "join"}, state_key=BOB),
    event("m.reaction", {"m.relates_to": {"rel_type": "m.annotation"}}),
    event("m.call.invite", {"call_id": "c"}),
    event("m.room.encrypted", {"algorithm": "x"}),
    event("m.room.tombstone", {"body": "moved"}, state_key=""),
]


@pytest.mark.parametrize("ev", EVENTS, ids=[str(i) for i in range(len(EVENTS))])
@pytest.mark.parametrize("members", [2, 20])
def test_shared_plans_decide_like_each_user_alone(ev: dict[str, Any], members: int) -> None:
    users = _users()
    ctx = context(members=members, level=100, room=50)
    together = EventEvaluation(ev, ctx)
    decided = []
    for user_id, name, rules in itertools.chain(users, reversed(users)):
        expected = evaluate(rules, ev, ctx, user_id, name)
        got = together.decide(rules, user_id, name)
        assert got == expected, (user_id, got, expected)
        decided.append(got)
    assert any(d is not None for d in decided) or ev["type"] == "m.reaction"


def test_users_with_default_rules_share_one_plan() -> None:
    users = _users()[:6]
    together = EventEvaluation(message("hello"), context(members=20))
    for user_id, name, rules in users:
        together.decide(rules, user_id, name)
    assert len(together._plans) == 1
    own, shared_match = next(iter(together._plans.values()))
    own_rules = {users[0][2][i].rule_id for i in own}
    # Only the rules about the user run per user; the rest ran once.
    assert own_rules == {".m.rule.invite_for_me", ".m.rule.is_user_mention",
                         ".m.rule.contains_display_name", ".m.rule.contains_user_name"}
    assert users[0][2][shared_match].rule_id == ".m.rule.message"


def test_unchanged_default_rules_are_shared_objects() -> None:
    first, second = (UserPushRules().ordered(f"@u{i}:{SERVER}") for i in range(2))
    shared = [a for a, b in zip(first, second) if a is b]
    assert {r.rule_id for r in shared} >= {".m.rule.master", ".m.rule.message"}
    assert all(r.same_for_everyone or r.personal for r in shared)
    assert not any(a is b for a, b in zip(first, second) if a.names_user)
