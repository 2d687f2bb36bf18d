"""Threads (spec: threading): which thread an event belongs to."""

from __future__ import annotations

from federation.protocol.events import Event

from ..storage.events import EventStore

MAIN = "main"
# Follow relations at most this far to find a thread (a reaction to a reply in a thread).
MAX_THREAD_HOPS = 3


def relation(event: Event) -> tuple[str, str] | None:
    """(rel_type, target event ID) of the event's `m.relates_to`, if well formed."""
    relates = event.content.get("m.relates_to")
    if not isinstance(relates, dict):
        return None
    rel_type, target = relates.get("rel_type"), relates.get("event_id")
    if isinstance(rel_type, str) and isinstance(target, str):
        return rel_type, target
    return None


async def thread_of(events: EventStore, event: Event) -> str:
    """The root of the thread the event is in, or "main" (a thread's root is
    itself in the main timeline)."""
    current: Event | None = event
    for _ in range(MAX_THREAD_HOPS):
        found = relation(current) if current is not None else None
        if found is None:
            return MAIN
        rel_type, target = found
        if rel_type == "m.thread":
            return target
        stored = await events.get_event(target)
        current = stored.event if stored is not None else None
    return MAIN
