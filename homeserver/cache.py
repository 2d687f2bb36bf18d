"""A bounded cache whose entries can be invalidated while a load is in flight."""

from __future__ import annotations

from collections import OrderedDict
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

from twisted.internet.defer import Deferred

V = TypeVar("V")


class InvalidatingCache(Generic[V]):
    """`get_or_load` caches a loaded value only if the key was not invalidated
    while the load ran, so a read racing a write never caches stale data."""

    def __init__(self, max_size: int = 50_000) -> None:
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._generation: dict[Hashable, int] = {}
        self._max = max_size

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key]
        generation = self._generation.get(key, 0)
        value = await load()
        if self._generation.get(key, 0) == generation:
            self._values[key] = value
            while len(self._values) > self._max:
                evicted, _ = self._values.popitem(last=False)
                self._generation.pop(evicted, None)
        return value

    def invalidate(self, key: Hashable) -> None:
        self._generation[key] = self._generation.get(key, 0) + 1
        self._values.pop(key, None)

    def invalidate_where(self, predicate: Callable[[Hashable], bool]) -> None:
        for key in [k for k in list(self._values) + list(self._generation) if predicate(k)]:
            self.invalidate(key)


class PositionMemo(Generic[V]):
    """Answers that hold at one stream position. Everyone woken by one change
    asks the same questions about it; the next position makes them all stale,
    so the memo forgets everything when asked about another position."""

    def __init__(self) -> None:
        self._position: int | None = None
        self._values: dict[Hashable, V] = {}
        self._loading: dict[Hashable, list[Deferred[V]]] = {}

    def get(self, position: int, key: Hashable) -> V | None:
        return self._values.get(key) if position == self._position else None

    def put(self, position: int, key: Hashable, value: V) -> None:
        if position != self._position:
            self._values = {}
            self._loading = {}
            self._position = position
        self._values[key] = value

    async def get_or_load(self, position: int, key: Hashable,
                          load: Callable[[], Awaitable[V]]) -> V:
        """One load per key and position however many ask at once: the callers
        woken together would otherwise all miss and all load."""
        if position == self._position:
            if key in self._values:
                return self._values[key]
            if key in self._loading:
                waiter: Deferred[V] = Deferred()
                self._loading[key].append(waiter)
                return await waiter
        else:
            self._values, self._loading, self._position = {}, {}, position
        waiters: list[Deferred[V]] = []
        self._loading[key] = waiters
        try:
            value = await load()
        except Exception as exc:
            self._drop_loading(position, key)
            for waiter in waiters:
                waiter.errback(exc)
            raise
        self._drop_loading(position, key)
        if position == self._position:
            self._values[key] = value
        for waiter in waiters:
            waiter.callback(value)
        return value

    def _drop_loading(self, position: int, key: Hashable) -> None:
        if position == self._position:
            self._loading.pop(key, None)
