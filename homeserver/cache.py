"""A bounded cache whose entries can be invalidated while a load is in flight."""

from __future__ import annotations

from collections import OrderedDict
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

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
