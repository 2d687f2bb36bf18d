"""Loopback addresses for federation test servers, distinct per xdist worker.

Every server of a test bed gets its own 127.0.0.x address, so server names
(`IP:port`) say which server is which in logs. Each pytest-xdist worker draws
from its own block of addresses; ports are picked free on each address, so
test sessions running side by side on one machine never collide either.
"""

from __future__ import annotations

import os
import socket
import threading

BLOCK_SIZE = 24
# 127.0.0.2 .. 127.0.0.241: ten blocks; more workers share blocks (ports differ).
BLOCKS = 10
_lock = threading.Lock()
_next_in_block = 0


def worker_index() -> int:
    """0 without xdist, N + 1 for xdist worker `gwN`."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    digits = worker.removeprefix("gw")
    return int(digits) + 1 if digits.isdigit() else 0


def worker_block() -> list[str]:
    first = 2 + BLOCK_SIZE * (worker_index() % BLOCKS)
    return [f"127.0.0.{first + offset}" for offset in range(BLOCK_SIZE)]


def next_address() -> str:
    """The next unused address of this worker's block (wrapping when exhausted)."""
    global _next_in_block
    with _lock:
        block = worker_block()
        address = block[_next_in_block % len(block)]
        _next_in_block += 1
        return address


def reserve_port(host: str) -> socket.socket:
    """A socket bound to a free port on `host`, held so no one else gets that port.

    Close it just before the server that should own the port binds it."""
    sock = socket.socket()
    sock.bind((host, 0))
    return sock


def distinct_free_ports(host: str, count: int) -> list[int]:
    """`count` different free ports on `host` (all held until all are chosen)."""
    held = [reserve_port(host) for _ in range(count)]
    try:
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()
