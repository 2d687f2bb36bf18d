"""A user's push ruleset: their own rules and their changes to the server
defaults, merged into the rules clients see and the evaluator runs.

Stored as one JSON document per user:
`{"rules": {kind: [rule, ...]}, "defaults": {"kind/rule_id": {"enabled", "actions"}}}`
where each kind's user rules are kept highest priority first.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from federation.protocol.errors import Codes, MatrixError

from .rules import KINDS, MASTER, Json, PushRule, default_rules, is_default_rule_id

# Spec: "Historical Actions" -- ignored by stripping them.
_HISTORICAL_ACTIONS = frozenset({"dont_notify", "coalesce"})


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise MatrixError(400, Codes.INVALID_PARAM, f"Unknown push rule kind: {kind}")
    return kind


def clean_actions(actions: Any) -> list[Any]:
    """Validate a client's actions, dropping the historical ones."""
    if not isinstance(actions, list):
        raise MatrixError(400, Codes.INVALID_PARAM, "actions must be an array")
    cleaned: list[Any] = []
    for action in actions:
        if isinstance(action, str) and action in _HISTORICAL_ACTIONS:
            continue
        if action == "notify":
            cleaned.append(action)
        elif isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
            cleaned.append(dict(action))
        else:
            raise MatrixError(400, Codes.INVALID_PARAM, f"Unrecognised action: {action!r}")
    return cleaned


def _clean_conditions(conditions: Any) -> list[Json]:
    if not isinstance(conditions, list):
        raise MatrixError(400, Codes.INVALID_PARAM, "conditions must be an array")
    for condition in conditions:
        # Only `kind` is required; unknown kinds are stored and never match.
        if not isinstance(condition, dict) or not isinstance(condition.get("kind"), str):
            raise MatrixError(400, Codes.INVALID_PARAM, "Each condition needs a string kind")
    return [dict(c) for c in conditions]


def _rule_from_body(kind: str, rule_id: str, body: Json) -> Json:
    """The stored form of a rule a client PUTs."""
    if "actions" not in body:
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing parameter: actions")
    rule: Json = {"rule_id": rule_id, "actions": clean_actions(body["actions"])}
    if kind in ("override", "underride"):
        rule["conditions"] = _clean_conditions(body.get("conditions", []))
    elif kind == "content":
        pattern = body.get("pattern")
        if not isinstance(pattern, str):
            raise MatrixError(400, Codes.MISSING_PARAM, "Content rules need a string pattern")
        rule["pattern"] = pattern
    return rule


def check_new_rule_id(rule_id: str) -> None:
    """Spec (PUT /pushrules/global/{kind}/{ruleId}): a leading dot is reserved for
    server-default rules; slashes and backslashes are not allowed."""
    if not rule_id:
        raise MatrixError(400, Codes.INVALID_PARAM, "Empty rule ID")
    if is_default_rule_id(rule_id):
        raise MatrixError(400, Codes.INVALID_PARAM,
                          "Rule IDs starting with '.' are reserved for server-default rules")
    if "/" in rule_id or "\\" in rule_id:
        raise MatrixError(400, Codes.INVALID_PARAM, "Rule IDs may not contain slashes")


def _not_found() -> MatrixError:
    return MatrixError(404, Codes.NOT_FOUND, "The push rule was not found.")


@dataclass
class UserPushRules:
    rules: dict[str, list[Json]] = field(default_factory=dict)
    defaults: dict[str, Json] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Json | None) -> UserPushRules:
        doc = doc or {}
        rules, defaults = doc.get("rules"), doc.get("defaults")
        rules = rules if isinstance(rules, dict) else {}
        defaults = defaults if isinstance(defaults, dict) else {}
        return cls({k: list(v) for k, v in rules.items() if k in KINDS and isinstance(v, list)},
                   dict(defaults))

    def to_json(self) -> Json:
        return {"rules": copy.deepcopy(self.rules), "defaults": copy.deepcopy(self.defaults)}

    def copy(self) -> UserPushRules:
        return UserPushRules.from_json(self.to_json())

    # Reading -----------------------------------------------------------------

    def _user_rules(self, kind: str) -> list[PushRule]:
        return [PushRule(kind=kind, rule_id=r["rule_id"], actions=list(r.get("actions", [])),
                         conditions=list(r.get("conditions", [])), pattern=r.get("pattern"),
                         default=False, enabled=bool(r.get("enabled", True)))
                for r in self.rules.get(kind, [])]

    def _defaults(self, user_id: str, kind: str) -> list[PushRule]:
        out = []
        for rule in default_rules(user_id, kind):
            change = self.defaults.get(f"{kind}/{rule.rule_id}")
            if not change:
                out.append(rule)  # unchanged: maybe the object every user shares
                continue
            out.append(rule.with_changes(
                enabled=bool(change.get("enabled", rule.enabled)),
                actions=list(change.get("actions", rule.actions))))
        return out

    def kind_rules(self, user_id: str, kind: str) -> list[PushRule]:
        """One kind's rules in priority order: user-defined rules before the
        server defaults, except `.m.rule.master` which is above everything."""
        defaults = self._defaults(user_id, kind)
        master = [r for r in defaults if r.rule_id == MASTER]
        rest = [r for r in defaults if r.rule_id != MASTER]
        return master + self._user_rules(kind) + rest

    def ordered(self, user_id: str) -> list[PushRule]:
        """Every rule in evaluation order."""
        return [rule for kind in KINDS for rule in self.kind_rules(user_id, kind)]

    def ruleset_json(self, user_id: str) -> Json:
        """The spec's Ruleset object (the `global` of GET /pushrules/)."""
        return {kind: [r.to_json() for r in self.kind_rules(user_id, kind)] for kind in KINDS}

    def get(self, user_id: str, kind: str, rule_id: str) -> PushRule:
        for rule in self.kind_rules(user_id, check_kind(kind)):
            if rule.rule_id == rule_id:
                return rule
        raise _not_found()

    # Changing ----------------------------------------------------------------

    def _index(self, kind: str, rule_id: str) -> int | None:
        for i, rule in enumerate(self.rules.get(kind, [])):
            if rule["rule_id"] == rule_id:
                return i
        return None

    def put(self, kind: str, rule_id: str, body: Json, before: str | None = None,
            after: str | None = None) -> None:
        """Add or replace a user-defined rule (PUT /pushrules/global/{kind}/{ruleId})."""
        check_kind(kind)
        check_new_rule_id(rule_id)
        rule = _rule_from_body(kind, rule_id, body)
        rules = self.rules.setdefault(kind, [])
        existing = self._index(kind, rule_id)
        if existing is not None:
            rule["enabled"] = rules[existing].get("enabled", True)
        else:
            rule["enabled"] = True  # spec: new rules MUST be enabled
        anchor = before if before is not None else after
        if anchor is not None:
            self._check_anchor(kind, anchor, rule_id)
        if existing is not None and anchor is None:
            rules[existing] = rule
            return
        if existing is not None:
            del rules[existing]
        if anchor is None:
            rules.insert(0, rule)  # spec: the most important user-defined rule
            return
        position = self._index(kind, anchor)
        assert position is not None
        rules.insert(position if before is not None else position + 1, rule)

    def _check_anchor(self, kind: str, anchor: str, rule_id: str) -> None:
        if is_default_rule_id(anchor):
            raise MatrixError(400, Codes.UNKNOWN,
                              "Rules cannot be placed relative to server-default rules")
        if anchor == rule_id or self._index(kind, anchor) is None:
            raise MatrixError(400, Codes.UNKNOWN, f"before/after rule not found: {anchor}")

    def delete(self, kind: str, rule_id: str) -> None:
        """Server-default rules cannot be deleted: like Synapse, they are not found."""
        check_kind(kind)
        index = self._index(kind, rule_id)
        if index is None:
            raise _not_found()
        del self.rules[kind][index]

    def set_enabled(self, user_id: str, kind: str, rule_id: str, enabled: bool) -> None:
        self._set_attr(user_id, kind, rule_id, "enabled", enabled)

    def set_actions(self, user_id: str, kind: str, rule_id: str, actions: Any) -> None:
        self._set_attr(user_id, kind, rule_id, "actions", clean_actions(actions))

    def _set_attr(self, user_id: str, kind: str, rule_id: str, name: str, value: Any) -> None:
        rule = self.get(user_id, kind, rule_id)  # raises 404
        if rule.default:
            self.defaults.setdefault(f"{kind}/{rule_id}", {})[name] = value
            return
        index = self._index(kind, rule_id)
        assert index is not None
        self.rules[kind][index][name] = value
