"""Waiting for federation to deliver: polls with deadlines, never bare sleeps.

Federation is asynchronous; a test asserts on what a client eventually sees,
and fails with a clear message when it does not see it in time.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nio

T = TypeVar("T")
DELIVERY_TIMEOUT_S = 30.0


def wait_until(check: Callable[[], T | None], timeout: float = DELIVERY_TIMEOUT_S,
               what: str = "condition", interval: float = 0.2) -> T:
    """Call `check` until it returns something other than None/False; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_for_log(read_log: Callable[[], str], pattern: str,
                 timeout: float = DELIVERY_TIMEOUT_S) -> re.Match[str]:
    """The first match of the regular expression `pattern` in the text `read_log`
    returns, waiting up to `timeout` for it to appear."""
    compiled = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = read_log()
        match = compiled.search(text)
        if match:
            return match
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not in the log after {timeout} s:\n"
                                 f"{text[-3000:]}")
        time.sleep(0.2)


async def await_until(check: Callable[[], Awaitable[T | None]],
                      timeout: float = DELIVERY_TIMEOUT_S, what: str = "condition",
                      interval: float = 0.2) -> T:
    """`wait_until` for coroutines."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_for_timeline_event(client: nio.AsyncClient, room_id: str,
                                  matches: Callable[[dict[str, Any]], bool],
                                  timeout: float = DELIVERY_TIMEOUT_S) -> dict[str, Any]:
    """Sync `client` (from where it last synced) until an event of `room_id`'s
    timeline satisfies `matches`; return that event as the server sent it."""
    deadline = time.monotonic() + timeout
    while True:
        remaining_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
        response = await client.sync(timeout=min(remaining_ms, 5000), since=client.next_batch)
        assert isinstance(response, nio.SyncResponse), f"sync failed: {response}"
        room = response.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            if matches(event.source):
                return dict(event.source)
        if time.monotonic() > deadline:
            raise AssertionError(f"{client.user_id} saw no matching event in {room_id} "
                                 f"within {timeout} s")


def message_with_body(body: str) -> Callable[[dict[str, Any]], bool]:
    """A `matches` predicate for an `m.room.message` with this body."""
    def matches(event: dict[str, Any]) -> bool:
        return (event.get("type") == "m.room.message"
                and event.get("content", {}).get("body") == body)
    return matches
