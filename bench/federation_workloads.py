"""The federation workloads: delivery latency between two servers, and a remote join
of a big room. Client-Server calls only (aiohttp), against any server, ours or Synapse.

Every request has a timeout and every loop a bound; each workload returns a flat
dict of numbers plus the counts that must be zero (`missed`, `errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .workloads import (
    Api,
    ApiError,
    User,
    bounded_gather,
    create_room,
    latency_summary,
    register,
    send_text,
)

SYNC_TIMEOUT_MS = 30_000
DELIVERY_TIMEOUT_S = 15.0
JOIN_TIMEOUT_S = 300.0
# After a delivery, the receiver's next long-poll must reach its server before the next send.
GAP_S = 0.05
WARMUP_MESSAGES = 3
BENCH_STATE_TYPE = "org.guildhall.bench.state"
SETUP_CONCURRENCY = 4
# Delivery that does not work at all is reported after this many losses, not waited out.
GIVE_UP_AFTER_LOST = 3


class DeliveryBroken(RuntimeError):
    pass


def quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def room_filter(room_id: str, lazy_load_members: bool = False) -> str:
    """A /sync filter for one room: its timeline and state, no presence or account data."""
    room: dict[str, Any] = {"rooms": [room_id], "timeline": {"limit": 20}}
    if lazy_load_members:
        room["state"] = {"lazy_load_members": True}
        room["timeline"]["lazy_load_members"] = True
    return json.dumps({"room": room, "presence": {"types": []},
                       "account_data": {"types": []}}, separators=(",", ":"))


async def join_via(api: Api, user: User, room_id: str, via: str,
                   timeout: float = JOIN_TIMEOUT_S) -> None:
    """`POST /join/{roomId}?via=`: v12 room IDs name no server (also the older `server_name`)."""
    await api.call("POST", f"/join/{quote(room_id)}", user=user, body={},
                   params={"via": via, "server_name": via}, timeout=timeout)


async def joined_members(api: Api, user: User, room_id: str) -> set[str]:
    status, body = await api.raw("GET", f"/rooms/{quote(room_id)}/joined_members", user=user)
    return set(body.get("joined", {})) if status == 200 and isinstance(body, dict) else set()


async def wait_for_member(api: Api, user: User, room_id: str, member: str,
                          timeout: float = DELIVERY_TIMEOUT_S) -> None:
    """Until `member` is joined as `user`'s server sees the room (federation is asynchronous)."""
    deadline = time.monotonic() + timeout
    while member not in await joined_members(api, user, room_id):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{member} not seen joined in {room_id} within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def wait_for_member_gone(api: Api, user: User, room_id: str, member: str,
                               timeout: float = DELIVERY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while member in await joined_members(api, user, room_id):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{member} still joined in {room_id} after {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def sync_once(api: Api, user: User, params: dict[str, str],
                    timeout_ms: int = SYNC_TIMEOUT_MS) -> dict[str, Any]:
    return dict(await api.call("GET", "/sync", user=user, timeout=timeout_ms / 1000 + 30,
                               params={**params, "timeout": str(timeout_ms)}))


async def initial_since(api: Api, user: User, sync_filter: str) -> str:
    body = await sync_once(api, user, {"filter": sync_filter}, timeout_ms=0)
    return str(body["next_batch"])


# -- 1. delivery latency ---------------------------------------------------------------

@dataclass
class _Deliveries:
    marker: str
    count: int
    sent_at: dict[int, float] = field(default_factory=dict)
    seen_at: dict[int, float] = field(default_factory=dict)
    arrived: dict[int, asyncio.Event] = field(default_factory=dict)
    sync_errors: int = 0
    stop: bool = False

    def __post_init__(self) -> None:
        self.arrived = {i: asyncio.Event() for i in range(-WARMUP_MESSAGES, self.count)}

    def record(self, events: list[dict[str, Any]], now: float) -> None:
        for event in events:
            body = (event.get("content") or {}).get("body")
            if not isinstance(body, str) or not body.startswith(self.marker):
                continue
            index = int(body[len(self.marker):])
            if index in self.arrived and index not in self.seen_at:
                self.seen_at[index] = now
                self.arrived[index].set()


async def _listen(api: Api, user: User, room_id: str, sync_filter: str, since: str,
                  state: _Deliveries) -> None:
    """Long-poll /sync, re-polling at once with `next_batch`, recording each arrival."""
    for _ in range(state.count * 20 + 200):
        if state.stop:
            return
        try:
            body = await sync_once(api, user, {"since": since, "filter": sync_filter})
        except (TimeoutError, ApiError, aiohttp.ClientError):
            state.sync_errors += 1
            if state.sync_errors > 20:
                return
            await asyncio.sleep(0.2)
            continue
        now = time.perf_counter()
        since = body["next_batch"]
        room = body.get("rooms", {}).get("join", {}).get(room_id, {})
        state.record(room.get("timeline", {}).get("events", []), now)


async def prepare_pair(sender_api: Api, sender: User, receiver_api: Api, receiver: User,
                       sender_server: str, room_version: str) -> str:
    """A public room on the sender's server that the receiver has joined over federation,
    both servers agreeing on the membership."""
    room_id = await create_room(sender_api, sender, "bench federation delivery", room_version)
    await join_via(receiver_api, receiver, room_id, sender_server, timeout=120)
    await wait_for_member(sender_api, sender, room_id, receiver.user_id)
    return room_id


async def delivery_latency(sender_api: Api, sender: User, receiver_api: Api, receiver: User,
                           room_id: str, messages: int,
                           cpu: Callable[[], tuple[float, float]] | None = None
                           ) -> dict[str, float]:
    """`sender` sends `messages` one at a time; each is timed from the start of its send
    request to the moment `receiver`'s /sync long-poll returns it. The next message goes
    once this one arrived (or after DELIVERY_TIMEOUT_S) plus GAP_S. The first
    WARMUP_MESSAGES open connections and fetch keys and are not counted."""
    sync_filter = room_filter(room_id)
    since = await initial_since(receiver_api, receiver, sync_filter)
    state = _Deliveries(f"fed-{uuid.uuid4().hex[:8]}-", messages)
    listener = asyncio.create_task(_listen(receiver_api, receiver, room_id, sync_filter,
                                           since, state))
    send_errors = lost = 0
    send_seconds: list[float] = []
    cpu_before = cpu() if cpu else None
    try:
        await asyncio.sleep(0.5)  # the first long-poll reaches the server
        for index in range(-WARMUP_MESSAGES, messages):
            if index == 0 and cpu:
                cpu_before = cpu()
            state.sent_at[index] = time.perf_counter()
            try:
                await send_text(sender_api, sender, room_id, f"{state.marker}{index}")
            except (TimeoutError, ApiError, aiohttp.ClientError):
                send_errors += 1 if index >= 0 else 0
                continue
            send_seconds.append(time.perf_counter() - state.sent_at[index])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.arrived[index].wait(), DELIVERY_TIMEOUT_S)
            lost = lost + 1 if index not in state.seen_at else 0
            if lost >= GIVE_UP_AFTER_LOST:
                raise DeliveryBroken(f"{lost} messages in a row not delivered within "
                                     f"{DELIVERY_TIMEOUT_S:.0f} s each")
            await asyncio.sleep(GAP_S)
    finally:
        cpu_after = cpu() if cpu else None
        state.stop = True
        with contextlib.suppress(TimeoutError, ApiError, aiohttp.ClientError):
            await send_text(sender_api, sender, room_id, "delivery done")  # wakes the poll
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(listener, 10)
        listener.cancel()
    delays = [state.seen_at[i] - state.sent_at[i] for i in range(messages)
              if i in state.seen_at and i in state.sent_at]
    result = {"messages": float(messages), "delivered": float(len(delays)),
              "missed": float(messages - send_errors - len(delays)),
              "errors": float(send_errors + state.sync_errors),
              **latency_summary("", delays), **latency_summary("send_", send_seconds)}
    if cpu_before is not None and cpu_after is not None:
        for side, spent in zip(("sender", "receiver"),
                               (a - b for a, b in zip(cpu_after, cpu_before, strict=True)),
                               strict=True):
            result[f"{side}_cpu_ms_per_msg"] = spent * 1000 / max(len(delays), 1)
    return result


# -- 2. a big room, and a remote join of it ---------------------------------------------

async def register_many(api: Api, prefix: str, count: int, needs_session: bool
                        ) -> list[User]:
    password = "bench-" + uuid.uuid4().hex
    return await bounded_gather([f"{prefix}{i:04d}" for i in range(count)],
                                lambda name: register(api, name, password, needs_session),
                                SETUP_CONCURRENCY)


async def state_event_count(api: Api, user: User, room_id: str) -> int:
    state = await api.call("GET", f"/rooms/{quote(room_id)}/state", user=user, timeout=120)
    return len(state)


async def build_big_room(api: Api, creator: User, members: Sequence[User], state_events: int,
                         room_version: str) -> dict[str, Any]:
    """A public room with `creator` and `members` joined, then custom state events
    (distinct state keys) until the room's state holds `state_events` events."""
    started = time.perf_counter()
    room_id = await create_room(api, creator, "bench federation big room", room_version)
    await bounded_gather(members, lambda user: api.call(
        "POST", f"/join/{quote(room_id)}", user=user, body={}), SETUP_CONCURRENCY * 2)
    missing = state_events - await state_event_count(api, creator, room_id)
    path = f"/rooms/{quote(room_id)}/state/{BENCH_STATE_TYPE}/"

    async def put_state(index: int) -> None:
        await api.call("PUT", path + f"key{index:05d}", user=creator,
                       body={"index": index, "padding": "x" * 64})

    await bounded_gather(range(max(missing, 0)), put_state, SETUP_CONCURRENCY)
    count = await state_event_count(api, creator, room_id)
    joined = await joined_members(api, creator, room_id)
    return {"room_id": room_id, "state_events": count, "joined_members": len(joined),
            "build_s": time.perf_counter() - started}


async def _sync_until_joined(api: Api, user: User, room_id: str, sync_filter: str,
                             since: str, started: float, deadline: float) -> float:
    """Seconds from `started` until a /sync long-poll lists `room_id` under `join`."""
    while time.perf_counter() < deadline:
        timeout_ms = int(min(SYNC_TIMEOUT_MS, (deadline - time.perf_counter()) * 1000))
        body = await sync_once(api, user, {"since": since, "filter": sync_filter},
                               timeout_ms=max(timeout_ms, 0))
        if room_id in body.get("rooms", {}).get("join", {}):
            return time.perf_counter() - started
        since = body["next_batch"]
    raise TimeoutError(f"{room_id} never showed as joined in /sync")


async def remote_join(api: Api, joiner: User, room_id: str, via: str) -> dict[str, float]:
    """Times `joiner` joining `room_id` held by `via`: until `POST /join` returns, and
    until /sync lists the room as joined, with a plain filter (the full state) and with
    lazy-loaded members (where a server with a partial-state join shows it earlier)."""
    full_filter, lazy_filter = room_filter(room_id), room_filter(room_id, True)
    full_since = await initial_since(api, joiner, full_filter)
    lazy_since = await initial_since(api, joiner, lazy_filter)
    started = time.perf_counter()
    deadline = started + JOIN_TIMEOUT_S
    full = asyncio.create_task(_sync_until_joined(api, joiner, room_id, full_filter,
                                                  full_since, started, deadline))
    lazy = asyncio.create_task(_sync_until_joined(api, joiner, room_id, lazy_filter,
                                                  lazy_since, started, deadline))
    try:
        await join_via(api, joiner, room_id, via)
        returned = time.perf_counter() - started
        full_s, lazy_s = await asyncio.gather(full, lazy)
    finally:
        for task in (full, lazy):
            task.cancel()
        await asyncio.gather(full, lazy, return_exceptions=True)
    members = await joined_members(api, joiner, room_id)
    return {"join_return_s": returned, "sync_joined_s": full_s, "sync_lazy_joined_s": lazy_s,
            "members_seen": float(len(members)),
            "state_events_seen": float(await state_event_count(api, joiner, room_id))}


async def leave(api: Api, user: User, room_id: str) -> bool:
    """Best effort: the joiner leaves so the next repetition joins a room of the same size."""
    with contextlib.suppress(TimeoutError, ApiError, aiohttp.ClientError):
        await api.call("POST", f"/rooms/{quote(room_id)}/leave", user=user, body={},
                       timeout=60)
        return True
    return False
