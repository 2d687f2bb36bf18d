"""Point lookups and small writes that share a transaction when they arrive
together.

Each transaction costs a hop to the database thread and back, a BEGIN and a
COMMIT (with its fsync); on SQLite it also waits behind the commit in flight.
Lookups or writes asked for while one runs queue up and go together in the
next one, as the group commit does for events (EventStore.persist).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred

from .database import Database

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_BATCH = 200


class BatchedLookup(Generic[K, V]):
    """`get(key)` answers what `load(conn, keys)` found for the key, or None."""

    def __init__(self, db: Database, name: str,
                 load: Callable[[Connection, list[K]], dict[K, V]]) -> None:
        self._db = db
        self._name = name
        self._load = load
        self._queue: list[tuple[K, Deferred[V | None]]] = []
        self._running = False

    async def get(self, key: K) -> V | None:
        done: Deferred[V | None] = Deferred()
        self._queue.append((key, done))
        if not self._running:
            self._running = True
            Deferred.fromCoroutine(self._drain())
        return await done

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._answer(batch)
        finally:
            self._running = False

    async def _answer(self, batch: list[tuple[K, Deferred[V | None]]]) -> None:
        keys = list(dict.fromkeys(key for key, _ in batch))
        try:
            found = await self._db.run(self._name, lambda conn: self._load(conn, keys))
        except Exception as exc:  # noqa: BLE001 - each caller gets it, as from its own lookup
            for _, done in batch:
                done.errback(exc)
            return
        for key, done in batch:
            done.callback(found.get(key))


class BatchedWrite(Generic[V]):
    """`put(item)` returns once `write(conn, items)` has committed the item,
    together with those queued meanwhile (in queue order: a later item for
    the same key wins)."""

    def __init__(self, db: Database, name: str,
                 write: Callable[[Connection, list[V]], None]) -> None:
        self._db = db
        self._name = name
        self._write = write
        self._queue: list[tuple[V, Deferred[None]]] = []
        self._running = False

    async def put(self, item: V) -> None:
        done: Deferred[None] = Deferred()
        self._queue.append((item, done))
        if not self._running:
            self._running = True
            Deferred.fromCoroutine(self._drain())
        await done

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._commit(batch)
        finally:
            self._running = False

    async def _commit(self, batch: list[tuple[V, Deferred[None]]]) -> None:
        items = [item for item, _ in batch]
        try:
            await self._db.run(self._name, lambda conn: self._write(conn, items))
        except Exception as exc:  # noqa: BLE001 - each caller gets it, as from its own write
            for _, done in batch:
                done.errback(exc)
            return
        for _, done in batch:
            done.callback(None)
