"""Evaluating push rules for one event and one user (push module, "Conditions"
and "Actions"). Pure: the caller supplies the room facts in a `PushContext`."""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .glob import contains_words, matches
from .rules import LEGACY_MENTION_RULES, Json, PushDecision, PushRule

logger = logging.getLogger(__name__)

_MISSING = object()
_MEMBER_COUNT = re.compile(r"^(==|<=|>=|<|>)?([0-9]+)$")
# Spec (event_property_is): non-compound canonical JSON values only.
_INT_LIMIT = 2**53


@dataclass(frozen=True)
class PushContext:
    """What the evaluator needs to know about the room, beyond the event."""

    room_member_count: int
    # The sender's power level, or None when unknown (then permission fails).
    sender_power_level: int | None = None
    # `notifications` of m.room.power_levels (missing keys default to 50).
    notification_levels: Mapping[str, int] = field(default_factory=dict)


@lru_cache(maxsize=1024)
def split_path(key: str) -> tuple[str, ...]:
    """A dot-separated property path (appendix): `\\.` is a literal dot and
    `\\\\` a literal backslash; any other backslash stays as it is."""
    parts = [""]
    i = 0
    while i < len(key):
        char = key[i]
        if char == "\\" and i + 1 < len(key) and key[i + 1] in ".\\":
            parts[-1] += key[i + 1]
            i += 2
            continue
        if char == ".":
            parts.append("")
        else:
            parts[-1] += char
        i += 1
    return tuple(parts)


def lookup(event: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted path, or `_MISSING`."""
    value: Any = event
    for part in split_path(key):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _is_simple(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    return isinstance(value, int) and -_INT_LIMIT < value < _INT_LIMIT


def _same(a: Any, b: Any) -> bool:
    """Exact equality without casting (`true` is not `1`)."""
    return _is_simple(a) and _is_simple(b) and type(a) is type(b) and a == b


class _Evaluation:
    """One event against one user's rules."""

    def __init__(self, event: Mapping[str, Any], context: PushContext, user_id: str,
                 display_name: str | None, memo: dict[Any, bool] | None = None) -> None:
        self.event = event
        self.memo = memo if memo is not None else {}
        self.context = context
        self.user_id = user_id
        self.display_name = display_name
        content = event.get("content")
        self.has_mentions = isinstance(content, Mapping) and "m.mentions" in content

    def rule_matches(self, rule: PushRule) -> bool:
        if not rule.enabled:
            return False
        if rule.default and self.has_mentions and rule.rule_id in LEGACY_MENTION_RULES:
            return False
        # Content, room and sender rules are each user's own (or name the user).
        if rule.kind not in ("override", "underride"):
            return all(self.condition(c) for c in rule.effective_conditions)
        if rule.personal:
            return all(self.condition(c, shared=True) for c in rule.conditions)
        # Recipients sharing a (default) rule share its list of conditions too.
        key = id(rule.conditions)
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = all(self.condition(c, shared=True)
                                         for c in rule.conditions)
        return found

    def condition(self, cond: Json, shared: bool = False) -> bool:
        """Every condition but `contains_display_name` is a function of the event
        and the room alone, so its answer is shared by all the event's recipients."""
        if not shared or cond.get("kind") == "contains_display_name":
            return self._condition(cond)
        # The rules outlive the evaluation of one event, so identity is a sound
        # key: recipients sharing a (default) rule share its condition objects.
        key = id(cond)
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = self._condition(cond)
        return found

    def _condition(self, cond: Json) -> bool:
        kind = cond.get("kind")
        try:
            if kind == "event_match":
                return self._event_match(cond)
            if kind == "event_property_is":
                return self._property_is(cond)
            if kind == "event_property_contains":
                return self._property_contains(cond)
            if kind == "contains_display_name":
                return self._contains_display_name()
            if kind == "room_member_count":
                return self._member_count(cond)
            if kind == "sender_notification_permission":
                return self._sender_permission(cond)
        except (TypeError, ValueError) as exc:  # malformed user rule: no match
            logger.debug("push condition %r failed: %s", cond, exc)
            return False
        return False  # spec: unrecognised conditions never match

    def _event_match(self, cond: Json) -> bool:
        key, pattern = cond.get("key"), cond.get("pattern")
        if not isinstance(key, str) or not isinstance(pattern, str):
            return False
        value = lookup(self.event, key)
        if not isinstance(value, str):
            return False  # absent or not a string: no match, even for `*`
        return matches(pattern, value, words=key == "content.body")

    def _property_is(self, cond: Json) -> bool:
        key = cond.get("key")
        if not isinstance(key, str) or "value" not in cond:
            return False
        return _same(lookup(self.event, key), cond["value"])

    def _property_contains(self, cond: Json) -> bool:
        key = cond.get("key")
        if not isinstance(key, str) or "value" not in cond:
            return False
        values = lookup(self.event, key)
        if not isinstance(values, list):
            return False
        return any(_same(item, cond["value"]) for item in values)

    def _contains_display_name(self) -> bool:
        body = lookup(self.event, "content.body")
        # An empty display name would match everything.
        if not self.display_name or not isinstance(body, str):
            return False
        return contains_words(body, self.display_name)

    def _member_count(self, cond: Json) -> bool:
        found = _MEMBER_COUNT.match(str(cond.get("is", "")))
        if found is None:
            return False
        op, number = found.group(1) or "==", int(found.group(2))
        count = self.context.room_member_count
        return {"==": count == number, "<": count < number, ">": count > number,
                "<=": count <= number, ">=": count >= number}[op]

    def _sender_permission(self, cond: Json) -> bool:
        key = cond.get("key")
        level = self.context.sender_power_level
        if not isinstance(key, str) or level is None:
            return False
        return level >= self.context.notification_levels.get(key, 50)


def evaluate(rules: Iterable[PushRule], event: Mapping[str, Any], context: PushContext,
             user_id: str, display_name: str | None = None,
             memo: dict[Any, bool] | None = None) -> PushDecision | None:
    """The first enabled rule (in the order given) whose conditions all hold,
    or None when no rule matches (then the user is not notified). Pass the same
    `memo` for every recipient of one event to evaluate shared conditions once."""
    evaluation = _Evaluation(event, context, user_id, display_name, memo)
    for rule in rules:
        if evaluation.rule_matches(rule):
            return rule.decision
    return None


class EventEvaluation:
    """One event against the rules of many recipients (everyone in a big room).

    Most users' rules differ only in the rules about them (their ID, localpart
    or display name): the rules that are the same for everyone are evaluated
    once per distinct arrangement of them (a "plan"), and each user then only
    runs their own rules that come before the first shared rule that matched.
    """

    def __init__(self, event: Mapping[str, Any], context: PushContext) -> None:
        self._event = event
        self._context = context
        self._memo: dict[Any, bool] = {}
        # template -> (indices of the user's own rules to try, index of the shared
        # rule that matched or None)
        self._plans: dict[Hashable, tuple[list[int], int | None]] = {}

    def decide(self, rules: list[PushRule], user_id: str, display_name: str | None
               ) -> PushDecision | None:
        evaluation = _Evaluation(self._event, self._context, user_id, display_name, self._memo)
        template = _templates.of(rules)
        plan = self._plans.get(template)
        if plan is None:
            plan = self._plans[template] = _plan(rules, evaluation)
        own, shared_match = plan
        for index in own:
            if evaluation.rule_matches(rules[index]):
                return rules[index].decision
        return rules[shared_match].decision if shared_match is not None else None


def _plan(rules: list[PushRule], evaluation: _Evaluation) -> tuple[list[int], int | None]:
    own = []
    for index, rule in enumerate(rules):
        if not rule.same_for_everyone:
            own.append(index)
        elif evaluation.rule_matches(rule):
            return own, index
    return own, None


class _Templates:
    """The arrangement of a rule list, cached per list object: the rules handler
    keeps each user's list until their rules change. Equal templates mean equal
    shared rules (conditions, enabled, actions) at equal places."""

    def __init__(self, size: int = 50_000) -> None:
        self._by_list: OrderedDict[int, tuple[list[PushRule], Hashable]] = OrderedDict()
        self._size = size

    def of(self, rules: list[PushRule]) -> Hashable:
        found = self._by_list.get(id(rules))
        if found is not None and found[0] is rules:  # the entry keeps its list alive
            return found[1]
        template = tuple(_rule_key(rule) for rule in rules)
        self._by_list[id(rules)] = (rules, template)
        while len(self._by_list) > self._size:
            self._by_list.popitem(last=False)
        return template


def _rule_key(rule: PushRule) -> Hashable:
    if not rule.same_for_everyone:
        return ("own", rule.kind, rule.rule_id)
    # Shared conditions are one object for every user (rules._fill).
    return (rule.kind, rule.rule_id, rule.enabled, id(rule.conditions), repr(rule.actions))


_templates = _Templates()
