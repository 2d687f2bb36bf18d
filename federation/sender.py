"""The outgoing federation sender (spec: server-server API, "Transactions").

Every new local PDU, and every EDU, is queued per destination server; each
destination has at most one transaction in flight (at most 50 PDUs and 100
EDUs), retried with the same txnId until the destination answers 200, then
the next one is sent. The queue is persisted (`OutboxStore`), so nothing is
lost across a restart or a remote outage, and it is drained in order.

Typing and presence EDUs are the exception: they are superseded by the next
one, so they are kept in memory only, one per key, and a restart drops them.

No polling: a destination is woken when work is queued for it, when its
backoff expires, when the client sees it again (`Backoff.on_recovered`) and
at start-up if it has pending work.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from twisted.internet.defer import Deferred

from federation.protocol import identifiers
from federation.protocol.events import MEMBER, Event, StateKey
from federation.transport.backoff import Backoff
from federation.transport.errors import DestinationUnreachable, HttpResponseError

logger = logging.getLogger(__name__)

MAX_PDUS = 50  # spec: per transaction
MAX_EDUS = 100
SEND_PATH = "/_matrix/federation/v1/send/"
CATCH_UP_PAGE = 500  # local events re-read per query at start-up
HOSTS_CACHE_SIZE = 10_000  # rooms whose joined servers are remembered
POSITION_SAVE_DELAY_S = 10.0  # how long an idle sender position may stay unsaved


# Ports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEntry:
    """One PDU (by event ID) or one EDU, for one destination."""

    destination: str
    event_id: str | None = None
    edu: dict[str, Any] | None = None


@dataclass(frozen=True)
class ClaimedTransaction:
    """The head of a destination's queue, bound to `txn_id`. `resumed` when the
    rows were already bound to a transaction that was never acknowledged
    (a restart while it was in flight): it is re-sent with its old txnId."""

    txn_id: str
    event_ids: list[str]
    edus: list[dict[str, Any]]
    resumed: bool


class OutboxStore(Protocol):
    async def enqueue(self, entries: list[OutboxEntry], sender_position: int | None
                      ) -> None:
        """Append entries in order; with `sender_position`, also record that every
        local event up to it has been queued (in the same transaction)."""

    async def claim(self, destination: str, txn_id: str, max_pdus: int, max_edus: int
                    ) -> ClaimedTransaction:
        """Rows already bound to an unacknowledged transaction, or else the oldest
        unbound rows (up to the limits) bound to `txn_id`."""

    async def delivered(self, destination: str, txn_id: str) -> None:
        """Forget the rows of an acknowledged transaction."""

    async def pending_destinations(self) -> list[str]: ...

    async def sender_position(self) -> int | None:
        """The last local event position known to be queued; None on a new database."""

    async def save_sender_position(self, position: int) -> None: ...

    async def local_event_ids_after(self, position: int, server_name: str, limit: int
                                    ) -> list[tuple[int, str]]:
        """(stream ordering, event ID) of visible events sent by our users after
        `position`, in order."""


class EventSource(Protocol):
    async def get_events(self, event_ids: Iterable[str]) -> dict[str, Event]: ...


class MemberSource(Protocol):
    async def members(self, room_id: str) -> list[str]:
        """The room's joined members, by current state."""


class TransactionClient(Protocol):
    """The part of `federation.transport.client.FederationClient` the sender uses."""

    async def put_json(self, destination: str, path: str, body: Any,
                       query: Any = None, *, timeout_s: float = 60.0) -> Any: ...


class SenderClock(Protocol):
    def time(self) -> float: ...

    def time_ms(self) -> int: ...

    def call_later(self, seconds: float, fn: Callable[..., Any], *args: Any) -> Any: ...


# Per destination --------------------------------------------------------------------


@dataclass
class _Transaction:
    txn_id: str
    body: dict[str, Any]
    event_ids: list[str]


@dataclass
class _Destination:
    name: str
    running: bool = False  # a drain loop is sending
    more: bool = False  # woken while running: look again before stopping
    retry_timer: Any = None  # set while backing off
    in_flight: _Transaction | None = None  # re-sent as is until acknowledged
    # Superseding EDUs (typing, presence), newest per key, in arrival order.
    ephemeral: OrderedDict[tuple[str, ...], dict[str, Any]] = field(
        default_factory=OrderedDict)


# (stream ordering, event, None for our users' events or the state before a
# handshake event to relay)
_PendingEvent = tuple[int, Event, "Mapping[StateKey, str] | None"]


def retryable(status: int) -> bool:
    """Whether a transaction refused with `status` may succeed later as it is.
    Other 4xx answers judge its content, which a retry does not change."""
    return status >= 500 or status in (401, 403, 404, 408, 429)


class FederationSender:
    def __init__(self, server_name: str, client: TransactionClient, store: OutboxStore,
                 events: EventSource, members: MemberSource, clock: SenderClock,
                 backoff: Backoff) -> None:
        self._server_name = server_name
        self._client = client
        self._store = store
        self._events = events
        self._members = members
        self._clock = clock
        self._backoff = backoff
        backoff.on_recovered.append(self.wake_destination)
        self._destinations: dict[str, _Destination] = {}
        self._hosts: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._membership_changes = 0  # a room's servers read before a change are stale
        # Events waiting to be queued, in persistence order: our users' (None), and
        # handshake events to relay (with the state before them).
        self._pending: list[_PendingEvent] = []
        self._queueing = False
        self._ready = False  # start() has re-read what a restart may have missed
        self._unsaved_position: int | None = None
        self._position_timer: Any = None
        # Unique across restarts: the start time, then a counter.
        self._txn_prefix = str(clock.time_ms())
        self._txn_counter = 0

    # Start-up ------------------------------------------------------------------------

    def start(self, current_position: int) -> Deferred[None]:
        return self._spawn(self._start(current_position))

    async def _start(self, current_position: int) -> None:
        saved = await self._store.sender_position()
        if saved is None:  # a new database: nothing older is owed to anyone
            await self._store.save_sender_position(current_position)
        else:
            missed = await self._missed_events(saved)
            known = {event.event_id for _, event, _ in self._pending}
            self._pending = [m for m in missed if m[1].event_id not in known] + self._pending
            if missed:
                logger.info("queueing %d local events persisted before a restart", len(missed))
        self._ready = True
        self._queue_pending()
        for destination in await self._store.pending_destinations():
            self._wake(destination)

    async def _missed_events(self, after: int) -> list[_PendingEvent]:
        """Local events persisted after the last position known to be queued."""
        found: list[_PendingEvent] = []
        while True:
            page = await self._store.local_event_ids_after(after, self._server_name,
                                                           CATCH_UP_PAGE)
            if not page:
                return found
            events = await self._events.get_events(event_id for _, event_id in page)
            found += [(pos, events[eid], None) for pos, eid in page if eid in events]
            after = page[-1][0]

    # PDUs ----------------------------------------------------------------------------

    def event_persisted(self, event: Event, stream_ordering: int,
                        state_before: Mapping[StateKey, str] | None = None) -> None:
        """Room writer listener (visible events only): queue our users' events for
        the other servers in the room; any membership change refreshes the room's
        server list. Events from other servers are their origin's to send, except a
        membership handshake's (see `_relay_destinations`)."""
        if event.is_state():
            # Any state event may move membership: state resolution can.
            self._hosts.pop(event.room_id, None)
            self._membership_changes += 1
        if identifiers.server_of(event.sender) == self._server_name:
            self._pending.append((stream_ordering, event, None))
        elif _handshake_like(event) and state_before is not None:
            self._pending.append((stream_ordering, event, state_before))
        else:
            return
        self._queue_pending()

    async def _relay_destinations(self, event: Event, state_before: Mapping[StateKey, str]
                                  ) -> set[str]:
        """Spec: a join, leave or knock sent to us with send_join/send_leave/
        send_knock is ours to send to the room's other servers, since its server
        was not in the room to do it. A server with no joined member before the
        event is such a newcomer (or the event reached us relayed by another
        resident, and the copy we relay is a harmless duplicate)."""
        server = identifiers.server_of(event.sender)
        if await self._had_joined_member(server, state_before):
            return set()
        return await self._destinations_for(event) - {server}

    async def _had_joined_member(self, server: str, state: Mapping[StateKey, str]) -> bool:
        suffix = ":" + server
        ids = [eid for (kind, key), eid in state.items()
               if kind == MEMBER and key.endswith(suffix)]
        members = await self._events.get_events(ids)
        return any(m.membership == "join" and identifiers.server_of(m.state_key or "") == server
                   for m in members.values())

    def _queue_pending(self) -> None:
        if self._ready and not self._queueing and self._pending:
            self._queueing = True
            self._spawn(self._queue_loop())

    async def _queue_loop(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._queue_batch(batch)
        finally:
            self._queueing = False

    async def _queue_batch(self, batch: list[_PendingEvent]) -> None:
        entries: list[OutboxEntry] = []
        for _, event, relayed_state in batch:
            hosts = await self._destinations_for(event) if relayed_state is None else \
                await self._relay_destinations(event, relayed_state)
            entries += [OutboxEntry(host, event_id=event.event_id) for host in sorted(hosts)]
        position = max(pos for pos, _, _ in batch)
        logger.debug("queueing %d events: %d PDU transmissions", len(batch), len(entries))
        if entries:
            await self._store.enqueue(entries, position)
            self._unsaved_position = None
        else:  # nothing to send: record progress later, at most one write per delay
            self._defer_position_save(position)
        for destination in {e.destination for e in entries}:
            self._wake(destination)

    def _defer_position_save(self, position: int) -> None:
        self._unsaved_position = position
        if self._position_timer is None:
            self._position_timer = self._clock.call_later(POSITION_SAVE_DELAY_S,
                                                          self._save_position)

    def _save_position(self) -> None:
        self._position_timer = None
        if self._unsaved_position is not None and not self._queueing:
            position, self._unsaved_position = self._unsaved_position, None
            self._spawn(self._store.save_sender_position(position))
        elif self._unsaved_position is not None:
            self._defer_position_save(self._unsaved_position)

    async def _destinations_for(self, event: Event) -> set[str]:
        """Servers with joined members in the room; a server whose user is kicked or
        banned (or leaves) also hears of it. An invitee's server gets the invite
        through the invite API instead."""
        hosts = set(await self.joined_hosts(event.room_id))
        if event.type == MEMBER and event.state_key and event.membership in ("leave", "ban"):
            hosts.add(identifiers.server_of(event.state_key))
        hosts.discard(self._server_name)
        return hosts

    async def joined_hosts(self, room_id: str) -> frozenset[str]:
        hosts = self._hosts.get(room_id)
        if hosts is not None:
            self._hosts.move_to_end(room_id)
            return hosts
        changes = self._membership_changes
        hosts = frozenset(identifiers.server_of(user)
                          for user in await self._members.members(room_id))
        if changes == self._membership_changes:  # no member event landed meanwhile
            self._hosts[room_id] = hosts
            while len(self._hosts) > HOSTS_CACHE_SIZE:
                self._hosts.popitem(last=False)
        return hosts

    # EDUs ----------------------------------------------------------------------------

    async def send_edu(self, destinations: Iterable[str], edu: dict[str, Any]) -> None:
        """Queue an EDU that must arrive (receipts, to-device, device lists)."""
        targets = sorted(set(destinations) - {self._server_name})
        if not targets:
            return
        await self._store.enqueue([OutboxEntry(d, edu=edu) for d in targets], None)
        for destination in targets:
            self._wake(destination)

    def send_ephemeral_edu(self, destinations: Iterable[str], edu: dict[str, Any],
                           key: tuple[str, ...]) -> None:
        """Queue an EDU that the next one with the same key supersedes (typing,
        presence): kept in memory, replaced in place if still unsent."""
        for destination in set(destinations) - {self._server_name}:
            queue = self._destination(destination).ephemeral
            queue.pop(key, None)
            queue[key] = edu
            self._wake(destination)

    # Sending -------------------------------------------------------------------------

    def wake_destination(self, destination: str) -> None:
        """The destination is reachable again: send what it is owed now."""
        state = self._destinations.get(destination)
        if state is not None and state.retry_timer is not None:
            if state.retry_timer.active():
                state.retry_timer.cancel()
            state.retry_timer = None
        self._wake(destination)

    def _destination(self, name: str) -> _Destination:
        state = self._destinations.get(name)
        if state is None:
            state = self._destinations[name] = _Destination(name)
        return state

    def _wake(self, name: str) -> None:
        state = self._destination(name)
        if state.running:
            state.more = True
        elif state.retry_timer is None:
            state.running = True
            self._spawn(self._drain(state))

    async def _drain(self, state: _Destination) -> None:
        """Send transactions until the queue is empty or the destination fails."""
        try:
            while True:
                state.more = False
                txn = state.in_flight or await self._next_transaction(state)
                if txn is None:
                    if state.more:
                        continue
                    return
                state.in_flight = txn
                if not await self._transmit(state.name, txn):
                    self._retry_later(state)
                    return
                await self._store.delivered(state.name, txn.txn_id)
                state.in_flight = None
        except Exception:
            logger.exception("sending to %s failed", state.name)
            self._retry_later(state)
        finally:
            state.running = False

    async def _next_transaction(self, state: _Destination) -> _Transaction | None:
        self._txn_counter += 1
        claimed = await self._store.claim(state.name, f"{self._txn_prefix}.{self._txn_counter}",
                                          MAX_PDUS, MAX_EDUS)
        edus = list(claimed.edus)
        if not claimed.resumed:  # a resumed txnId may have arrived: add nothing to it
            while state.ephemeral and len(edus) < MAX_EDUS:
                edus.append(state.ephemeral.popitem(last=False)[1])
        if not claimed.event_ids and not edus:
            return None
        events = await self._events.get_events(claimed.event_ids)
        pdus = [events[eid].pdu for eid in claimed.event_ids if eid in events]
        body = {"origin": self._server_name, "origin_server_ts": self._clock.time_ms(),
                "pdus": pdus, "edus": edus}
        return _Transaction(claimed.txn_id, body, list(claimed.event_ids))

    async def _transmit(self, destination: str, txn: _Transaction) -> bool:
        """PUT the transaction; True once it needs no further sending."""
        path = SEND_PATH + quote(txn.txn_id, safe="")
        try:
            answer = await self._client.put_json(destination, path, txn.body)
        except DestinationUnreachable as exc:
            logger.info("transaction %s to %s: unreachable (%s)", txn.txn_id, destination,
                        exc.reason)
            return False
        except HttpResponseError as exc:
            if retryable(exc.status):
                logger.info("transaction %s to %s: HTTP %d, will retry", txn.txn_id,
                            destination, exc.status)
                return False
            logger.error("transaction %s to %s refused with HTTP %d %s; dropping its PDUs %s",
                         txn.txn_id, destination, exc.status, exc.errcode, txn.event_ids)
            return True
        logger.debug("transaction %s to %s: %d PDUs, %d EDUs delivered", txn.txn_id,
                    destination, len(txn.body["pdus"]), len(txn.body["edus"]))
        self._backoff.succeeded(destination)
        _log_pdu_errors(destination, txn.txn_id, answer)
        return True

    def _retry_later(self, state: _Destination) -> None:
        now = self._clock.time()
        wait = self._backoff.retry_in(state.name, now)
        if wait <= 0:  # the client did not count this failure: count it here
            wait = self._backoff.failed(state.name, now)
        logger.info("retrying %s in %.1f s", state.name, wait)
        state.retry_timer = self._clock.call_later(wait, self._retry, state.name)

    def _retry(self, name: str) -> None:
        state = self._destination(name)
        state.retry_timer = None
        self._wake(name)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> Deferred[None]:
        deferred = Deferred.fromCoroutine(work)
        deferred.addErrback(lambda failure: logger.error("federation sender: %s",
                                                         failure.getTraceback()))
        return deferred


def _handshake_like(event: Event) -> bool:
    return event.type == MEMBER and event.state_key == event.sender and \
        event.membership in ("join", "leave", "knock")


def _log_pdu_errors(destination: str, txn_id: str, answer: Any) -> None:
    results = answer.get("pdus") if isinstance(answer, dict) else None
    if not isinstance(results, dict):
        return
    for event_id, result in results.items():
        if isinstance(result, dict) and result.get("error"):
            logger.info("transaction %s: %s refused %s: %s", txn_id, destination, event_id,
                        json.dumps(result["error"])[:200])
