"""The presence state machine, with time driven by twisted.internet.task.Clock
and a real SQLite store (transactions run inline: a memory reactor runs no threads)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock as ReactorClock

from federation.protocol.errors import MatrixError
from homeserver.clock import Clock
from homeserver.handlers.presence import (
    ACTIVE_MS, GRACE_MS, IDLE_MS, NOTIFY_BATCH_MS, PresenceHandler,
)
from homeserver.storage.database import Database
from homeserver.storage.migrations import migrate
from homeserver.storage.presence import PresenceStore, UserPresence
from homeserver.storage.rooms import RoomStore
from homeserver.storage.stream import StreamIdGenerator
from homeserver.sync.notifier import Notifier
from tests.synchronous import done

ALICE = "@alice:hs"
START_S = 1_000_000.0


@dataclass
class Env:
    reactor: ReactorClock
    db: Database
    stream: StreamIdGenerator
    notifier: Notifier
    store: PresenceStore
    presence: PresenceHandler

    def advance(self, ms: int) -> None:
        self.reactor.advance(ms / 1000)

    def get(self, user_id: str = ALICE) -> dict[str, Any]:
        return done(self.presence.get_presence(user_id, user_id))

    def stored(self, user_id: str = ALICE) -> UserPresence | None:
        row = done(self.store.get_many([user_id])).get(user_id)
        return row.presence if row else None

    def sync(self, device: str = "PHONE", mode: str = "online") -> None:
        done(self.presence.user_syncing(ALICE, device, mode))

    def stop(self, device: str = "PHONE") -> None:
        self.presence.user_stopped_syncing(ALICE, device)

    def new_handler(self) -> PresenceHandler:
        return PresenceHandler(self.store, RoomStore(self.db), self.stream, self.notifier,
                               Clock(self.reactor))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    db = Database(f"sqlite:///{tmp_path / 'hs.db'}")
    migrate(db)
    reactor = ReactorClock()
    reactor.advance(START_S)
    db.start(reactor, inline=True)
    stream = StreamIdGenerator(0)
    notifier = Notifier(stream)
    store = PresenceStore(db)
    yield Env(reactor, db, stream, notifier, store,
              PresenceHandler(store, RoomStore(db), stream, notifier, Clock(reactor)))
    db.stop()


def test_online_while_syncing_then_offline_after_the_grace(env: Env) -> None:
    env.sync()
    assert env.get()["presence"] == "online"
    assert env.get()["currently_active"] is True
    assert env.stored().state == "online"
    env.advance(10 * 60_000)  # a long-poll may last: still connected, though idle
    assert env.get()["presence"] == "unavailable"
    env.stop()
    env.advance(GRACE_MS - 1000)
    assert env.get()["presence"] == "unavailable"
    env.advance(2000)
    assert env.stored().state == "offline"
    assert env.get()["presence"] == "offline"
    env.advance(NOTIFY_BATCH_MS)  # the last change's batched wake-up
    assert env.reactor.getDelayedCalls() == []  # forgotten: no timer left behind


def test_reconnecting_within_the_grace_changes_nothing(env: Env) -> None:
    env.sync()
    position = env.stream.current
    for _ in range(3):  # 45 s: less than ACTIVE_MS, after which currently_active flips
        env.stop()
        env.advance(GRACE_MS // 2)
        env.sync()
    assert env.stream.current == position  # nothing new was published
    assert env.get()["presence"] == "online"


def test_idle_then_activity(env: Env) -> None:
    env.sync()
    env.advance(ACTIVE_MS + 1000)
    assert env.stored().currently_active is False  # published: stopped being active
    assert env.stored().state == "online"
    # Syncing again (a long-poll every 30 s) is no activity.
    for _ in range((IDLE_MS - ACTIVE_MS) // GRACE_MS + 1):
        env.stop()
        env.sync()
        env.advance(GRACE_MS)
    assert env.stored().state == "unavailable"
    assert env.get()["last_active_ago"] >= IDLE_MS
    env.presence.bump_active(ALICE)
    assert env.stored().state == "online"
    assert env.stored().currently_active is True
    assert env.get()["last_active_ago"] == 0


def test_set_presence_on_sync(env: Env) -> None:
    env.sync(mode="unavailable")
    assert env.stored().state == "unavailable"
    env.stop()
    env.sync(mode="online")  # the client says the user is back
    assert env.stored().state == "online"
    env.stop()
    env.advance(GRACE_MS + 1000)
    env.sync(mode="offline")  # syncing without appearing online
    assert env.stored().state == "offline"
    assert env.get()["presence"] == "offline"


def test_the_most_present_device_wins(env: Env) -> None:
    env.sync("PHONE", "unavailable")
    env.sync("DESKTOP", "online")
    assert env.get()["presence"] == "online"
    env.stop("DESKTOP")
    env.advance(GRACE_MS + 1000)
    assert env.stored().state == "unavailable"  # the phone is still connected
    env.stop("PHONE")
    env.advance(GRACE_MS + 1000)
    assert env.stored().state == "offline"


def test_status_message_survives_going_offline(env: Env) -> None:
    done(env.presence.set_presence(ALICE, "PHONE", ALICE, "online", "at lunch"))
    assert env.get() == {"presence": "online", "currently_active": True,
                         "last_active_ago": 0, "status_msg": "at lunch"}
    env.advance(GRACE_MS + 1000)  # set, but never synced: offline after the grace
    assert env.get()["presence"] == "offline"
    assert env.get()["status_msg"] == "at lunch"
    env.sync()
    assert env.get()["status_msg"] == "at lunch"


def test_presence_events_initial_and_incremental(env: Env) -> None:
    assert done(env.presence.presence_events(ALICE, None, env.stream.current)) == []
    env.sync()
    since = env.stream.current
    [event] = done(env.presence.presence_events(ALICE, None, since))
    assert event["type"] == "m.presence" and event["sender"] == ALICE
    assert event["content"]["presence"] == "online"
    assert done(env.presence.presence_events(ALICE, since, env.stream.current)) == []
    env.stop()
    env.advance(GRACE_MS + 1000)
    [event] = done(env.presence.presence_events(ALICE, since, env.stream.current))
    assert event["content"]["presence"] == "offline"
    # An initial sync leaves out who is offline.
    assert done(env.presence.presence_events(ALICE, None, env.stream.current)) == []


def test_a_change_wakes_a_waiting_sync(env: Env) -> None:
    waiter: Deferred = env.notifier.wait(ALICE, [], env.stream.current)
    assert not waiter.called
    env.sync()
    env.advance(NOTIFY_BATCH_MS)  # changes wake syncs in batches
    assert waiter.called


def test_presence_stored_before_a_restart_times_out(env: Env) -> None:
    env.sync()
    restarted = env.new_handler()
    restarted.start()
    env.advance(GRACE_MS + 1000)
    assert env.stored().state == "offline"


def test_a_user_who_reconnects_after_a_restart_stays_online(env: Env) -> None:
    env.sync()
    restarted = env.new_handler()
    restarted.start()
    done(restarted.user_syncing(ALICE, "PHONE", "online"))
    env.advance(GRACE_MS + 1000)
    assert env.stored().state == "online"


def test_only_for_yourself(env: Env) -> None:
    with pytest.raises(MatrixError) as err:
        done(env.presence.set_presence("@bob:hs", "X", ALICE, "online", None))
    assert err.value.status == 403
    with pytest.raises(MatrixError) as err:
        done(env.presence.set_presence(ALICE, "X", ALICE, "busy", None))
    assert err.value.status == 400
    with pytest.raises(MatrixError) as err:
        done(env.presence.get_presence("@bob:hs", ALICE))  # no room in common
    assert err.value.status == 403
