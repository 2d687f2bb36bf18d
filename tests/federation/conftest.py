"""Session fixtures for federation tests: a test CA, our servers, a Synapse peer.

Everything starts lazily, once per xdist worker, when a test first asks for
it, and stops at the end of the session. Tests that stop or crash a shared
server must `restart()` it before they end; tests that need servers of their
own (partitions, conflicting state) use `make_fed_servers`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.federation.certs import TestCA
from tests.federation.cluster import Cluster, FederatedServer
from tests.federation.synapse import SynapsePeer, install_synapse
from tests.harness import require

CLUSTER_SIZE = 3
_names = itertools.count()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("federation-ca"))


@pytest.fixture(scope="session")
def fed_cluster(test_ca: TestCA) -> Iterator[Cluster]:
    """Three of our servers (`fed_cluster.servers`), each trusting the test CA."""
    cluster = Cluster(test_ca)
    try:
        cluster.add(CLUSTER_SIZE)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def fed_servers(fed_cluster: Cluster) -> list[FederatedServer]:
    """The shared cluster's first three servers, in a fixed order."""
    return fed_cluster.servers[:CLUSTER_SIZE]


@pytest.fixture
def make_fed_servers(test_ca: TestCA) -> Iterator[Callable[..., list[FederatedServer]]]:
    """A factory of servers owned by one test: `make_fed_servers(2)`; all are
    removed when the test ends, whatever state it left them in."""
    cluster = Cluster(test_ca)
    try:
        yield cluster.add
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def synapse_python() -> Path:
    """Synapse's venv python; installs Synapse from PyPI on first use. Under
    CI=true a failed install fails the test instead of skipping it."""
    try:
        return install_synapse()
    except Exception as exc:  # any failure: pip, network, venv creation
        require(False, f"Synapse could not be installed from PyPI: {exc}")
        raise


@pytest.fixture(scope="session")
def synapse(test_ca: TestCA, synapse_python: Path) -> Iterator[SynapsePeer]:
    """An unmodified Synapse federating with the test CA (default room version 12)."""
    peer = SynapsePeer(test_ca, synapse_python)
    try:
        yield peer.start()
    finally:
        peer.cleanup()


@pytest.fixture
def make_synapse(test_ca: TestCA, synapse_python: Path
                 ) -> Iterator[Callable[..., SynapsePeer]]:
    """A factory of started Synapse peers owned by one test, e.g.
    `make_synapse(room_version="10")`; all are stopped when the test ends."""
    peers: list[SynapsePeer] = []

    def make(room_version: str | None = None) -> SynapsePeer:
        peer = SynapsePeer(test_ca, synapse_python, room_version=room_version)
        peers.append(peer)
        return peer.start()

    try:
        yield make
    finally:
        for peer in peers:
            peer.cleanup()


@pytest.fixture
def unique() -> str:
    """A localpart no other test in this session uses (accounts outlive tests)."""
    return f"f{os.getpid()}x{next(_names)}"
