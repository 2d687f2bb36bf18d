"""What the federation layer needs from the homeserver, as interfaces.

`federation/` never imports `homeserver`: the composition root hands it
objects that satisfy these protocols (adapters over the room writer and the
stores)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Protocol

from federation.protocol.events import Event, StateKey
from federation.protocol.room_versions import RoomVersion


class RoomEvents(Protocol):
    """The rooms and events this server holds, and the one way to add events."""

    async def room_version(self, room_id: str) -> RoomVersion | None: ...

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, Event]:
        """Known events (outliers and rejected ones included, with rejected_reason)."""

    async def has_state(self, event_id: str) -> bool:
        """Whether we know the state at this event (it is in the DAG, not an outlier)."""

    async def state_after(self, event_id: str) -> dict[StateKey, str]: ...

    async def current_state(self, room_id: str) -> dict[StateKey, str]: ...

    async def forward_extremities(self, room_id: str) -> list[str]: ...

    async def resolve(self, version: RoomVersion, state_sets: list[dict[StateKey, str]]
                      ) -> dict[StateKey, str]: ...

    async def persist_outliers(self, events: list[Event]) -> None: ...

    async def persist_remote(self, event: Event, state_before: Mapping[StateKey, str]
                             ) -> bool:
        """Persist a checked event; returns whether clients see it (not soft-failed)."""

    async def backward_extremities(self, room_id: str) -> list[str]:
        """Events our oldest held events follow but we lack (where backfill starts)."""

    async def persist_backfilled(self, event: Event, state_before: Mapping[StateKey, str]
                                 ) -> None: ...

    async def join_remote_room(self, version: RoomVersion, join: Event,
                               state: Mapping[StateKey, Event], auth_chain: list[Event]
                               ) -> None: ...


class EventVerifier(Protocol):
    async def verify_event(self, pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
        """Raise SignatureError unless every required server signed the event."""
