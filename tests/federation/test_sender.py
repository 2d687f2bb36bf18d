"""The outgoing federation sender on real SQLite and PostgreSQL (transactions
inline, time from twisted's Clock), against a test double of a remote server
that implements only the FederationClient interface (`put_json`), so each test
decides what the network answers and when."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock as ReactorClock

from federation.edus import typing_edu
from federation.protocol.events import Event
from federation.protocol.room_versions import get_room_version
from federation.sender import MAX_EDUS, MAX_PDUS, FederationSender
from federation.transport.backoff import Backoff
from federation.transport.errors import DestinationUnreachable, HttpResponseError
from homeserver.clock import Clock
from homeserver.storage import schema
from homeserver.storage.database import Database
from homeserver.storage.events import EventStore
from homeserver.storage.federation_queue import FederationQueueStore
from homeserver.storage.migrations import migrate
from homeserver.storage.rooms import RoomStore
from tests.synchronous import done
from tests.harness import PostgresCluster

HS = "hs.test"
ROOM = "!room:hs.test"
ALICE = "@alice:hs.test"
REMOTE_A = "a.test"
REMOTE_B = "b.test"
V10 = get_room_version("10")
_databases = itertools.count()


@dataclass
class Call:
    destination: str
    path: str
    body: Any
    answer: Deferred[Any]

    @property
    def txn_id(self) -> str:
        return self.path.rsplit("/", 1)[1]

    def pdu_bodies(self) -> list[str]:
        return [p["content"]["body"] for p in self.body["pdus"]]


@dataclass
class RemoteServers:
    """Stands in for the network: every PUT is recorded and left pending until
    the test answers it (or answered at once when `auto` is set)."""

    auto: dict[str, Any] = field(default_factory=dict)  # destination -> answer or exception
    calls: list[Call] = field(default_factory=list)

    async def put_json(self, destination: str, path: str, body: Any, query: Any = None, *,
                       timeout_s: float = 60.0) -> Any:
        call = Call(destination, path, json.loads(json.dumps(body)), Deferred())
        self.calls.append(call)
        if destination in self.auto:
            outcome = self.auto[destination]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        return await call.answer

    def to(self, destination: str) -> list[Call]:
        return [c for c in self.calls if c.destination == destination]


@dataclass
class World:
    tmp_path: Path
    reactor: ReactorClock
    db: Database
    remote: RemoteServers
    backoff: Backoff
    sender: FederationSender
    store: FederationQueueStore
    positions: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_sender(self) -> FederationSender:
        """A sender as a restarted server builds it, on the same database."""
        self.backoff = Backoff()
        self.sender = FederationSender(HS, self.remote, self.store, EventStore(self.db),
                                       RoomStore(self.db), Clock(self.reactor), self.backoff)
        return self.sender

    def add_event(self, body: str = "", sender: str = ALICE, event_type: str = "m.room.message",
                  state_key: str | None = None, content: dict[str, Any] | None = None,
                  notify: bool = True) -> Event:
        """Persist an event (as the room writer would) and tell the sender."""
        position = next(self.positions)
        pdu: dict[str, Any] = {
            "type": event_type, "room_id": ROOM, "sender": sender,
            "content": content if content is not None else {"body": body},
            "depth": 1, "prev_events": [], "auth_events": [], "origin_server_ts": position,
            "hashes": {"sha256": "x"}, "signatures": {}}
        if state_key is not None:
            pdu["state_key"] = state_key
        event = Event(pdu, V10)

        def txn(conn: sa.Connection) -> None:
            conn.execute(sa.insert(schema.events).values(
                event_id=event.event_id, room_id=ROOM, room_version="10",
                stream_ordering=position, depth=1, type=event_type, state_key=state_key,
                sender=sender, origin_server_ts=0, json=json.dumps(pdu)))
            if event_type == "m.room.member":
                conn.execute(sa.delete(schema.current_state).where(
                    schema.current_state.c.room_id == ROOM,
                    schema.current_state.c.state_key == state_key))
                conn.execute(sa.insert(schema.current_state).values(
                    room_id=ROOM, type=event_type, state_key=state_key,
                    event_id=event.event_id, membership=pdu["content"]["membership"]))

        self.db.run_sync("add_event", txn)
        if notify:
            self.sender.event_persisted(event, position)
        return event

    def state(self) -> dict[tuple[str, str], str]:
        def txn(conn: sa.Connection) -> dict[tuple[str, str], str]:
            rows = conn.execute(sa.select(schema.current_state))
            return {(r.type, r.state_key): r.event_id for r in rows}

        return self.db.run_sync("state", txn)

    def remote_handshake(self, user_id: str, membership: str) -> Event:
        """A remote user's membership event persisted as send_join/send_leave do."""
        before = self.state()
        event = self.add_event(sender=user_id, event_type="m.room.member", state_key=user_id,
                               content={"membership": membership}, notify=False)
        self.sender.event_persisted(event, next(self.positions), before)
        return event

    def join(self, user_id: str) -> Event:
        return self.add_event(sender=user_id, event_type="m.room.member", state_key=user_id,
                              content={"membership": "join"}, notify=False)

    def pending(self, destination: str) -> int:
        return done(self.store.pending_count(destination))


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    with PostgresCluster.running() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hs.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database(f"sender{next(_databases)}")


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    db = Database(database_url)
    migrate(db)
    reactor = ReactorClock()
    reactor.advance(1_000_000)
    db.start(reactor, inline=True)
    store = FederationQueueStore(db)
    backoff = Backoff()
    remote = RemoteServers()
    sender = FederationSender(HS, remote, store, EventStore(db), RoomStore(db), Clock(reactor),
                              backoff)
    w = World(tmp_path, reactor, db, remote, backoff, sender, store)
    w.join(ALICE)
    w.join("@bob:a.test")
    w.join("@carol:b.test")
    done(sender.start(0))
    yield w
    db.stop()


def test_each_local_event_goes_once_to_every_other_server_in_the_room(world: World) -> None:
    world.add_event("hello")
    assert sorted(c.destination for c in world.remote.calls) == [REMOTE_A, REMOTE_B]
    for call in world.remote.calls:
        assert call.path.startswith("/_matrix/federation/v1/send/")
        assert call.body["origin"] == HS and call.pdu_bodies() == ["hello"]
        assert call.body["edus"] == []
        call.answer.callback({"pdus": {}})
    assert world.pending(REMOTE_A) == world.pending(REMOTE_B) == 0
    world.add_event("again")
    assert [c.pdu_bodies() for c in world.remote.to(REMOTE_A)] == [["hello"], ["again"]]


def test_one_transaction_in_flight_and_the_rest_batched_in_order(world: World) -> None:
    for n in range(5):
        world.add_event(f"m{n}")
    calls = world.remote.to(REMOTE_A)
    assert [c.pdu_bodies() for c in calls] == [["m0"]]  # the rest waits for the answer
    calls[0].answer.callback({})
    calls = world.remote.to(REMOTE_A)
    assert [c.pdu_bodies() for c in calls] == [["m0"], ["m1", "m2", "m3", "m4"]]
    assert calls[0].txn_id != calls[1].txn_id


def test_events_from_other_servers_are_not_sent_back(world: World) -> None:
    world.add_event("from bob", sender="@bob:a.test")
    assert world.remote.calls == []
    assert world.pending(REMOTE_B) == 0


def test_kicked_servers_last_user_still_gets_the_kick(world: World) -> None:
    world.add_event(event_type="m.room.member", state_key="@carol:b.test",
                    content={"membership": "leave"})
    assert sorted(c.destination for c in world.remote.calls) == [REMOTE_A, REMOTE_B]
    for call in world.remote.calls:
        call.answer.callback({})
    world.add_event("after the kick")
    assert [c.destination for c in world.remote.calls[2:]] == [REMOTE_A]


def test_invited_server_is_not_sent_the_invite_here(world: World) -> None:
    world.remote.auto = {REMOTE_A: {}, REMOTE_B: {}}
    world.add_event(event_type="m.room.member", state_key="@dave:c.test",
                    content={"membership": "invite"})
    assert "c.test" not in {c.destination for c in world.remote.calls}


def test_at_most_50_pdus_and_100_edus_per_transaction(world: World) -> None:
    world.remote.auto = {REMOTE_A: DestinationUnreachable(REMOTE_A, "down"), REMOTE_B: {}}
    for n in range(120):
        world.add_event(f"m{n}")
    for n in range(250):
        done(world.sender.send_edu([REMOTE_A], {"edu_type": "m.test", "content": {"n": n}}))
    world.remote.calls.clear()
    world.remote.auto = {REMOTE_A: {}}
    world.sender.wake_destination(REMOTE_A)
    # First the transaction that was in flight when A went down, as it was; then
    # the queue, in full transactions.
    calls = world.remote.to(REMOTE_A)
    assert [len(c.body["pdus"]) for c in calls] == [1, MAX_PDUS, MAX_PDUS, 19]
    assert [len(c.body["edus"]) for c in calls] == [0, MAX_EDUS, MAX_EDUS, 50]
    bodies = [b for c in calls for b in c.pdu_bodies()]
    assert bodies == [f"m{n}" for n in range(120)]
    edus = [e["content"]["n"] for c in calls for e in c.body["edus"]]
    assert edus == list(range(250))
    assert len({c.txn_id for c in calls}) == 4
    assert world.pending(REMOTE_A) == 0


def test_a_failed_transaction_is_retried_with_the_same_txn_id(world: World) -> None:
    world.remote.auto = {REMOTE_B: {}}
    world.add_event("first")
    first = world.remote.to(REMOTE_A)[0]
    world.add_event("second")  # queued behind the transaction in flight
    first.answer.errback(DestinationUnreachable(REMOTE_A, "connection refused"))
    world.reactor.advance(world.backoff.min_s)
    retry = world.remote.to(REMOTE_A)[1]
    assert (retry.txn_id, retry.body) == (first.txn_id, first.body)
    retry.answer.errback(HttpResponseError(502, None, b"bad gateway"))
    world.reactor.advance(world.backoff.min_s * 2)
    again = world.remote.to(REMOTE_A)[2]
    assert (again.txn_id, again.body) == (first.txn_id, first.body)
    again.answer.callback({"pdus": {}})
    after = world.remote.to(REMOTE_A)[3]
    assert after.txn_id != first.txn_id and after.pdu_bodies() == ["second"]


def test_retries_back_off_exponentially_then_reset_on_success(world: World) -> None:
    world.remote.auto = {REMOTE_A: DestinationUnreachable(REMOTE_A, "down"), REMOTE_B: {}}
    world.add_event("hello")
    attempts: list[float] = [world.reactor.seconds()]
    for _ in range(60):
        world.reactor.advance(1)
        if len(world.remote.to(REMOTE_A)) > len(attempts):
            attempts.append(world.reactor.seconds())
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps == [2, 4, 8, 16]  # the next one is due 32 s after the last
    world.remote.auto[REMOTE_A] = {}
    world.reactor.advance(32)
    assert world.pending(REMOTE_A) == 0 and world.backoff.state(REMOTE_A) is None
    world.add_event("next")  # no backoff left: sent at once
    assert world.remote.to(REMOTE_A)[-1].pdu_bodies() == ["next"]


def test_a_server_seen_again_is_caught_up_at_once(world: World) -> None:
    world.remote.auto = {REMOTE_A: DestinationUnreachable(REMOTE_A, "down"), REMOTE_B: {}}
    for n in range(6):
        world.add_event(f"m{n}")
        world.reactor.advance(1)
    world.remote.auto[REMOTE_A] = {}
    sent_before = len(world.remote.to(REMOTE_A))
    world.backoff.succeeded(REMOTE_A)  # what the client does when A talks to us
    calls = world.remote.to(REMOTE_A)[sent_before:]
    assert [b for c in calls for b in c.pdu_bodies()] == [f"m{n}" for n in range(6)]


def test_refused_transaction_is_dropped_and_the_queue_moves_on(world: World) -> None:
    world.remote.auto = {REMOTE_B: {}}
    world.add_event("bad")
    world.add_event("good")
    world.remote.to(REMOTE_A)[0].answer.errback(HttpResponseError(400, "M_BAD_JSON", {}))
    assert world.remote.to(REMOTE_A)[1].pdu_bodies() == ["good"]


def test_restart_resumes_the_transaction_in_flight_then_the_queue(world: World) -> None:
    world.remote.auto = {REMOTE_B: {}}
    world.add_event("m0")
    in_flight = world.remote.to(REMOTE_A)[0]  # never answered: the server stops
    world.add_event("m1")
    world.add_event("m2")
    world.remote.calls.clear()
    world.remote.auto = {REMOTE_A: {}, REMOTE_B: {}}
    done(world.new_sender().start(100))
    calls = world.remote.to(REMOTE_A)
    assert calls[0].txn_id == in_flight.txn_id and calls[0].pdu_bodies() == ["m0"]
    assert [c.pdu_bodies() for c in calls[1:]] == [["m1", "m2"]]
    assert world.pending(REMOTE_A) == 0


def test_events_persisted_but_not_queued_before_a_crash_are_sent_after_restart(
        world: World) -> None:
    world.remote.auto = {REMOTE_A: {}, REMOTE_B: {}}
    world.add_event("queued")
    world.add_event("lost 1", notify=False)  # persisted; the crash came before queueing
    world.add_event("lost 2", notify=False)
    world.add_event("remote", sender="@bob:a.test", notify=False)
    world.remote.calls.clear()
    done(world.new_sender().start(100))
    assert [b for c in world.remote.to(REMOTE_A) for b in c.pdu_bodies()] == \
        ["lost 1", "lost 2"]


def test_a_new_database_sends_no_history(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate(db)
    reactor = ReactorClock()
    db.start(reactor, inline=True)
    store = FederationQueueStore(db)
    sender = FederationSender(HS, RemoteServers(), store, EventStore(db), RoomStore(db),
                              Clock(reactor), Backoff())
    done(sender.start(42))
    assert done(store.sender_position()) == 42
    db.stop()


def test_typing_edus_are_superseded_while_unsent(world: World) -> None:
    world.remote.auto = {REMOTE_A: DestinationUnreachable(REMOTE_A, "down")}
    key = ("m.typing", ROOM, ALICE)
    world.sender.send_ephemeral_edu([REMOTE_A], typing_edu(ROOM, ALICE, True), key)
    world.sender.send_ephemeral_edu([REMOTE_A], typing_edu(ROOM, ALICE, False), key)
    world.remote.auto = {REMOTE_A: {}}
    world.sender.wake_destination(REMOTE_A)
    last = world.remote.to(REMOTE_A)[-1]
    assert last.body["edus"] == [typing_edu(ROOM, ALICE, False)]


def test_edus_to_our_own_server_are_dropped(world: World) -> None:
    done(world.sender.send_edu([HS], {"edu_type": "m.test", "content": {}}))
    world.sender.send_ephemeral_edu([HS], typing_edu(ROOM, ALICE, True), ("k",))
    assert world.remote.calls == [] and world.pending(HS) == 0


def test_a_newcomer_servers_join_is_relayed_to_the_other_servers(world: World) -> None:
    world.remote.auto = {REMOTE_A: {}, REMOTE_B: {}, "c.test": {}}
    join = world.remote_handshake("@dan:c.test", "join")  # through our send_join
    assert sorted(c.destination for c in world.remote.calls) == [REMOTE_A, REMOTE_B]
    assert all(c.body["pdus"] == [join.pdu] for c in world.remote.calls)


def test_a_join_from_a_server_already_in_the_room_is_its_own_to_send(world: World) -> None:
    world.remote.auto = {REMOTE_A: {}, REMOTE_B: {}}
    world.remote_handshake("@bob2:a.test", "join")
    assert world.remote.calls == []
