"""Real databases for storage tests: SQLite files and databases in one
throwaway PostgreSQL cluster per test module, run inline on a memory reactor."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.task import Clock as ReactorClock

from homeserver.storage.database import Database
from homeserver.storage.migrations import migrate
from tests.harness import PostgresCluster

_numbers = itertools.count()


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster.running() as cluster:
        yield cluster


def open_database(kind: str, tmp_path: Path, request: pytest.FixtureRequest,
                  name: str) -> Database:
    """A migrated database of `kind` ("sqlite" or "postgresql"), started inline;
    the PostgreSQL one in the module's `pg_cluster`."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / f'{name}.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database(f"{name}_{os.getpid()}_{next(_numbers)}")
    database = Database(url)
    migrate(database)
    database.start(ReactorClock(), inline=True)
    return database
