"""Push rules and the server-default rule set.

The definitions are the spec's "Predefined Rules" (push module, v1.19),
copied as data. Three legacy mention rules removed from the spec in v1.17
(`.m.rule.contains_display_name`, `.m.rule.roomnotif`,
`.m.rule.contains_user_name`) are kept, as Synapse keeps them, because
clients still send messages without `m.mentions`; the evaluator skips them
for events that carry `m.mentions` (their v1.7-v1.16 definition says "should
only be enabled if the event does not have an m.mentions property").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Any

# The kinds, in the order they are checked (spec: "Push Rules").
KINDS = ("override", "content", "room", "sender", "underride")

MASTER = ".m.rule.master"
LEGACY_MENTION_RULES = frozenset({
    ".m.rule.contains_display_name", ".m.rule.roomnotif", ".m.rule.contains_user_name",
})

_USER_ID = "[the user's Matrix ID]"
_LOCALPART = "[the local part of the user's Matrix ID]"

Json = dict[str, Any]


@dataclass(frozen=True)
class PushRule:
    kind: str
    rule_id: str
    actions: list[Any]
    conditions: list[Json] = field(default_factory=list)
    pattern: str | None = None
    default: bool = False
    enabled: bool = True
    # A server default filled in with the user's ID or localpart.
    names_user: bool = False

    @cached_property
    def personal(self) -> bool:
        """Whether the answer depends on the recipient, not just on the event and
        the room: only `contains_display_name` asks about the recipient."""
        return any(c.get("kind") == "contains_display_name" for c in self.conditions)

    @cached_property
    def same_for_everyone(self) -> bool:
        """Whether every user with this rule gets the same answer for an event: a
        server default that names nobody (user-defined rules are each user's own)."""
        return self.default and not self.names_user and not self.personal

    @cached_property
    def decision(self) -> PushDecision:
        return PushDecision(self.kind, self.rule_id, self.actions)

    @cached_property
    def effective_conditions(self) -> list[Json]:
        """What must hold for the rule to match: content, room and sender rules
        have predefined conditions derived from `pattern` or `rule_id`."""
        if self.kind == "content":
            if self.pattern is None:
                return [{"kind": "org.guildhall.never"}]
            return [{"kind": "event_match", "key": "content.body", "pattern": self.pattern}]
        if self.kind == "room":
            return [{"kind": "event_property_is", "key": "room_id", "value": self.rule_id}]
        if self.kind == "sender":
            return [{"kind": "event_property_is", "key": "sender", "value": self.rule_id}]
        return self.conditions

    def to_json(self) -> Json:
        """The spec's PushRule object."""
        out: Json = {"rule_id": self.rule_id, "default": self.default,
                     "enabled": self.enabled, "actions": list(self.actions)}
        if self.kind in ("override", "underride"):
            out["conditions"] = [dict(c) for c in self.conditions]
        elif self.kind == "content" and self.pattern is not None:
            out["pattern"] = self.pattern
        return out

    def with_changes(self, **changes: Any) -> PushRule:
        return replace(self, **changes)


@dataclass(frozen=True)
class PushDecision:
    """The actions of the first matching rule."""

    kind: str
    rule_id: str
    actions: list[Any]

    @cached_property
    def notify(self) -> bool:
        return "notify" in self.actions

    @cached_property
    def tweaks(self) -> dict[str, Any]:
        """Spec: a `highlight` tweak with no value means true."""
        out: dict[str, Any] = {}
        for action in self.actions:
            if isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
                name = action["set_tweak"]
                out[name] = action.get("value", True if name == "highlight" else None)
        return out

    @cached_property
    def highlight(self) -> bool:
        return self.tweaks.get("highlight") is True


def _match(key: str, pattern: str) -> Json:
    return {"kind": "event_match", "key": key, "pattern": pattern}


_SOUND = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}

# Spec order within each kind; `.m.rule.master` is first of all (see below).
_DEFAULT_OVERRIDE: list[Json] = [
    {"rule_id": MASTER, "enabled": False, "conditions": [], "actions": []},
    {"rule_id": ".m.rule.suppress_notices",
     "conditions": [_match("content.msgtype", "m.notice")], "actions": []},
    {"rule_id": ".m.rule.invite_for_me",
     "conditions": [_match("type", "m.room.member"), _match("content.membership", "invite"),
                    _match("state_key", _USER_ID)],
     "actions": ["notify", _SOUND]},
    {"rule_id": ".m.rule.member_event",
     "conditions": [_match("type", "m.room.member")], "actions": []},
    {"rule_id": ".m.rule.is_user_mention",
     "conditions": [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids",
                     "value": _USER_ID}],
     "actions": ["notify", _SOUND, _HIGHLIGHT]},
    # Legacy (spec v1.7-v1.16).
    {"rule_id": ".m.rule.contains_display_name",
     "conditions": [{"kind": "contains_display_name"}],
     "actions": ["notify", _SOUND, _HIGHLIGHT]},
    {"rule_id": ".m.rule.is_room_mention",
     "conditions": [{"kind": "event_property_is", "key": "content.m\\.mentions.room",
                     "value": True},
                    {"kind": "sender_notification_permission", "key": "room"}],
     "actions": ["notify", _HIGHLIGHT]},
    # Legacy (spec v1.7-v1.16).
    {"rule_id": ".m.rule.roomnotif",
     "conditions": [_match("content.body", "@room"),
                    {"kind": "sender_notification_permission", "key": "room"}],
     "actions": ["notify", _HIGHLIGHT]},
    {"rule_id": ".m.rule.tombstone",
     "conditions": [_match("type", "m.room.tombstone"), _match("state_key", "")],
     "actions": ["notify", _HIGHLIGHT]},
    {"rule_id": ".m.rule.reaction", "conditions": [_match("type", "m.reaction")],
     "actions": []},
    {"rule_id": ".m.rule.room.server_acl",
     "conditions": [_match("type", "m.room.server_acl"), _match("state_key", "")],
     "actions": []},
    {"rule_id": ".m.rule.suppress_edits",
     "conditions": [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type",
                     "value": "m.replace"}],
     "actions": []},
]

_DEFAULT_CONTENT: list[Json] = [
    # Legacy (spec v1.7-v1.16).
    {"rule_id": ".m.rule.contains_user_name", "pattern": _LOCALPART,
     "actions": ["notify", _SOUND, _HIGHLIGHT]},
]

_DEFAULT_UNDERRIDE: list[Json] = [
    {"rule_id": ".m.rule.call", "conditions": [_match("type", "m.call.invite")],
     "actions": ["notify", {"set_tweak": "sound", "value": "ring"}]},
    {"rule_id": ".m.rule.encrypted_room_one_to_one",
     "conditions": [{"kind": "room_member_count", "is": "2"},
                    _match("type", "m.room.encrypted")],
     "actions": ["notify", _SOUND]},
    {"rule_id": ".m.rule.room_one_to_one",
     "conditions": [{"kind": "room_member_count", "is": "2"},
                    _match("type", "m.room.message")],
     "actions": ["notify", _SOUND]},
    {"rule_id": ".m.rule.message", "conditions": [_match("type", "m.room.message")],
     "actions": ["notify"]},
    {"rule_id": ".m.rule.encrypted", "conditions": [_match("type", "m.room.encrypted")],
     "actions": ["notify"]},
]

_DEFAULTS: dict[str, list[Json]] = {
    "override": _DEFAULT_OVERRIDE, "content": _DEFAULT_CONTENT, "room": [], "sender": [],
    "underride": _DEFAULT_UNDERRIDE,
}


def _fill(value: Any, user_id: str) -> Any:
    """Substitute the spec's placeholders for this user. Parts without one are
    shared by every user, not copied: the evaluator memoises a condition's answer
    by identity across an event's recipients. Nothing may mutate them."""
    if value == _USER_ID:
        return user_id
    if value == _LOCALPART:
        return localpart(user_id)
    if isinstance(value, dict):
        filled = {k: _fill(v, user_id) for k, v in value.items()}
        return value if all(filled[k] is v for k, v in value.items()) else filled
    if isinstance(value, list):
        items = [_fill(v, user_id) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else items
    return value


def localpart(user_id: str) -> str:
    return user_id[1:].split(":", 1)[0]


def default_rules(user_id: str, kind: str) -> list[PushRule]:
    """The server-default rules of one kind, for one user, in priority order.
    Those that name nobody are one object shared by every user: a room of 500
    members loads 500 users' rules for its first message."""
    return [shared if shared is not None else _default_rule(kind, _fill(spec, user_id), True)
            for spec, shared in zip(_DEFAULTS[kind], _shared_defaults(kind))]


@lru_cache(maxsize=None)
def _shared_defaults(kind: str) -> tuple[PushRule | None, ...]:
    """Each default rule of a kind, or None where it names the user."""
    return tuple(_default_rule(kind, spec, False) if _fill(spec, "@anyone:example.org") is spec
                 else None for spec in _DEFAULTS[kind])


def _default_rule(kind: str, filled: Json, names_user: bool) -> PushRule:
    return PushRule(
        kind=kind, rule_id=filled["rule_id"], actions=filled["actions"],
        conditions=filled.get("conditions", []), pattern=filled.get("pattern"),
        default=True, enabled=filled.get("enabled", True), names_user=names_user,
    )


def is_default_rule_id(rule_id: str) -> bool:
    """Server-default rule IDs start with a dot (spec: "Predefined Rules")."""
    return rule_id.startswith(".")
