"""Fixtures for client tests: a real homeserver process on loopback.

C2's call fixtures live in `calls_conftest_fixtures.py` and are imported here
when that module exists.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from collections.abc import Iterator

import pytest

from tests.client.helpers import BAD_FRAMES
from tests.harness import HomeserverProcess

if importlib.util.find_spec("tests.client.calls_conftest_fixtures") is not None:
    from tests.client.calls_conftest_fixtures import *

_names = itertools.count()


@pytest.fixture(scope="session")
def client_server() -> Iterator[HomeserverProcess]:
    """One homeserver shared by the client tests that do not stop it."""
    server = HomeserverProcess().start()
    yield server
    server.cleanup()


@pytest.fixture
def own_server() -> Iterator[HomeserverProcess]:
    """A homeserver this test may stop and restart."""
    server = HomeserverProcess().start()
    yield server
    server.cleanup()


@pytest.fixture(autouse=True)
def stream_frames_match_their_schemas() -> Iterator[None]:
    """Fails a test whose SDK clients received a frame that breaks its schema."""
    first = len(BAD_FRAMES)
    yield
    assert not BAD_FRAMES[first:], "\n".join(BAD_FRAMES[first:])


@pytest.fixture
def unique() -> str:
    """A user or room name no other test in this session uses."""
    return f"c{os.getpid()}x{next(_names)}"
