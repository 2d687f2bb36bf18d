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
T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 200


class _Batcher(Generic[T, R]):
    """`submit(item)` answers what `run(conn, items)` returned for the item (its
    answers are in the items' order), with every item queued while the
    previous transaction ran; a failed transaction fails each of its callers."""

    def __init__(self, db: Database, name: str,
                 run: Callable[[Connection, list[T]], list[R]]) -> None:
        self._db = db
        self._name = name
        self._run = run
        self._queue: list[tuple[T, Deferred[R]]] = []
        self._running = False

    async def submit(self, item: T) -> R:
        done: Deferred[R] = Deferred()
        self._queue.append((item, done))
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

    async def _answer(self, batch: list[tuple[T, Deferred[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            answers = await self._db.run(self._name, lambda conn: self._run(conn, items))
        except Exception as exc:  # noqa: BLE001 - each caller gets it, as from its own call
            for _, done in batch:
                done.errback(exc)
            return
        for (_, done), answer in zip(batch, answers, strict=True):
            done.callback(answer)


class BatchedLookup(Generic[K, V]):
    """`get(key)` answers what `load(conn, keys)` found for the key, or None
    (`load` sees each key once)."""

    def __init__(self, db: Database, name: str,
                 load: Callable[[Connection, list[K]], dict[K, V]]) -> None:
        def run(conn: Connection, keys: list[K]) -> list[V | None]:
            found = load(conn, list(dict.fromkeys(keys)))
            return [found.get(key) for key in keys]

        self._batcher: _Batcher[K, V | None] = _Batcher(db, name, run)

    async def get(self, key: K) -> V | None:
        return await self._batcher.submit(key)


class BatchedWrite(Generic[V]):
    """`put(item)` returns once `write(conn, items)` has committed the item,
    together with those queued meanwhile (in queue order: a later item for
    the same key wins)."""

    def __init__(self, db: Database, name: str,
                 write: Callable[[Connection, list[V]], None]) -> None:
        def run(conn: Connection, items: list[V]) -> list[None]:
            write(conn, items)
            return [None] * len(items)

        self._batcher: _Batcher[V, None] = _Batcher(db, name, run)

    async def put(self, item: V) -> None:
        await self._batcher.submit(item)
