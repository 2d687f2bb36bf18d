"""Crash safety: kill -9 the homeserver while clients send as fast as they can,
restart it on the same data, and check that nothing acknowledged was lost or
doubled, and that retried transaction IDs answer the original events.

Each database gets its own dedicated server (module fixture), so killing it
disturbs no other test.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any, Iterator

import pytest

from tests.harness import HomeserverProcess, http_json

CS = "/_matrix/client/v3"
SENDERS = 4
CRASH_AFTER_ACKS = 150   # kill once this many sends were acknowledged...
CRASH_AFTER_SECONDS = 6  # ...or after this long, whichever comes first


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def crash_server(request: pytest.FixtureRequest) -> Iterator[HomeserverProcess]:
    if request.param == "sqlite":
        server = HomeserverProcess()
    else:
        cluster = request.getfixturevalue("postgres")
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        server = HomeserverProcess(database=cluster.create_database(f"guildhall_crash_{worker}"))
    try:
        yield server.start()
    finally:
        server.cleanup()


@dataclass
class User:
    server: HomeserverProcess
    user_id: str
    token: str
    device_id: str

    def call(self, method: str, path: str, body: Any = None, timeout: float = 10
             ) -> tuple[int, Any]:
        return http_json(method, f"{self.server.base_url}{CS}{path}", body, self.token,
                         timeout=timeout)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        assert status == 200, (method, path, status, answer)
        return answer


def register(server: HomeserverProcess, name: str) -> User:
    status, body = http_json("POST", f"{server.base_url}{CS}/register", {
        "username": name, "password": "correct horse", "auth": {"type": "m.login.dummy"}})
    assert status == 200, body
    return User(server, body["user_id"], body["access_token"], body["device_id"])


@dataclass
class Ledger:
    """What clients were told (acked) and what they asked without an answer (in flight)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[tuple[str, str], str] = field(default_factory=dict)  # (user, path) -> event_id
    unanswered: set[tuple[str, str]] = field(default_factory=set)
    crashed: list[str] = field(default_factory=list)  # clients stopped by a failed request

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def _barrage(user: User, paths: Iterator[tuple[str, dict[str, Any]]], ledger: Ledger,
             acked: dict[tuple[str, str], str]) -> None:
    """PUT each path until the server goes away; record answers and the one in flight."""
    for path, body in paths:
        key = (user.user_id, path)
        try:
            status, answer = user.call("PUT", path, body, timeout=5)
        except (OSError, HTTPException):
            with ledger.lock:
                ledger.unanswered.add(key)
                ledger.crashed.append(user.user_id)
            return
        if status != 200:  # e.g. the redaction target's send is still in flight
            continue
        with ledger.lock:
            acked[key] = answer.get("event_id", "") if isinstance(answer, dict) else ""


def _messages(user: User, room_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    token = None
    for _ in range(100):
        query = {"dir": "b", "limit": 1000, **({"from": token} if token else {})}
        page = user.ok("GET", f"/rooms/{q(room_id)}/messages?{urllib.parse.urlencode(query)}")
        events += page["chunk"]
        if not page["chunk"] or "end" not in page:
            return list(reversed(events))
        token = page["end"]
    raise AssertionError("pagination did not end")


def _to_device_supported(user: User) -> bool:
    status, _ = user.call("PUT", "/sendToDevice/org.example.probe/probe", {"messages": {}})
    return status == 200


def _drain_to_device(user: User, since: str | None) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    for _ in range(50):
        query = {"timeout": 0, **({"since": since} if since else {})}
        status, body = user.call("GET", f"/sync?{urllib.parse.urlencode(query)}")
        assert status == 200, body
        events = body.get("to_device", {}).get("events", [])
        received += events
        since = body["next_batch"]
        if not events:
            return received
    raise AssertionError("to-device messages never drained")


@pytest.mark.timeout(120)
def test_kill_9_mid_stream_loses_nothing_acknowledged(crash_server: HomeserverProcess) -> None:
    started = time.monotonic()
    server = crash_server
    tag = f"k{os.getpid()}"
    alice = register(server, f"{tag}alice")
    users = [alice] + [register(server, f"{tag}u{i}") for i in range(1, SENDERS)]
    room_id = alice.ok("POST", "/createRoom", {"preset": "public_chat", "name": "crash"})[
        "room_id"]
    for user in users[1:]:
        user.ok("POST", f"/rooms/{q(room_id)}/join", {})
    before_sync = users[1].ok("GET", "/sync?timeout=0")["next_batch"]
    to_device = _to_device_supported(alice)
    td_acked: dict[tuple[str, str], str] = {}
    receiver = users[1]
    if to_device:
        _drain_to_device(receiver, None)

    ledger = Ledger()
    redactions: dict[tuple[str, str], str] = {}
    stop = threading.Event()

    def messages(user: User) -> Iterator[tuple[str, dict[str, Any]]]:
        for i in range(100000):
            txn = f"m{i}"
            yield (f"/rooms/{q(room_id)}/send/m.room.message/{txn}",
                   {"msgtype": "m.text", "body": f"{user.user_id}/{txn}"})

    def redact_targets() -> Iterator[tuple[str, dict[str, Any]]]:
        done: set[str] = set()
        for i in range(100000):
            if stop.is_set():
                return
            with ledger.lock:
                targets = [eid for (uid, _), eid in ledger.acked.items()
                           if uid != alice.user_id and eid not in done]
            if not targets:
                time.sleep(0.01)
                continue
            done.add(targets[0])
            yield f"/rooms/{q(room_id)}/redact/{q(targets[0])}/r{i}", {"reason": "crash test"}

    def to_device_messages() -> Iterator[tuple[str, dict[str, Any]]]:
        for i in range(100000):
            yield (f"/sendToDevice/org.example.crash/td{i}",
                   {"messages": {receiver.user_id: {receiver.device_id: {"n": i}}}})

    threads = [threading.Thread(target=_barrage, args=(u, messages(u), ledger, ledger.acked),
                                daemon=True) for u in users[1:]]
    threads.append(threading.Thread(target=_barrage, args=(alice, redact_targets(), ledger,
                                                           redactions), daemon=True))
    if to_device:
        threads.append(threading.Thread(target=_barrage, args=(
            alice, to_device_messages(), ledger, td_acked), daemon=True))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + CRASH_AFTER_SECONDS
    while ledger.count() < CRASH_AFTER_ACKS and time.monotonic() < deadline:
        time.sleep(0.02)
    server.kill()  # SIGKILL: no shutdown handlers, no flushing
    for thread in threads[:SENDERS - 1]:  # senders stop only when a request fails
        thread.join(15)
        assert not thread.is_alive()
    stop.set()  # the redactor may be waiting for targets that will never come
    for thread in threads:
        thread.join(15)
        assert not thread.is_alive()
    assert len(ledger.crashed) >= SENDERS - 1, "the kill did not interrupt the senders"
    acked = dict(ledger.acked)
    assert len(acked) >= 20, f"too few sends before the crash: {len(acked)}"
    assert redactions, "no redaction was acknowledged before the crash"

    server.start()

    # 1. Every acknowledged message is there exactly once; nothing is doubled.
    events = _messages(alice, room_id)
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "an event appears twice in /messages"
    messages_by_id = {e["event_id"]: e for e in events if e["type"] == "m.room.message"}
    # A redaction in flight at the kill may have committed without its answer
    # arriving: every redaction found in the room counts, acknowledged or not.
    redacted_ids = {e.get("redacts") or e["content"].get("redacts")
                    for e in events if e["type"] == "m.room.redaction"}
    body_of: dict[str, str] = {}
    for (user_id, path), event_id in acked.items():
        assert event_id in messages_by_id, f"acknowledged {path} of {user_id} was lost"
        event = messages_by_id[event_id]
        assert event["sender"] == user_id
        if event_id not in redacted_ids:
            body_of[event_id] = event["content"]["body"]
            assert event["content"]["body"] == f"{user_id}/{path.rsplit('/', 1)[1]}"
    bodies = [e["content"]["body"] for e in messages_by_id.values() if "body" in e["content"]]
    assert len(bodies) == len(set(bodies)), "one transaction became two events"

    # 2. Retrying an acknowledged txnId answers the original event and adds nothing.
    for (user_id, path), event_id in acked.items():
        user = next(u for u in users if u.user_id == user_id)
        txn = path.rsplit("/", 1)[1]
        again = user.ok("PUT", path, {"msgtype": "m.text", "body": f"{user_id}/{txn}"})
        assert again["event_id"] == event_id, f"retried {txn} made a new event"
    for (_, path), event_id in redactions.items():
        again = alice.ok("PUT", path, {"reason": "crash test"})
        assert again["event_id"] == event_id, f"retried redaction {path} made a new event"
    # Requests that were in flight at the kill may or may not have landed: a retry
    # lands them exactly once.
    for user_id, path in ledger.unanswered:
        if "/send/" in path:
            user = next(u for u in users if u.user_id == user_id)
            user.ok("PUT", path, {"msgtype": "m.text",
                                  "body": f"{user_id}/{path.rsplit('/', 1)[1]}"})
    after = _messages(alice, room_id)
    after_ids = [e["event_id"] for e in after]
    assert len(after_ids) == len(set(after_ids))
    new = [e for e in after if e["event_id"] not in set(ids)]
    assert all(e["type"] == "m.room.message" for e in new), new
    assert len(new) <= len([p for _, p in ledger.unanswered if "/send/" in p])
    after_bodies = [e["content"]["body"] for e in after
                    if e["type"] == "m.room.message" and "body" in e["content"]]
    assert len(after_bodies) == len(set(after_bodies))

    # 3. Redactions survived: each acknowledged one redacts its target, once.
    redaction_events = [e for e in after if e["type"] == "m.room.redaction"]
    targets = [e["redacts"] for e in redaction_events]
    assert len(targets) == len(set(targets)), "an event was redacted twice"
    for (_, path), redaction_id in redactions.items():
        target = urllib.parse.unquote(path.split("/")[4])
        assert redaction_id in {e["event_id"] for e in redaction_events}
        event = alice.ok("GET", f"/rooms/{q(room_id)}/event/{q(target)}")
        assert event["content"] == {}
        assert event["unsigned"]["redacted_because"]["event_id"] == redaction_id

    # 4. /sync from a token taken before the crash sees every message exactly once,
    #    and the stream goes on after the restart.
    fresh = users[2].ok("PUT", f"/rooms/{q(room_id)}/send/m.room.message/after-restart",
                        {"msgtype": "m.text", "body": "after restart"})["event_id"]
    filt = urllib.parse.quote('{"room":{"timeline":{"limit":5000}}}')
    synced = users[1].ok("GET", f"/sync?timeout=0&since={before_sync}&filter={filt}")
    room = synced["rooms"]["join"][room_id]
    timeline_ids = [e["event_id"] for e in room["timeline"]["events"]]
    assert len(timeline_ids) == len(set(timeline_ids))
    assert set(acked.values()) <= set(timeline_ids)
    assert timeline_ids[-1] == fresh
    assert fresh not in set(ids)

    # 5. To-device messages retried after the restart are delivered once.
    if to_device:
        assert td_acked, "no to-device message was acknowledged before the crash"
        for (_, path), _ in td_acked.items():
            n = int(path.rsplit("/td", 1)[1])
            alice.ok("PUT", path, {"messages": {receiver.user_id: {receiver.device_id: {
                "n": n}}}})
        delivered = [m["content"]["n"] for m in _drain_to_device(receiver, None)
                     if m["type"] == "org.example.crash"]
        assert len(delivered) == len(set(delivered)), "a to-device message came twice"
        expected = {int(p.rsplit("/td", 1)[1]) for _, p in td_acked}
        assert expected <= set(delivered)

    assert time.monotonic() - started < 60, "the crash test must stay well under a minute"
