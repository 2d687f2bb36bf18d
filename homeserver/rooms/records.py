"""What the room writer (writer.py) takes, keeps and hands on: a room's state
as the writer knows it, a local event to send, a persisted event for listeners."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol

from twisted.internet.defer import Deferred

from federation.protocol.events import Event, StateKey
from federation.protocol.room_versions import RoomVersion

from ..storage.events import PushActionRow


@dataclass
class RoomSnapshot:
    """What the writer knows of a room's current state."""

    room_id: str
    version: RoomVersion
    state: dict[StateKey, str]
    state_group: int | None
    chain_length: int
    extremities: list[str]
    depth: int


@dataclass
class NewEvent:
    event_type: str
    sender: str
    content: Mapping[str, Any]
    state_key: str | None = None
    redacts: str | None = None
    # The client transaction: (user, device, endpoint path) and the txnId.
    txn: tuple[str, str, str] | None = None
    txn_id: str | None = None
    # Called with the built, authorised event before it is persisted; returns
    # the event to persist (an invite of a remote user comes back with the
    # invitee's server's signature).
    countersign: Callable[[Event], Awaitable[Event]] | None = None


@dataclass
class PersistedEvent:
    event: Event
    stream_ordering: int
    state_before: dict[StateKey, str] = field(default_factory=dict)
    state_group_before: int | None = None
    state_group_after: int | None = None
    push_actions: list[PushActionRow] = field(default_factory=list)
    soft_failed: bool = False

    @property
    def visible(self) -> bool:
        """Whether clients see it: rejected and soft-failed events stay hidden."""
        return self.event.rejected_reason is None and not self.soft_failed


Listener = Callable[[PersistedEvent], None]


@dataclass
class Pending:
    """An event queued for commit, and what to announce once it is committed."""

    commit: Deferred[None]
    persisted: PersistedEvent


class PushActionSource(Protocol):
    """Decides whom an event notifies, given the room state before it."""

    async def push_actions(self, state: Mapping[StateKey, str], event: Event,
                           state_group: int | None = None) -> list[PushActionRow]:
        """`state_group`: the ID of `state` when it has one (a group's state
        never changes, so what is derived from it may be kept)."""
        ...
