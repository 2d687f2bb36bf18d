"""The database: an SQLAlchemy engine and the thread pool transactions run on.

Embedded SQLite (WAL, synchronous=FULL so that a commit is on disk before
we answer) or PostgreSQL through psycopg 3. SQLite has one writer, so it gets
a single database thread; PostgreSQL gets a small pool.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

logger = logging.getLogger(__name__)

T = TypeVar("T")


def normalise_url(url: str) -> str:
    """`postgresql://` URLs use psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """Runs named transactions off the reactor thread."""

    def __init__(self, url: str, reactor: Any = None) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.engine: Engine = self._create_engine()
        self._reactor = reactor
        self._pool: ThreadPool | None = None
        self._inline = False

    def _create_engine(self) -> Engine:
        if self.is_sqlite:
            engine = sa.create_engine(
                self.url, connect_args={"check_same_thread": False}, pool_size=1,
                max_overflow=2,
            )
            sa.event.listen(engine, "connect", _on_sqlite_connect)
            # pysqlite's own transaction handling defers BEGIN; take control so
            # every transaction starts with BEGIN IMMEDIATE (one writer at a time).
            sa.event.listen(engine, "connect", _disable_pysqlite_autobegin)
            sa.event.listen(engine, "begin", _begin_immediate)
            return engine
        return sa.create_engine(self.url, pool_size=8, max_overflow=4, pool_pre_ping=True)

    def start(self, reactor: Any, *, inline: bool = False) -> None:
        """Start the thread pool; `inline` runs every transaction on the calling
        thread instead (in-process tests on a memory reactor, which runs no threads)."""
        self._reactor = reactor
        self._inline = inline
        if inline:
            return
        size = 1 if self.is_sqlite else 8
        self._pool = ThreadPool(minthreads=1, maxthreads=size, name="db")
        self._pool.start()
        reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool = None
        self.engine.dispose()

    def run_sync(self, name: str, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one transaction on the calling thread (CLI, migrations, pool)."""
        start = time.perf_counter()
        try:
            with self.engine.begin() as conn:
                return fn(conn)
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            if elapsed > 500:
                logger.warning("slow transaction %s took %.0f ms", name, elapsed)

    async def run(self, name: str, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one transaction on the database thread pool."""
        if self._inline:
            return self.run_sync(name, fn)
        if self._pool is None:
            raise RuntimeError("database not started")
        result: T = await deferToThreadPool(self._reactor, self._pool, self.run_sync, name, fn)
        return result


def _disable_pysqlite_autobegin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
