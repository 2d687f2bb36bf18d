"""Fan-out over the WebSocket stream vs /sync long-polls (issue: real-time stream).

Scenarios, each on a fresh Guildhall server:
  * one room with N listeners (default 500), messages sent one at a time;
  * R rooms of M listeners (default 50 x 10), one message per room in turn.
For each message: the time from the start of the send request until each
listener has it (over the stream, then again over /sync long-polls), after one
unmeasured warm-up message per room. Also the
server's RSS per 100 idle stream connections. Run: `python -m bench.stream_fanout`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from .guildhall_server import GuildhallServer
from .procstat import rss_mib

RESULTS = Path(__file__).resolve().parent / "results"
STREAM = "/_guildhall/client/v1/stream"


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Listener:
    user_id: str
    token: str
    room_id: str
    received: dict[str, float] = field(default_factory=dict)


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def call(self, method: str, path: str, token: str | None = None,
                   body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.base + path, json=body,
                                     headers=headers) as response:
            data = await response.json()
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {data}")
            return data

    async def register(self, name: str) -> tuple[str, str]:
        # No password: the benchmark measures fan-out, not argon2id.
        body = await self.call("POST", "/_matrix/client/v3/register", body={
            "username": name, "auth": {"type": "m.login.dummy"}})
        return body["user_id"], body["access_token"]


async def _gather_limited(coros: list[Any], limit: int = 50) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))


def _event_ids(body: dict[str, Any]) -> list[str]:
    ids = []
    for room in body.get("rooms", {}).get("join", {}).values():
        ids += [e["event_id"] for e in room.get("timeline", {}).get("events", [])]
    return ids


@dataclass
class Crowd:
    """The listeners of one measurement: how many are connected, and when any of
    them last heard something from the server."""

    size: int
    connected: int = 0
    last_heard: float = 0.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def joined(self) -> None:
        self.connected += 1
        self.last_heard = time.perf_counter()
        if self.connected >= self.size:
            self.ready.set()

    async def quiet(self, for_s: float = 1.0, at_most_s: float = 120.0) -> None:
        """Until nobody has heard anything for `for_s`. Each listener coming
        online is a presence change pushed to all the others: with 500 of them
        that storm takes a while, and a message sent into it measures the
        storm's backlog, not the fan-out."""
        deadline = time.perf_counter() + at_most_s
        while time.perf_counter() < deadline and \
                time.perf_counter() - self.last_heard < for_s:
            await asyncio.sleep(0.1)


async def _stream_listener(api: Api, listener: Listener, crowd: Crowd) -> None:
    ws = await api.http.ws_connect(api.base + STREAM,
                                   headers={"Authorization": f"Bearer {listener.token}"},
                                   heartbeat=None, max_msg_size=0)
    try:
        await ws.receive_json()
        crowd.joined()
        while not crowd.stop.is_set():
            # No timeout per frame (wait_for makes a task each time, which cost
            # the client more CPU than parsing): _measure cancels the listeners.
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            now = crowd.last_heard = time.perf_counter()
            frame = json.loads(message.data)
            for event_id in _event_ids(frame.get("data", {})):
                listener.received.setdefault(event_id, now)
    finally:
        await ws.close()


async def _sync_listener(api: Api, listener: Listener, crowd: Crowd) -> None:
    body = await api.call("GET", "/_matrix/client/v3/sync?timeout=0", listener.token)
    since = body["next_batch"]
    crowd.joined()
    while not crowd.stop.is_set():
        body = await api.call("GET", f"/_matrix/client/v3/sync?timeout=2000&since={since}",
                              listener.token)
        now = time.perf_counter()
        if body.get("rooms", {}).get("join") or body.get("presence", {}).get("events"):
            crowd.last_heard = now
        for event_id in _event_ids(body):
            listener.received.setdefault(event_id, now)
        since = body["next_batch"]


async def _measure(api: Api, sender_token: str, listeners: list[Listener], rooms: list[str],
                   messages_per_room: int, transport: str) -> dict[str, Any]:
    crowd = Crowd(len(listeners))
    run = _stream_listener if transport == "stream" else _sync_listener
    tasks = [asyncio.create_task(run(api, lst, crowd)) for lst in listeners]
    await asyncio.wait_for(crowd.ready.wait(), timeout=120)
    await crowd.quiet()
    by_room: dict[str, list[Listener]] = {}
    for lst in listeners:
        by_room.setdefault(lst.room_id, []).append(lst)
    latencies: list[float] = []
    per_message_max: list[float] = []
    missed = 0
    counter = 0

    async def send(room: str) -> tuple[str, float]:
        nonlocal counter
        counter += 1
        started = time.perf_counter()
        sent = await api.call("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/"
                              f"{transport}{counter}", sender_token,
                              {"msgtype": "m.text", "body": f"fan-out {counter}"})
        event_id = sent["event_id"]
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline and \
                any(event_id not in t.received for t in by_room[room]):
            await asyncio.sleep(0.002)
        return event_id, started

    # One unmeasured message per room first: the numbers are those of a running
    # server, not of its first-use costs (the first message of a type compiles
    # its schema validator; a room's first message loads its members' push rules).
    for room in rooms:
        await send(room)
    for _ in range(messages_per_room):
        for room in rooms:
            event_id, started = await send(room)
            targets = by_room[room]
            this_message = []
            for target in targets:
                if event_id in target.received:
                    this_message.append((target.received[event_id] - started) * 1000)
                else:
                    missed += 1
            latencies += this_message
            per_message_max.append(round(max(this_message, default=0), 1))
    crowd.stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "transport": transport, "listeners": len(listeners), "rooms": len(rooms),
        "deliveries": len(latencies), "missed": missed,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
        "per_message_max_ms": per_message_max,
    }


async def _setup(api: Api, prefix: str, rooms: int, per_room: int
                 ) -> tuple[str, list[Listener], list[str]]:
    sender_id, sender_token = await api.register(f"{prefix}sender")
    room_ids = []
    for _ in range(rooms):
        room = await api.call("POST", "/_matrix/client/v3/createRoom", sender_token,
                              {"preset": "public_chat"})
        room_ids.append(room["room_id"])
    names = [f"{prefix}l{i}" for i in range(rooms * per_room)]
    accounts = await _gather_limited([api.register(n) for n in names])
    listeners = [Listener(uid, tok, room_ids[i // per_room])
                 for i, (uid, tok) in enumerate(accounts)]
    await _gather_limited([api.call("POST", f"/_matrix/client/v3/join/{lst.room_id}",
                                    lst.token, {}) for lst in listeners], limit=10)
    return sender_token, listeners, room_ids


async def _idle_rss(api: Api, server: GuildhallServer, listeners: list[Listener]
                    ) -> dict[str, Any]:
    # The first stream loads the WebSocket stack (homeserver/ws/resource.py):
    # a one-off cost, not one per connection.
    first = await api.http.ws_connect(api.base + STREAM,
                                      headers={"Authorization": f"Bearer {listeners[0].token}"})
    await first.receive_json()
    await asyncio.sleep(2)
    before = rss_mib(server.pid)
    sockets = [first]
    for lst in listeners[1:]:
        ws = await api.http.ws_connect(api.base + STREAM,
                                       headers={"Authorization": f"Bearer {lst.token}"})
        await ws.receive_json()
        sockets.append(ws)
    await asyncio.sleep(2)
    after = rss_mib(server.pid)
    for ws in sockets:
        await ws.close()
    added = len(sockets) - 1
    return {"connections": len(sockets), "rss_before_mib": round(before, 1),
            "rss_after_mib": round(after, 1),
            "mib_per_100": round((after - before) / added * 100, 2)}


async def _scenario(args: argparse.Namespace, rooms: int, per_room: int, port: int
                    ) -> dict[str, Any]:
    server = GuildhallServer(port=port, database_url=None, server_name="localhost",
                             log_level="WARNING")
    server.start()
    try:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            api = Api(http, server.base_url)
            sender, listeners, room_ids = await _setup(api, f"r{rooms}x{per_room}", rooms,
                                                       per_room)
            result: dict[str, Any] = {"rooms": rooms, "listeners_per_room": per_room}
            result["stream"] = await _measure(api, sender, listeners, room_ids,
                                              args.messages if rooms == 1 else 1, "stream")
            for lst in listeners:
                lst.received.clear()
            result["sync"] = await _measure(api, sender, listeners, room_ids,
                                            args.messages if rooms == 1 else 1, "sync")
            result["server_cpu_s"] = round(server.cpu_seconds(), 2)
            return result
    finally:
        server.stop()
        server.cleanup()


async def _idle_scenario(connections: int, port: int) -> dict[str, Any]:
    """RSS per idle stream on a fresh server: after a fan-out the heap holds
    freed memory that new connections reuse, which would hide their cost."""
    server = GuildhallServer(port=port, database_url=None, server_name="localhost",
                             log_level="WARNING")
    server.start()
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector,
                                         timeout=aiohttp.ClientTimeout(total=120)) as http:
            api = Api(http, server.base_url)
            rooms = max(1, connections // 10)
            _, listeners, _ = await _setup(api, "idle", rooms, connections // rooms)
            await asyncio.sleep(2)
            return await _idle_rss(api, server, listeners)
    finally:
        server.stop()
        server.cleanup()


def _markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| scenario | transport | deliveries | missed | p50 ms | p99 ms | max ms |",
             "|---|---|---|---|---|---|---|"]
    for res in results:
        name = f"{res['rooms']} room(s) x {res['listeners_per_room']}"
        for transport in ("stream", "sync"):
            m = res[transport]
            lines.append(f"| {name} | {transport} | {m['deliveries']} | {m['missed']} | "
                         f"{m['p50_ms']} | {m['p99_ms']} | {m['max_ms']} |")
    return "\n".join(lines)


def _idle_markdown(idle: dict[str, Any]) -> str:
    return (f"Server RSS per 100 idle stream connections: {idle['mib_per_100']} MiB "
            f"({idle['connections']} connections in rooms of 10 on a fresh server; "
            f"{idle['rss_before_mib']} MiB with the first open, "
            f"{idle['rss_after_mib']} MiB with all)")


async def main_async(args: argparse.Namespace) -> None:
    from tests.harness import free_port

    results = []
    for rooms, per_room in ((1, args.listeners), (args.rooms, args.per_room)):
        results.append(await _scenario(args, rooms, per_room, free_port()))
    idle = await _idle_scenario(args.listeners, free_port())
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = {"date": stamp, "cpus": __import__("os").cpu_count(),
              "python": platform.python_version(), "results": results, "idle": idle}
    (RESULTS / f"stream_fanout-{stamp}.json").write_text(json.dumps(report, indent=2))
    table = _markdown(results) + "\n\n" + _idle_markdown(idle)
    (RESULTS / f"stream_fanout-{stamp}.md").write_text(
        f"# Stream fan-out ({stamp})\n\n{table}\n")
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listeners", type=int, default=500)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--per-room", type=int, default=10)
    parser.add_argument("--messages", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
