"""Session fixtures: real homeserver processes on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import os
from typing import Iterator

import pytest

from tests.harness import HomeserverProcess, PostgresCluster

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    with PostgresCluster.running() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def sqlite_server() -> Iterator[HomeserverProcess]:
    server = HomeserverProcess().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def postgres_server(postgres: PostgresCluster) -> Iterator[HomeserverProcess]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    url = postgres.create_database(f"guildhall_{worker}")
    server = HomeserverProcess(database=url).start()
    yield server
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"], scope="session")
def server(request: pytest.FixtureRequest) -> HomeserverProcess:
    """The same test on both databases."""
    name = "sqlite_server" if request.param == "sqlite" else "postgres_server"
    return request.getfixturevalue(name)


@pytest.fixture
def unique() -> str:
    """A name no other test in this session uses (accounts outlive tests)."""
    return f"u{os.getpid()}x{next(_names)}"
