"""The redaction algorithm, per room version.

One function serves signing, the reference hash, and serving redacted events.
"""

from __future__ import annotations

from typing import Any

from .room_versions import RoomVersion

# Top-level keys every version keeps (v10 list minus what v11 dropped).
_TOP_LEVEL_V11 = frozenset(
    {
        "event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
        "signatures", "depth", "prev_events", "auth_events", "origin_server_ts",
    }
)
# v10 also keeps these three; v11 removed them.
_TOP_LEVEL_V10 = _TOP_LEVEL_V11 | {"origin", "membership", "prev_state"}

_CONTENT_V10: dict[str, frozenset[str]] = {
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": frozenset({"join_rule", "allow"}),
    "m.room.power_levels": frozenset(
        {"ban", "events", "events_default", "kick", "redact", "state_default", "users",
         "users_default"}
    ),
    "m.room.history_visibility": frozenset({"history_visibility"}),
}

_CONTENT_V11: dict[str, frozenset[str]] = {
    **_CONTENT_V10,
    "m.room.power_levels": _CONTENT_V10["m.room.power_levels"] | {"invite"},
    "m.room.redaction": frozenset({"redacts"}),
}


def redact(event: dict[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """Return a redacted copy of a PDU (or client event) dict."""
    v11 = room_version.updated_redaction_rules
    top_level = _TOP_LEVEL_V11 if v11 else _TOP_LEVEL_V10
    redacted = {k: v for k, v in event.items() if k in top_level}
    content = event.get("content")
    redacted["content"] = _redact_content(event.get("type"), content, v11)
    return redacted


def _redact_content(event_type: Any, content: Any, v11: bool) -> dict[str, Any]:
    if not isinstance(content, dict):
        return {}
    if v11 and event_type == "m.room.create":
        # v11: the create event keeps all of its content.
        return dict(content)
    keep = (_CONTENT_V11 if v11 else _CONTENT_V10).get(event_type, frozenset())
    kept = {k: v for k, v in content.items() if k in keep}
    if v11 and event_type == "m.room.member":
        invite = content.get("third_party_invite")
        if isinstance(invite, dict) and "signed" in invite:
            kept["third_party_invite"] = {"signed": invite["signed"]}
    return kept
