"""The client format of events (spec: room event format)."""

from __future__ import annotations

from typing import Any

from federation.protocol.events import Event
from federation.protocol.redaction import redact

from ..storage.events import StoredEvent


def client_event(
    stored: StoredEvent,
    now_ms: int,
    *,
    include_room_id: bool = True,
    redaction: Event | None = None,
    transaction_id: str | None = None,
    prev_content: dict[str, Any] | None = None,
    replaces_state: str | None = None,
    aggregations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    event = stored.event
    pdu = event.pdu
    content = pdu.get("content", {})
    if stored.redacted_by is not None:
        content = redact(pdu, event.room_version).get("content", {})
    out: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.type,
        "sender": event.sender,
        "origin_server_ts": event.origin_server_ts,
        "content": content,
    }
    if include_room_id:
        out["room_id"] = event.room_id
    if event.is_state():
        out["state_key"] = event.state_key
    if event.type == "m.room.redaction" and event.redacts and stored.redacted_by is None:
        # Clients get `redacts` both at the top level and in content, in every version.
        out["redacts"] = event.redacts
        out["content"] = {**content, "redacts": event.redacts}
    unsigned: dict[str, Any] = {"age": max(0, now_ms - event.origin_server_ts)}
    if redaction is not None:
        unsigned["redacted_because"] = client_event(
            StoredEvent(redaction, 0, None, False), now_ms, include_room_id=include_room_id)
    if transaction_id is not None:
        unsigned["transaction_id"] = transaction_id
    if prev_content is not None:
        unsigned["prev_content"] = prev_content
    if replaces_state is not None:
        unsigned["replaces_state"] = replaces_state
    if aggregations:
        unsigned["m.relations"] = aggregations
    out["unsigned"] = unsigned
    return out


def stripped_state(event: Event) -> dict[str, Any]:
    """Stripped state for invites: type, state_key, sender, content."""
    return {"type": event.type, "state_key": event.state_key, "sender": event.sender,
            "content": event.content}
