"""The load: the same Client-Server API calls against either server, through aiohttp.

Every request has a timeout, every loop a bound in count and in time. Each
workload builds its own fresh room, does its set-up untimed, then measures
one thing and returns a flat dict of numbers (plus an `errors` count).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

CLIENT_PREFIX = "/_matrix/client/v3"
REQUEST_TIMEOUT_S = 60.0
SYNC_TIMEOUT_MS = 30_000
SETUP_CONCURRENCY = 8


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {str(body)[:300]}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class User:
    user_id: str
    access_token: str


@dataclass(frozen=True)
class Probe:
    """Reads the CPU seconds of the server (and of the database server, if separate)."""

    server_cpu: Callable[[], float]
    db_cpu: Callable[[], float] | None = None


class Api:
    """A thin JSON caller; one per server, sharing one aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def raw(self, method: str, path: str, *, user: User | None = None,
                  body: Any = None, params: dict[str, str] | None = None,
                  timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {user.access_token}"} if user else {}
        async with self.session.request(
                method, self.base_url + CLIENT_PREFIX + path, json=body, params=params,
                headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            text = await response.read()
            try:
                data = json.loads(text) if text else None
            except ValueError:
                data = text[:300]
            return response.status, data

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        status, data = await self.raw(method, path, **kwargs)
        if status != 200:
            raise ApiError(method, path, status, data)
        return data


def _room(room_id: str) -> str:
    return quote(room_id, safe="")


def percentile(values: Sequence[float], pct: int) -> float:
    """The pct-th percentile (inclusive method), or the single value if only one."""
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[pct - 1])


def latency_summary(prefix: str, seconds: Sequence[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ms = [s * 1000 for s in seconds]
    return {f"{prefix}p50_ms": statistics.median(ms), f"{prefix}p99_ms": percentile(ms, 99),
            f"{prefix}max_ms": max(ms)}


async def bounded_gather(items: Sequence[Any], func: Callable[[Any], Awaitable[Any]],
                         concurrency: int) -> list[Any]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(item: Any) -> Any:
        async with semaphore:
            return await func(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


# -- set-up helpers (never timed) ---------------------------------------------

async def register(api: Api, localpart: str, password: str, needs_session: bool) -> User:
    """Register with the dummy flow; open a UI-auth session first when the server needs one."""
    body: dict[str, Any] = {"username": localpart, "password": password,
                            "initial_device_display_name": "bench"}
    auth: dict[str, Any] = {"type": "m.login.dummy"}
    if needs_session:
        status, data = await api.raw("POST", "/register", body=body)
        if status != 401 or not isinstance(data, dict) or "session" not in data:
            raise ApiError("POST", "/register (open session)", status, data)
        auth["session"] = data["session"]
    status, data = await api.raw("POST", "/register", body={**body, "auth": auth})
    if status == 401 and isinstance(data, dict) and "session" in data and "session" not in auth:
        auth["session"] = data["session"]
        status, data = await api.raw("POST", "/register", body={**body, "auth": auth})
    if status != 200:
        raise ApiError("POST", "/register", status, data)
    return User(data["user_id"], data["access_token"])


async def register_users(api: Api, prefix: str, count: int, needs_session: bool
                         ) -> tuple[list[User], float]:
    """Register `count` users (4 at a time); returns them and the seconds it took."""
    password = "bench-" + uuid.uuid4().hex
    started = time.perf_counter()
    users = await bounded_gather([f"{prefix}{i:03d}" for i in range(count)],
                                 lambda name: register(api, name, password, needs_session), 4)
    return users, time.perf_counter() - started


async def create_room(api: Api, user: User, name: str, room_version: str) -> str:
    data = await api.call("POST", "/createRoom", user=user, body={
        "preset": "public_chat", "name": name, "room_version": room_version})
    return str(data["room_id"])


async def join(api: Api, user: User, room_id: str) -> None:
    await api.call("POST", f"/join/{_room(room_id)}", user=user, body={})


async def join_all(api: Api, users: Sequence[User], room_id: str) -> None:
    await bounded_gather(users, lambda u: join(api, u, room_id), SETUP_CONCURRENCY)


async def send_text(api: Api, user: User, room_id: str, text: str) -> str:
    data = await api.call("PUT", f"/rooms/{_room(room_id)}/send/m.room.message/"
                                 f"{uuid.uuid4().hex}",
                          user=user, body={"msgtype": "m.text", "body": text})
    return str(data["event_id"])


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def fill_room(api: Api, senders: Sequence[User], room_id: str, total: int) -> None:
    async def send_share(pair: tuple[User, int]) -> None:
        user, count = pair
        for k in range(count):
            await send_text(api, user, room_id, f"fill {k}")

    shares = zip(senders, _split(total, len(senders)), strict=True)
    await asyncio.gather(*(send_share(share) for share in shares))


# -- 1. send throughput ---------------------------------------------------------

async def send_throughput(api: Api, probe: Probe, creator: User, senders: Sequence[User],
                          total: int, room_version: str) -> dict[str, float]:
    """`len(senders)` users send `total` messages into one room, each its share in sequence."""
    room_id = await create_room(api, creator, "bench send", room_version)
    await join_all(api, senders, room_id)
    latencies: list[float] = []
    errors = 0

    async def send_share(pair: tuple[User, int]) -> None:
        nonlocal errors
        user, count = pair
        for k in range(count):
            started = time.perf_counter()
            try:
                await send_text(api, user, room_id, f"throughput {k}")
            except (TimeoutError, ApiError, aiohttp.ClientError):
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    cpu0, db0 = probe.server_cpu(), probe.db_cpu() if probe.db_cpu else 0.0
    started = time.perf_counter()
    shares = zip(senders, _split(total, len(senders)), strict=True)
    await asyncio.gather(*(send_share(share) for share in shares))
    elapsed = time.perf_counter() - started
    cpu = probe.server_cpu() - cpu0
    sent = len(latencies)
    result = {"messages": float(sent), "seconds": elapsed,
              "messages_per_s": sent / elapsed if elapsed else 0.0,
              "server_cpu_ms_per_msg": cpu * 1000 / max(sent, 1),
              "errors": float(errors), **latency_summary("send_", latencies)}
    if probe.db_cpu:
        result["db_cpu_ms_per_msg"] = (probe.db_cpu() - db0) * 1000 / max(sent, 1)
    return result


# -- 2. fan-out latency -----------------------------------------------------------

class _FanoutState:
    def __init__(self, listeners: int, messages: int, marker: str) -> None:
        self.marker = marker
        self.sent_at: dict[int, float] = {}
        self.arrivals: dict[int, list[float]] = {i: [] for i in range(messages)}
        self.complete = {i: asyncio.Event() for i in range(messages)}
        self.listeners = listeners
        self.sync_errors = 0
        self.stop = False
        # Read receipts the listeners sent (when they send them), awaited at the end.
        self.receipts: list[asyncio.Task[tuple[int, Any]]] = []

    def record(self, seen: set[int], events: list[dict[str, Any]], now: float) -> None:
        for event in events:
            text = (event.get("content") or {}).get("body", "")
            if not isinstance(text, str) or not text.startswith(self.marker):
                continue
            index = int(text[len(self.marker):])
            if index in seen or index not in self.arrivals:
                continue
            seen.add(index)
            self.arrivals[index].append(now)
            if len(self.arrivals[index]) >= self.listeners:
                self.complete[index].set()


def _sync_filter(room_id: str) -> str:
    return json.dumps({"room": {"rooms": [room_id], "timeline": {"limit": 50}},
                       "presence": {"types": []}, "account_data": {"types": []}},
                      separators=(",", ":"))


async def _listen(api: Api, user: User, room_id: str, since: str, sync_filter: str,
                  state: _FanoutState, max_polls: int, read_receipts: bool = False) -> None:
    """Long-polls until stopped; with `read_receipts`, reads each new batch as
    Element does: an m.read receipt for its newest event, sent without waiting."""
    seen: set[int] = set()
    for _ in range(max_polls):
        if state.stop:
            return
        try:
            status, body = await api.raw(
                "GET", "/sync", user=user, timeout=SYNC_TIMEOUT_MS / 1000 + 15,
                params={"since": since, "timeout": str(SYNC_TIMEOUT_MS), "filter": sync_filter})
        except (TimeoutError, aiohttp.ClientError):
            status, body = 0, None
        now = time.perf_counter()
        if status != 200 or not isinstance(body, dict):
            state.sync_errors += 1
            if state.sync_errors > 10 * state.listeners:
                return
            await asyncio.sleep(0.2)
            continue
        since = body["next_batch"]
        room = body.get("rooms", {}).get("join", {}).get(room_id, {})
        events = room.get("timeline", {}).get("events", [])
        state.record(seen, events, now)
        if read_receipts and events and not state.stop:
            path = (f"/rooms/{quote(room_id, safe='')}/receipt/m.read/"
                    f"{quote(events[-1]['event_id'], safe='')}")
            state.receipts.append(asyncio.create_task(api.raw("POST", path, user=user,
                                                              body={})))


async def _stop_listeners(api: Api, sender: User, room_id: str, state: _FanoutState,
                          tasks: list[asyncio.Task[None]], timeout: float) -> None:
    """End the long-polls by waking them (a last message), so none lingers on the server."""
    state.stop = True
    try:
        await send_text(api, sender, room_id, "fanout done")
        await asyncio.wait(tasks, timeout=timeout)
    except (TimeoutError, ApiError, aiohttp.ClientError):
        pass
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def fanout_latency(api: Api, probe: Probe, sender: User, listeners: Sequence[User],
                         messages: int, room_version: str, per_message_timeout: float = 10.0,
                         gap: float = 0.1, read_receipts: bool = False) -> dict[str, float]:
    """`listeners` long-poll /sync; `sender` sends one message at a time; time to each /sync.
    With `read_receipts` every listener also sends a read receipt for what it receives,
    as Element does, so each message is followed by a receipt per listener."""
    room_id = await create_room(api, sender, "bench fan-out", room_version)
    await join_all(api, listeners, room_id)
    sync_filter = _sync_filter(room_id)

    async def initial(user: User) -> str:
        data = await api.call("GET", "/sync", user=user,
                              params={"timeout": "0", "filter": sync_filter})
        return str(data["next_batch"])

    tokens = await bounded_gather(listeners, initial, SETUP_CONCURRENCY)
    state = _FanoutState(len(listeners), messages, f"fanout-{uuid.uuid4().hex[:8]}-")
    tasks = [asyncio.create_task(_listen(api, user, room_id, token, sync_filter, state,
                                         max_polls=messages * 20 + 100,
                                         read_receipts=read_receipts))
             for user, token in zip(listeners, tokens, strict=True)]
    send_errors = 0
    try:
        await asyncio.sleep(1.0)  # let every long-poll reach the server
        for index in range(messages):
            state.sent_at[index] = time.perf_counter()
            try:
                await send_text(api, sender, room_id, f"{state.marker}{index}")
            except (TimeoutError, ApiError, aiohttp.ClientError):
                send_errors += 1
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.complete[index].wait(), per_message_timeout)
            await asyncio.sleep(gap)  # listeners re-poll before the next message
    finally:
        await _stop_listeners(api, sender, room_id, state, tasks, per_message_timeout)
        answers = await asyncio.gather(*state.receipts, return_exceptions=True)
    receipt_errors = sum(1 for a in answers if isinstance(a, BaseException) or a[0] != 200)
    delays = [arrival - state.sent_at[i] for i, times in state.arrivals.items()
              if i in state.sent_at for arrival in times]
    expected = len(listeners) * (messages - send_errors)
    return {"listeners": float(len(listeners)), "messages": float(messages),
            "deliveries": float(len(delays)), "missed": float(expected - len(delays)),
            "receipts": float(len(answers)),
            "errors": float(send_errors + state.sync_errors + receipt_errors),
            **latency_summary("", delays)}


# -- 3. join storm ------------------------------------------------------------------

async def join_storm(api: Api, probe: Probe, creator: User, joiners: Sequence[User],
                     room_version: str) -> dict[str, float]:
    """All `joiners` join one public room at once."""
    room_id = await create_room(api, creator, "bench join storm", room_version)
    latencies: list[float] = []
    errors = 0

    async def one(user: User) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            await join(api, user, room_id)
        except (TimeoutError, ApiError, aiohttp.ClientError):
            errors += 1
            return
        latencies.append(time.perf_counter() - started)

    cpu0 = probe.server_cpu()
    started = time.perf_counter()
    await asyncio.gather(*(one(user) for user in joiners))
    elapsed = time.perf_counter() - started
    cpu = probe.server_cpu() - cpu0
    members = await api.call("GET", f"/rooms/{_room(room_id)}/joined_members", user=creator)
    joined = len(members.get("joined", {})) - 1
    return {"joins": float(len(latencies)), "seconds": elapsed,
            "joins_per_s": len(latencies) / elapsed if elapsed else 0.0,
            "server_cpu_ms_per_join": cpu * 1000 / max(len(latencies), 1),
            "members_missing": float(len(joiners) - joined),
            "errors": float(errors), **latency_summary("join_", latencies)}


# -- 4. /messages paging -----------------------------------------------------------

async def prepare_paging_room(api: Api, creator: User, senders: Sequence[User], total: int,
                              room_version: str) -> str:
    room_id = await create_room(api, creator, "bench paging", room_version)
    await join_all(api, senders, room_id)
    await fill_room(api, senders, room_id, total)
    return room_id


async def page_backwards(api: Api, probe: Probe, user: User, room_id: str, expected: int,
                         limit: int) -> dict[str, float]:
    """Page from the end of the room back to its creation, `limit` events a page."""
    path = f"/rooms/{_room(room_id)}/messages"
    params = {"dir": "b", "limit": str(limit)}
    pages = events = messages = 0
    max_pages = expected // max(limit, 1) * 3 + 20
    cpu0 = probe.server_cpu()
    started = time.perf_counter()
    for _ in range(max_pages):
        data = await api.call("GET", path, user=user, params=params)
        chunk = data.get("chunk", [])
        pages += 1
        events += len(chunk)
        messages += sum(1 for e in chunk if e.get("type") == "m.room.message")
        if not chunk or not data.get("end"):
            break
        params = {**params, "from": data["end"]}
    elapsed = time.perf_counter() - started
    cpu = probe.server_cpu() - cpu0
    return {"pages": float(pages), "events": float(events), "seconds": elapsed,
            "pages_per_s": pages / elapsed if elapsed else 0.0,
            "events_per_s": events / elapsed if elapsed else 0.0,
            "server_cpu_ms_per_page": cpu * 1000 / max(pages, 1),
            "messages_missing": float(max(expected - messages, 0)), "errors": 0.0}
